//! Loading a task pool from JSONL or Parquet.
//!
//! A pool file has one row per task. **Tasks are identified by their 0-based row order**: the first
//! row is task 0, the next task 1, and so on (in JSONL blank lines are skipped and do not count; an
//! `id` column, if present, is ignored). Replay logs and posteriors use these ids.
//!
//! With feature keys, the K named columns (the reference models' pass rates, weakest first; by default
//! two, GURU's `qwen2.5_7b_pass_rate` and `qwen3_30b_pass_rate`) are read as the implicit-evidence
//! features (`docs/EVIDENCE-SOURCES.md` for K != 2). Every value must be a number in [0, 1]: a missing column, a missing
//! value (JSON `null`, Parquet null), NaN (a Parquet float NaN, or the JSON string `"NaN"` since JSON
//! has no NaN literal), a non-number or a value outside [0, 1] is an error naming the file, the row
//! (`path:LINE` with the 1-based line for JSONL; `row R` with the 0-based row index = task id for
//! Parquet) and the column. Parquet feature columns may be FLOAT, DOUBLE, INT32 or INT64.
//!
//! Without feature keys (a pool for rho = 0) only the rows are counted.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;

use bots::{BotsError, Features, Result};

use crate::err;
use crate::io::Format;

/// A task pool read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedPool {
    /// Number of tasks (rows); task ids are `0..len`.
    pub len: usize,
    /// The K reference pass-rate columns (weakest first), when feature keys were given.
    pub features: Option<Features>,
}

/// Loads a pool from `path` (`.jsonl`/`.ndjson` or `.parquet`, by extension).
///
/// `feature_keys = Some(&[weakest, ..., strongest])` reads those K >= 1 columns as features (two:
/// the weak and the strong reference); `None` loads a pool without features (usable with rho = 0 and no
/// per-task prior), counting its rows only.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("pool.jsonl");
/// std::fs::write(&path, "{\"w\": 0.25, \"s\": 0.5}\n{\"w\": 0, \"s\": 1}\n").unwrap();
/// let pool = bots_cli::io::load_pool(&path, Some(&["w", "s"])).unwrap();
/// assert_eq!(pool.len, 2);
/// assert_eq!(pool.features.unwrap().get(1), (0.0, 1.0));
/// let one = bots_cli::io::load_pool(&path, Some(&["s"])).unwrap().features.unwrap();
/// assert_eq!((one.n_columns(), one.value(0, 0)), (1, 0.5));
/// assert_eq!(bots_cli::io::load_pool(&path, None).unwrap().features, None);
/// ```
pub fn load_pool(path: &Path, feature_keys: Option<&[&str]>) -> Result<LoadedPool> {
    let (len, columns) = match Format::of(path)? {
        Format::Jsonl => read_jsonl(path, feature_keys)?,
        Format::Parquet => read_parquet(path, feature_keys)?,
    };
    if len == 0 {
        return Err(err::parse(path, 0, "the pool is empty: it has no task rows"));
    }
    let features = match columns {
        Some(columns) => {
            let refs: Vec<&[f32]> = columns.iter().map(Vec::as_slice).collect();
            Some(Features::from_columns(&refs).map_err(|e| err::parse(path, 0, e.to_string()))?)
        }
        None => None,
    };
    Ok(LoadedPool { len, features })
}

/// Task embeddings read from a pool file: one row of `dim` values per task, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Embeddings {
    pub dim: usize,
    pub values: Vec<f32>,
}

/// Reads the embedding column `key` of a pool file: in every row an array of numbers (JSONL) or a
/// list of FLOAT/DOUBLE/INT32/INT64 (Parquet), all of one length, every value finite. Errors name the
/// file, the row and the column.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("pool.jsonl");
/// std::fs::write(&path, "{\"e\": [1, 0]}\n{\"e\": [0.5, 0.5]}\n").unwrap();
/// let e = bots_cli::io::load_embeddings(&path, "e").unwrap();
/// assert_eq!((e.dim, e.values), (2, vec![1.0, 0.0, 0.5, 0.5]));
/// ```
pub fn load_embeddings(path: &Path, key: &str) -> Result<Embeddings> {
    let format = Format::of(path)?;
    let rows: Vec<(usize, std::result::Result<Vec<f64>, String>)> = match format {
        Format::Jsonl => {
            let file = File::open(path).map_err(|e| err::io(path, e))?;
            let mut out = Vec::new();
            for (i, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(|e| err::io(path, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value =
                    serde_json::from_str(&line).map_err(|e| err::parse(path, i + 1, format!("invalid JSON: {e}")))?;
                let row = match value.get(key) {
                    None => Err(format!("column `{key}` is missing")),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_f64().ok_or_else(|| format!("column `{key}`: {} is not a number", json_type(v))))
                        .collect(),
                    Some(v) => Err(format!("column `{key}`: expected an array of numbers, got {}", json_type(v))),
                };
                out.push((i + 1, row));
            }
            out
        }
        Format::Parquet => {
            use parquet::record::Field;
            let file = File::open(path).map_err(|e| err::io(path, e))?;
            let reader = SerializedFileReader::new(file).map_err(pq_err(path))?;
            let mut out = Vec::new();
            for (r, row) in reader.get_row_iter(None).map_err(pq_err(path))?.enumerate() {
                let row = row.map_err(pq_err(path))?;
                let field = row.get_column_iter().find(|(name, _)| name.as_str() == key).map(|(_, f)| f);
                let values = match field {
                    None => Err(format!("column `{key}` is missing")),
                    Some(Field::ListInternal(list)) => list
                        .elements()
                        .iter()
                        .map(|f| match f {
                            Field::Float(v) => Ok(*v as f64),
                            Field::Double(v) => Ok(*v),
                            Field::Int(v) => Ok(*v as f64),
                            Field::Long(v) => Ok(*v as f64),
                            other => Err(format!("column `{key}`: {other} is not a number")),
                        })
                        .collect(),
                    Some(other) => Err(format!("column `{key}`: expected a list of numbers, got {other}")),
                };
                out.push((r, values));
            }
            out
        }
    };
    let at = |line: usize, m: String| match format {
        Format::Parquet => err::parse(path, 0, format!("row {line} (task {line}), {m}")),
        Format::Jsonl => err::parse(path, line, m),
    };
    let mut values = Vec::new();
    let mut dim = 0;
    for (task, (line, row)) in rows.into_iter().enumerate() {
        let row = row.map_err(|m| at(line, m))?;
        if task == 0 {
            dim = row.len();
            if dim == 0 {
                return Err(at(line, format!("column `{key}`: an embedding needs at least one value")));
            }
        } else if row.len() != dim {
            return Err(at(line, format!("column `{key}`: {} values, but task 0's embedding has {dim}", row.len())));
        }
        if let Some(v) = row.iter().find(|v| !v.is_finite()) {
            return Err(at(line, format!("column `{key}`: {v} is not a finite number")));
        }
        values.extend(row.iter().map(|&v| v as f32));
    }
    if values.is_empty() {
        return Err(err::parse(path, 0, "the pool is empty: it has no task rows"));
    }
    Ok(Embeddings { dim, values })
}

/// Checks one feature value; `Err` is the message after the location.
fn check_value(key: &str, v: f64) -> std::result::Result<f32, String> {
    if v.is_nan() {
        return Err(format!("column `{key}`: NaN is not a pass rate (expected a number in [0, 1])"));
    }
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("column `{key}`: {v} is outside [0, 1]"));
    }
    Ok(v as f32)
}

fn json_feature(key: &str, value: Option<&Value>) -> std::result::Result<f32, String> {
    match value {
        None => Err(format!("column `{key}` is missing")),
        Some(Value::Null) => {
            Err(format!("column `{key}`: missing value (null); every task needs every reference pass rate"))
        }
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) => check_value(key, v),
            None => Err(format!("column `{key}`: {n} is not representable as a number")),
        },
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("nan") => {
            Err(format!("column `{key}`: NaN (the string {s:?}) is not a pass rate (expected a number in [0, 1])"))
        }
        Some(Value::String(s)) => Err(format!("column `{key}`: expected a number in [0, 1], got the string {s:?}")),
        Some(other) => Err(format!("column `{key}`: expected a number in [0, 1], got {}", json_type(other))),
    }
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

type Columns = Option<Vec<Vec<f32>>>;

fn read_jsonl(path: &Path, keys: Option<&[&str]>) -> Result<(usize, Columns)> {
    let file = File::open(path).map_err(|e| err::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut cols: Columns = keys.map(|k| vec![Vec::new(); k.len()]);
    let mut rows = 0usize;
    let mut line = String::new();
    let mut line_no = 0usize;
    loop {
        line.clear();
        let read = reader.read_line(&mut line).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => err::parse(path, line_no + 1, "the line is not valid UTF-8"),
            _ => err::io(path, e),
        })?;
        if read == 0 {
            break;
        }
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| err::parse(path, line_no, format!("invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(err::parse(path, line_no, format!("expected a JSON object, got {}", json_type(&value))));
        };
        if let (Some(keys), Some(cols)) = (keys, cols.as_mut()) {
            for (key, col) in keys.iter().zip(cols.iter_mut()) {
                let v = json_feature(key, obj.get(*key)).map_err(|m| err::parse(path, line_no, m))?;
                col.push(v);
            }
        }
        rows += 1;
    }
    Ok((rows, cols))
}

pub(crate) fn pq_err(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> BotsError + '_ {
    move |e| err::parse(path, 0, format!("cannot read Parquet: {e}"))
}

fn read_parquet(path: &Path, keys: Option<&[&str]>) -> Result<(usize, Columns)> {
    let file = File::open(path).map_err(|e| err::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(pq_err(path))?;
    let meta = reader.metadata().file_metadata();
    let rows = usize::try_from(meta.num_rows())
        .map_err(|_| err::parse(path, 0, format!("invalid row count {}", meta.num_rows())))?;
    let Some(keys) = keys else { return Ok((rows, None)) };
    let mut cols = vec![Vec::new(); keys.len()];
    for (key, col) in keys.iter().zip(cols.iter_mut()) {
        *col = read_numeric_column(path, &reader, key, &|v| check_value(key, v))?;
    }
    Ok((rows, Some(cols)))
}

/// Reads the top-level numeric column `key` (FLOAT, DOUBLE, INT32 or INT64, no nulls) of a Parquet
/// file, passing every value through `check` (`Err` is a message placed after `row R, `).
pub(crate) fn read_numeric_column<T>(
    path: &Path,
    reader: &SerializedFileReader<File>,
    key: &str,
    check: &dyn Fn(f64) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let meta = reader.metadata().file_metadata();
    let schema = meta.schema_descr();
    let rows = usize::try_from(meta.num_rows())
        .map_err(|_| err::parse(path, 0, format!("invalid row count {}", meta.num_rows())))?;
    let index =
        schema.columns().iter().position(|c| c.path().parts().len() == 1 && c.name() == key).ok_or_else(|| {
            let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
            err::parse(path, 0, format!("column `{key}` is missing (the file has columns {names:?})"))
        })?;
    let descr = schema.column(index);
    if descr.max_rep_level() > 0 {
        return Err(err::parse(
            path,
            0,
            format!("column `{key}` is a repeated (list) column; expected one number per row"),
        ));
    }
    let mut out = Vec::with_capacity(rows);
    let mut ctx = ColumnCtx { path, key, max_def: descr.max_def_level(), out: &mut out, check };
    for rg in 0..reader.num_row_groups() {
        let group = reader.get_row_group(rg).map_err(pq_err(path))?;
        match group.get_column_reader(index).map_err(pq_err(path))? {
            ColumnReader::FloatColumnReader(r) => ctx.read(r, |v| v as f64)?,
            ColumnReader::DoubleColumnReader(r) => ctx.read(r, |v| v)?,
            ColumnReader::Int32ColumnReader(r) => ctx.read(r, |v| v as f64)?,
            ColumnReader::Int64ColumnReader(r) => ctx.read(r, |v| v as f64)?,
            _ => {
                return Err(err::parse(
                    path,
                    0,
                    format!(
                        "column `{key}` has Parquet type {}; expected FLOAT, DOUBLE, INT32 or INT64",
                        descr.physical_type()
                    ),
                ))
            }
        }
    }
    if out.len() != rows {
        return Err(err::parse(path, 0, format!("column `{key}` has {} values for {rows} rows", out.len())));
    }
    Ok(out)
}

struct ColumnCtx<'a, T> {
    path: &'a Path,
    key: &'a str,
    max_def: i16,
    out: &'a mut Vec<T>,
    check: &'a dyn Fn(f64) -> std::result::Result<T, String>,
}

impl<T> ColumnCtx<'_, T> {
    fn read<D: DataType>(&mut self, mut reader: ColumnReaderImpl<D>, conv: impl Fn(D::T) -> f64) -> Result<()>
    where
        D::T: Copy,
    {
        const BATCH: usize = 1 << 16;
        let mut defs: Vec<i16> = Vec::with_capacity(BATCH);
        let mut values: Vec<D::T> = Vec::with_capacity(BATCH);
        let path: PathBuf = self.path.to_path_buf();
        loop {
            defs.clear();
            values.clear();
            let def_buf = if self.max_def > 0 { Some(&mut defs) } else { None };
            let (records, _, _) = reader
                .read_records(BATCH, def_buf, None, &mut values)
                .map_err(|e| err::parse(&path, 0, format!("cannot read Parquet column `{}`: {e}", self.key)))?;
            if records == 0 {
                return Ok(());
            }
            let mut next = values.iter();
            for i in 0..records {
                let row = self.out.len();
                let present = self.max_def == 0 || defs.get(i) == Some(&self.max_def);
                if !present {
                    return Err(err::parse(
                        &path,
                        0,
                        format!("row {row} (task {row}), column `{}`: missing value (null)", self.key),
                    ));
                }
                let Some(&v) = next.next() else {
                    return Err(err::parse(
                        &path,
                        0,
                        format!("row {row}, column `{}`: value missing from the column data", self.key),
                    ));
                };
                let v =
                    (self.check)(conv(v)).map_err(|m| err::parse(&path, 0, format!("row {row} (task {row}), {m}")))?;
                self.out.push(v);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    use parquet::basic::{Repetition, Type as PhysicalType};
    use parquet::data_type::{DoubleType, FloatType, Int32Type, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    /// A test column: name and values (None = null), written with the given physical type.
    pub(crate) enum Col<'a> {
        F32(&'a str, Vec<Option<f32>>),
        F64(&'a str, Vec<Option<f64>>),
        I32(&'a str, Vec<Option<i32>>),
        I64(&'a str, Vec<Option<i64>>),
    }

    /// Writes a Parquet file with optional columns; each column in its own row group split of `rg` rows.
    pub(crate) fn write_parquet(path: &Path, cols: &[Col], rg: usize) {
        let fields: Vec<Arc<Type>> = cols
            .iter()
            .map(|c| {
                let (name, t) = match c {
                    Col::F32(n, _) => (n, PhysicalType::FLOAT),
                    Col::F64(n, _) => (n, PhysicalType::DOUBLE),
                    Col::I32(n, _) => (n, PhysicalType::INT32),
                    Col::I64(n, _) => (n, PhysicalType::INT64),
                };
                Arc::new(Type::primitive_type_builder(name, t).with_repetition(Repetition::OPTIONAL).build().unwrap())
            })
            .collect();
        let schema = Arc::new(Type::group_type_builder("schema").with_fields(fields).build().unwrap());
        let file = File::create(path).unwrap();
        let mut w = SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
        let rows = match &cols[0] {
            Col::F32(_, v) => v.len(),
            Col::F64(_, v) => v.len(),
            Col::I32(_, v) => v.len(),
            Col::I64(_, v) => v.len(),
        };
        let mut start = 0;
        while start < rows {
            let end = (start + rg).min(rows);
            let mut g = w.next_row_group().unwrap();
            for c in cols {
                let mut cw = g.next_column().unwrap().unwrap();
                fn split<T: Copy + Default>(v: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
                    (v.iter().flatten().copied().collect(), v.iter().map(|x| x.is_some() as i16).collect())
                }
                match c {
                    Col::F32(_, v) => {
                        let (vals, defs) = split(&v[start..end]);
                        cw.typed::<FloatType>().write_batch(&vals, Some(&defs), None).unwrap();
                    }
                    Col::F64(_, v) => {
                        let (vals, defs) = split(&v[start..end]);
                        cw.typed::<DoubleType>().write_batch(&vals, Some(&defs), None).unwrap();
                    }
                    Col::I32(_, v) => {
                        let (vals, defs) = split(&v[start..end]);
                        cw.typed::<Int32Type>().write_batch(&vals, Some(&defs), None).unwrap();
                    }
                    Col::I64(_, v) => {
                        let (vals, defs) = split(&v[start..end]);
                        cw.typed::<Int64Type>().write_batch(&vals, Some(&defs), None).unwrap();
                    }
                }
                cw.close().unwrap();
            }
            g.close().unwrap();
            start = end;
        }
        w.close().unwrap();
    }

    const KEYS: [&str; 2] = ["qwen2.5_7b_pass_rate", "qwen3_30b_pass_rate"];

    fn jsonl(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.jsonl");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn err_jsonl(text: &str) -> String {
        let (_d, path) = jsonl(text);
        let e = load_pool(&path, Some(&KEYS)).unwrap_err();
        assert!(matches!(e, BotsError::Parse { .. }), "{e:?}");
        e.to_string()
    }

    #[test]
    fn jsonl_reads_features_in_row_order() {
        let (_d, path) = jsonl(
            "{\"id\": 7, \"qwen2.5_7b_pass_rate\": 0.25, \"qwen3_30b_pass_rate\": 0.5}\n\n\
             {\"id\": 3, \"qwen2.5_7b_pass_rate\": 0, \"qwen3_30b_pass_rate\": 1, \"extra\": \"x\"}\n",
        );
        let pool = load_pool(&path, Some(&KEYS)).unwrap();
        assert_eq!(pool.len, 2);
        let f = pool.features.unwrap();
        assert_eq!(f.get(0), (0.25, 0.5));
        assert_eq!(f.get(1), (0.0, 1.0));
        let bare = load_pool(&path, None).unwrap();
        assert_eq!((bare.len, bare.features), (2, None));
    }

    #[test]
    fn jsonl_errors_name_file_line_and_column() {
        let ok = "{\"qwen2.5_7b_pass_rate\": 0.25, \"qwen3_30b_pass_rate\": 0.5}\n";
        let e = err_jsonl(&format!("{ok}{{\"qwen2.5_7b_pass_rate\": 0.25}}\n"));
        assert!(e.contains("pool.jsonl:2") && e.contains("`qwen3_30b_pass_rate` is missing"), "{e}");
        let e = err_jsonl(&format!("{ok}{ok}{{\"qwen2.5_7b_pass_rate\": null, \"qwen3_30b_pass_rate\": 0.5}}\n"));
        assert!(e.contains("pool.jsonl:3") && e.contains("`qwen2.5_7b_pass_rate`") && e.contains("null"), "{e}");
        let e = err_jsonl("{\"qwen2.5_7b_pass_rate\": \"NaN\", \"qwen3_30b_pass_rate\": 0.5}\n");
        assert!(e.contains("pool.jsonl:1") && e.contains("NaN"), "{e}");
        let e = err_jsonl(&format!("{ok}{{\"qwen2.5_7b_pass_rate\": 0.2, \"qwen3_30b_pass_rate\": 1.5}}\n"));
        assert!(e.contains("pool.jsonl:2") && e.contains("`qwen3_30b_pass_rate`: 1.5 is outside [0, 1]"), "{e}");
        let e = err_jsonl("{\"qwen2.5_7b_pass_rate\": -0.1, \"qwen3_30b_pass_rate\": 0.5}\n");
        assert!(e.contains(":1") && e.contains("-0.1 is outside"), "{e}");
        let e = err_jsonl("{\"qwen2.5_7b_pass_rate\": \"0.3\", \"qwen3_30b_pass_rate\": 0.5}\n");
        assert!(e.contains("got the string \"0.3\""), "{e}");
        let e = err_jsonl("{\"qwen2.5_7b_pass_rate\": true, \"qwen3_30b_pass_rate\": 0.5}\n");
        assert!(e.contains("got a boolean"), "{e}");
        let e = err_jsonl(&format!("{ok}{{not json\n"));
        assert!(e.contains("pool.jsonl:2") && e.contains("invalid JSON"), "{e}");
        let e = err_jsonl("[0.1, 0.2]\n");
        assert!(e.contains("pool.jsonl:1") && e.contains("expected a JSON object"), "{e}");
        let e = err_jsonl("\n\n");
        assert!(e.contains("empty"), "{e}");
        let e = err_jsonl("");
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn missing_file_and_unknown_extension() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_pool(&dir.path().join("nope.jsonl"), None).unwrap_err();
        assert!(matches!(e, BotsError::Io { .. }) && e.to_string().contains("nope.jsonl"), "{e}");
        let e = load_pool(&dir.path().join("pool.csv"), None).unwrap_err();
        assert!(e.to_string().contains("unknown file format"), "{e}");
    }

    fn pq(cols: &[Col], rg: usize) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.parquet");
        write_parquet(&path, cols, rg);
        (dir, path)
    }

    #[test]
    fn parquet_float_double_and_int_columns() {
        let weak: Vec<Option<f32>> = (0..10).map(|i| Some(i as f32 / 16.0)).collect();
        let strong: Vec<Option<f64>> = (0..10).map(|i| Some((i + 4) as f64 / 16.0)).collect();
        let (_d, path) =
            pq(&[Col::I64("id", (0..10).map(Some).collect()), Col::F32(KEYS[0], weak), Col::F64(KEYS[1], strong)], 3);
        let pool = load_pool(&path, Some(&KEYS)).unwrap();
        assert_eq!(pool.len, 10);
        let f = pool.features.unwrap();
        for k in 0..10 {
            assert_eq!(f.get(k), (k as f32 / 16.0, (k + 4) as f32 / 16.0));
        }
        assert_eq!(load_pool(&path, None).unwrap(), LoadedPool { len: 10, features: None });

        let (_d, path) = pq(&[Col::I32("a", vec![Some(0), Some(1)]), Col::I64("b", vec![Some(1), Some(1)])], 10);
        let f = load_pool(&path, Some(&["a", "b"])).unwrap().features.unwrap();
        assert_eq!((f.get(0), f.get(1)), ((0.0, 1.0), (1.0, 1.0)));
        let f = load_pool(&path, Some(&["b", "a"])).unwrap().features.unwrap();
        assert_eq!((f.get(0), f.get(1)), ((1.0, 0.0), (1.0, 1.0)), "keys are (weak, strong) in that order");
        let e = load_pool(&path, Some(&["a", "c"])).unwrap_err().to_string();
        assert!(e.contains("pool.parquet") && e.contains("column `c` is missing"), "{e}");
    }

    #[test]
    fn parquet_errors_name_row_and_column() {
        let mut weak: Vec<Option<f32>> = vec![Some(0.5); 8];
        let strong: Vec<Option<f32>> = vec![Some(0.75); 8];
        weak[5] = Some(f32::NAN);
        let (_d, path) = pq(&[Col::F32(KEYS[0], weak.clone()), Col::F32(KEYS[1], strong.clone())], 3);
        let e = load_pool(&path, Some(&KEYS)).unwrap_err().to_string();
        assert!(
            e.contains("pool.parquet")
                && e.contains("row 5")
                && e.contains("`qwen2.5_7b_pass_rate`")
                && e.contains("NaN"),
            "{e}"
        );

        weak[5] = None;
        let (_d, path) = pq(&[Col::F32(KEYS[0], weak.clone()), Col::F32(KEYS[1], strong.clone())], 3);
        let e = load_pool(&path, Some(&KEYS)).unwrap_err().to_string();
        assert!(e.contains("row 5") && e.contains("missing value"), "{e}");

        weak[5] = Some(0.5);
        let mut strong2 = strong.clone();
        strong2[7] = Some(1.25);
        let (_d, path) = pq(&[Col::F32(KEYS[0], weak.clone()), Col::F32(KEYS[1], strong2)], 3);
        let e = load_pool(&path, Some(&KEYS)).unwrap_err().to_string();
        assert!(e.contains("row 7") && e.contains("`qwen3_30b_pass_rate`: 1.25 is outside [0, 1]"), "{e}");

        let (_d, path) = pq(&[Col::I64("a", vec![Some(0), Some(2)]), Col::I64("b", vec![Some(0), Some(0)])], 3);
        let e = load_pool(&path, Some(&["a", "b"])).unwrap_err().to_string();
        assert!(e.contains("row 1") && e.contains("2 is outside"), "{e}");

        let (_d, path) = pq(&[Col::F32(KEYS[0], vec![]), Col::F32(KEYS[1], vec![])], 3);
        let e = load_pool(&path, Some(&KEYS)).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        assert!(load_pool(&path, None).unwrap_err().to_string().contains("empty"));

        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.parquet");
        std::fs::write(&bad, b"not parquet at all").unwrap();
        let e = load_pool(&bad, None).unwrap_err().to_string();
        assert!(e.contains("bad.parquet") && e.contains("Parquet"), "{e}");
    }
}
