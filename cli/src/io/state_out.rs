//! Writing and reading a posterior (alpha, beta per task; mu, rho, step) as JSONL or Parquet.
//!
//! * JSONL: one line per task, in task order, `{"task": 0, "alpha": 1.4, "beta": 2.2}`, then one final
//!   line `{"mu": 0.5, "rho": 0.1, "step": 3}` (`"mu": null` before the first update, or for a pool
//!   without features). Floats are written as the shortest decimal that reads back as the same f32.
//! * Parquet: columns `task` (INT64), `alpha`, `beta` (FLOAT), one row per task in task order, and the
//!   file's key-value metadata `mu` (`null` or a number), `rho` and `step`.
//!
//! Files are written atomically: a temporary file in the same folder, renamed over the target only
//! when complete, so a reader never sees a half-written posterior.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{Repetition, Type as PhysicalType};
use parquet::data_type::{FloatType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::Value;

use bots::{BotsError, Globals, PoolState, Result};

use crate::err;
use crate::io::pool_file::{json_type, pq_err, read_numeric_column};
use crate::io::{write_atomic, Format};

/// A posterior as stored in a file: the Beta parameters of every task and the globals.
#[derive(Clone, Debug, PartialEq)]
pub struct Posterior {
    /// Beta alpha per task (task id = index).
    pub alpha: Vec<f32>,
    /// Beta beta per task.
    pub beta: Vec<f32>,
    /// mu, rho, step.
    pub globals: Globals,
}

impl Posterior {
    /// The posterior part of a pool state (alpha, beta, globals).
    pub fn from_state(state: &PoolState) -> Posterior {
        Posterior { alpha: state.alpha.clone(), beta: state.beta.clone(), globals: state.globals }
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.alpha.len()
    }

    /// True when there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.alpha.is_empty()
    }

    /// Writes this posterior to `path` (format by extension), atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_parts(path, &self.alpha, &self.beta, &self.globals)
    }
}

/// Writes the posterior of `state` to `path` (`.jsonl` or `.parquet`, by extension), atomically:
/// on error no file is created (and an existing one is left as it was).
///
/// ```
/// let state = bots::PoolState::new(&bots::Config { rho: 0.0, ..Default::default() }, 3, None).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("post.jsonl");
/// bots_cli::io::write_posterior(&path, &state).unwrap();
/// let text = std::fs::read_to_string(&path).unwrap();
/// assert!(text.starts_with("{\"task\": 0, \"alpha\": 1, \"beta\": 1}\n"));
/// assert!(text.ends_with("{\"mu\": null, \"rho\": 0, \"step\": 0}\n"));
/// assert_eq!(bots_cli::io::read_posterior(&path).unwrap(), bots_cli::io::Posterior::from_state(&state));
/// ```
pub fn write_posterior(path: &Path, state: &PoolState) -> Result<()> {
    write_parts(path, &state.alpha, &state.beta, &state.globals)
}

fn write_parts(path: &Path, alpha: &[f32], beta: &[f32], globals: &Globals) -> Result<()> {
    let format = Format::of(path)?;
    if alpha.len() != beta.len() {
        return Err(BotsError::LengthMismatch {
            what: "beta (one per task)".into(),
            expected: alpha.len(),
            got: beta.len(),
        });
    }
    if alpha.is_empty() {
        return Err(BotsError::Empty("the posterior"));
    }
    // Every value is checked first so that a bad state never produces a file.
    for (k, (&a, &b)) in alpha.iter().zip(beta).enumerate() {
        if !(a.is_finite() && b.is_finite()) {
            return Err(err::parse(
                path,
                0,
                format!("task {k}: alpha = {a}, beta = {b} are not finite; nothing written"),
            ));
        }
    }
    if !globals.rho.is_finite() || globals.mu.is_some_and(|m| !m.is_finite()) {
        return Err(err::parse(
            path,
            0,
            format!("mu = {:?}, rho = {} are not finite; nothing written", globals.mu, globals.rho),
        ));
    }
    match format {
        Format::Jsonl => write_atomic(path, |file| {
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let io = |e| err::io(path, e);
            for (k, (a, b)) in alpha.iter().zip(beta).enumerate() {
                writeln!(w, "{{\"task\": {k}, \"alpha\": {a}, \"beta\": {b}}}").map_err(io)?;
            }
            writeln!(w, "{{\"mu\": {}, \"rho\": {}, \"step\": {}}}", mu_text(globals.mu), globals.rho, globals.step)
                .map_err(io)?;
            w.into_inner().map_err(|e| err::io(path, e.into_error()))
        }),
        Format::Parquet => write_atomic(path, |file| write_parquet(path, file, alpha, beta, globals)),
    }
}

fn mu_text(mu: Option<f32>) -> String {
    mu.map_or_else(|| "null".to_string(), |m| m.to_string())
}

fn write_parquet(path: &Path, file: File, alpha: &[f32], beta: &[f32], globals: &Globals) -> Result<File> {
    let err = pq_err(path);
    let field = |name: &str, t| {
        Type::primitive_type_builder(name, t).with_repetition(Repetition::REQUIRED).build().map(Arc::new)
    };
    let fields = vec![
        field("task", PhysicalType::INT64).map_err(&err)?,
        field("alpha", PhysicalType::FLOAT).map_err(&err)?,
        field("beta", PhysicalType::FLOAT).map_err(&err)?,
    ];
    let schema = Arc::new(Type::group_type_builder("posterior").with_fields(fields).build().map_err(&err)?);
    let meta = vec![
        KeyValue::new("mu".to_string(), mu_text(globals.mu)),
        KeyValue::new("rho".to_string(), globals.rho.to_string()),
        KeyValue::new("step".to_string(), globals.step.to_string()),
    ];
    let props = WriterProperties::builder().set_key_value_metadata(Some(meta)).build();
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(props)).map_err(&err)?;
    const GROUP: usize = 1 << 20;
    let mut ids: Vec<i64> = Vec::with_capacity(GROUP.min(alpha.len()));
    for start in (0..alpha.len()).step_by(GROUP) {
        let end = (start + GROUP).min(alpha.len());
        ids.clear();
        ids.extend((start..end).map(|k| k as i64));
        let mut group = writer.next_row_group().map_err(&err)?;
        let mut col = group.next_column().map_err(&err)?.ok_or_else(|| err(missing_col()))?;
        col.typed::<Int64Type>().write_batch(&ids, None, None).map_err(&err)?;
        col.close().map_err(&err)?;
        for values in [&alpha[start..end], &beta[start..end]] {
            let mut col = group.next_column().map_err(&err)?.ok_or_else(|| err(missing_col()))?;
            col.typed::<FloatType>().write_batch(values, None, None).map_err(&err)?;
            col.close().map_err(&err)?;
        }
        group.close().map_err(&err)?;
    }
    writer.into_inner().map_err(&err)
}

fn missing_col() -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::General("the writer has fewer columns than the schema".into())
}

/// Reads a posterior written by [`write_posterior`] (`.jsonl` or `.parquet`, by extension). Errors
/// name the file and the line (JSONL) or row (Parquet).
pub fn read_posterior(path: &Path) -> Result<Posterior> {
    let posterior = match Format::of(path)? {
        Format::Jsonl => read_jsonl(path)?,
        Format::Parquet => read_parquet(path)?,
    };
    if posterior.is_empty() {
        return Err(err::parse(path, 0, "the posterior has no tasks"));
    }
    Ok(posterior)
}

fn param(obj: &serde_json::Map<String, Value>, key: &str) -> std::result::Result<f32, String> {
    match obj.get(key) {
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN) as f32;
            if v.is_finite() && v > 0.0 {
                Ok(v)
            } else {
                Err(format!("`{key}` = {n} must be a positive finite number"))
            }
        }
        Some(v) => Err(format!("`{key}` must be a number, got {}", json_type(v))),
        None => Err(format!("missing field `{key}`")),
    }
}

fn read_jsonl(path: &Path) -> Result<Posterior> {
    let file = File::open(path).map_err(|e| err::io(path, e))?;
    let mut reader = BufReader::new(file);
    let (mut alpha, mut beta) = (Vec::new(), Vec::new());
    let mut globals: Option<Globals> = None;
    let mut line = String::new();
    let mut line_no = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| err::io(path, e))? == 0 {
            break;
        }
        line_no += 1;
        if line.trim().is_empty() {
            continue;
        }
        let at = |m: String| err::parse(path, line_no, m);
        if globals.is_some() {
            return Err(at("a line after the final `{\"mu\", \"rho\", \"step\"}` line".into()));
        }
        let value: Value = serde_json::from_str(&line).map_err(|e| at(format!("invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(at(format!("expected a JSON object, got {}", json_type(&value))));
        };
        if obj.contains_key("task") {
            let task = obj.get("task").and_then(Value::as_u64);
            if task != Some(alpha.len() as u64) || obj.len() != 3 {
                return Err(at(format!(
                    "expected {{\"task\": {}, \"alpha\": .., \"beta\": ..}} (tasks in order from 0)",
                    alpha.len()
                )));
            }
            alpha.push(param(&obj, "alpha").map_err(at)?);
            beta.push(param(&obj, "beta").map_err(at)?);
        } else {
            if obj.len() != 3 {
                return Err(at("expected the final line {\"mu\": .., \"rho\": .., \"step\": ..}".into()));
            }
            let mu = match obj.get("mu") {
                Some(Value::Null) => None,
                Some(Value::Number(n)) => Some(n.as_f64().unwrap_or(f64::NAN) as f32),
                _ => return Err(at("`mu` must be a number or null".into())),
            };
            let rho = obj.get("rho").and_then(Value::as_f64).ok_or_else(|| at("`rho` must be a number".into()))? as f32;
            let step = obj
                .get("step")
                .and_then(Value::as_u64)
                .ok_or_else(|| at("`step` must be a non-negative integer".into()))?;
            globals = Some(Globals { mu, rho, step });
        }
    }
    let globals = globals.ok_or_else(|| err::parse(path, 0, "missing the final {\"mu\", \"rho\", \"step\"} line"))?;
    Ok(Posterior { alpha, beta, globals })
}

fn read_parquet(path: &Path) -> Result<Posterior> {
    let file = File::open(path).map_err(|e| err::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(pq_err(path))?;
    let kv = reader.metadata().file_metadata().key_value_metadata();
    let get = |key: &str| -> Result<String> {
        kv.and_then(|kv| kv.iter().find(|e| e.key == key))
            .and_then(|e| e.value.clone())
            .ok_or_else(|| err::parse(path, 0, format!("key-value metadata `{key}` is missing")))
    };
    let bad = |key: &str, v: &str| err::parse(path, 0, format!("key-value metadata `{key}` = {v:?} is invalid"));
    let mu_s = get("mu")?;
    let mu = if mu_s == "null" { None } else { Some(mu_s.parse::<f32>().map_err(|_| bad("mu", &mu_s))?) };
    let rho_s = get("rho")?;
    let rho = rho_s.parse::<f32>().map_err(|_| bad("rho", &rho_s))?;
    let step_s = get("step")?;
    let step = step_s.parse::<u64>().map_err(|_| bad("step", &step_s))?;
    let positive = |key: &'static str| {
        move |v: f64| {
            let v32 = v as f32;
            if v32.is_finite() && v32 > 0.0 {
                Ok(v32)
            } else {
                Err(format!("column `{key}`: {v} must be a positive finite number"))
            }
        }
    };
    let tasks = read_numeric_column(path, &reader, "task", &Ok)?;
    if let Some((row, &t)) = tasks.iter().enumerate().find(|(i, &t)| t != *i as f64) {
        return Err(err::parse(path, 0, format!("row {row}, column `task`: {t} (tasks must be in order from 0)")));
    }
    let alpha = read_numeric_column(path, &reader, "alpha", &positive("alpha"))?;
    let beta = read_numeric_column(path, &reader, "beta", &positive("beta"))?;
    Ok(Posterior { alpha, beta, globals: Globals { mu, rho, step } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bots::{Backend, Config, CpuPool, Evidence, Features};

    fn updated_state(features: bool) -> PoolState {
        let n = 2500; // more than one Parquet batch of reads, odd values
        let cfg = Config { rho: if features { 0.1 } else { 0.0 }, ..Default::default() };
        let f = features.then(|| {
            let w: Vec<f32> = (0..n).map(|k| (k % 17) as f32 / 32.0).collect();
            let s: Vec<f32> = (0..n).map(|k| 0.5 + (k % 13) as f32 / 32.0).collect();
            Features::from_f32(&w, &s).unwrap()
        });
        let mut pool = CpuPool::new(cfg, n, f).unwrap();
        pool.update(&Evidence::pass_rates(vec![3, 17, 999], vec![0.25, 1.0, 0.0625])).unwrap();
        pool.update(&Evidence::counts(vec![4, 2400], vec![3.0, 0.0], vec![10.0, 7.0])).unwrap();
        pool.to_host().unwrap()
    }

    #[test]
    fn round_trips_exactly_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        for features in [true, false] {
            let state = updated_state(features);
            assert_eq!(state.globals.mu.is_some(), features);
            for name in ["post.jsonl", "post.parquet"] {
                let path = dir.path().join(name);
                write_posterior(&path, &state).unwrap();
                let back = read_posterior(&path).unwrap();
                assert_eq!(back, Posterior::from_state(&state), "{name}");
                // Written twice: the second write replaces the first, leaving no temporary file.
                back.write(&path).unwrap();
                assert_eq!(read_posterior(&path).unwrap(), back);
            }
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        }
    }

    #[test]
    fn jsonl_layout() {
        let mut state = PoolState::new(&Config { rho: 0.0, ..Default::default() }, 2, None).unwrap();
        state.alpha = vec![1.4, 0.5];
        state.beta = vec![2.2, 3.0];
        state.globals = Globals { mu: Some(-0.25), rho: 0.05, step: 12 };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        write_posterior(&path, &state).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"task\": 0, \"alpha\": 1.4, \"beta\": 2.2}\n{\"task\": 1, \"alpha\": 0.5, \"beta\": 3}\n\
             {\"mu\": -0.25, \"rho\": 0.05, \"step\": 12}\n"
        );
    }

    #[test]
    fn parquet_metadata() {
        let state = updated_state(true);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        write_posterior(&path, &state).unwrap();
        let reader = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let kv = reader.metadata().file_metadata().key_value_metadata().unwrap().clone();
        let get = |k: &str| kv.iter().find(|e| e.key == k).unwrap().value.clone().unwrap();
        assert_eq!(get("step"), "2");
        assert_eq!(get("rho"), "0.1");
        assert_eq!(get("mu").parse::<f32>().unwrap(), state.globals.mu.unwrap());
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2500);
    }

    #[test]
    fn bad_state_or_path_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = updated_state(false);
        state.alpha[7] = f32::NAN;
        for name in ["x.jsonl", "x.parquet"] {
            let e = write_posterior(&dir.path().join(name), &state).unwrap_err();
            assert!(e.to_string().contains("task 7"), "{e}");
        }
        let e = write_posterior(&dir.path().join("x.csv"), &updated_state(false)).unwrap_err();
        assert!(e.to_string().contains("unknown file format"), "{e}");
        let e = write_posterior(&dir.path().join("no/such/dir/x.jsonl"), &updated_state(false)).unwrap_err();
        assert!(matches!(e, BotsError::Io { .. }), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn reader_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.jsonl");
        let cases = [
            ("{\"task\": 0, \"alpha\": 1, \"beta\": 1}\n", ":0", "missing the final"),
            (
                "{\"task\": 1, \"alpha\": 1, \"beta\": 1}\n{\"mu\": null, \"rho\": 0, \"step\": 0}\n",
                ":1",
                "tasks in order",
            ),
            ("{\"task\": 0, \"alpha\": -1, \"beta\": 1}\n", ":1", "positive"),
            ("{\"task\": 0, \"alpha\": 1, \"beta\": 1}\n{\"mu\": \"x\", \"rho\": 0, \"step\": 0}\n", ":2", "`mu`"),
            (
                "{\"mu\": null, \"rho\": 0, \"step\": 0}\n{\"task\": 0, \"alpha\": 1, \"beta\": 1}\n",
                ":2",
                "after the final",
            ),
            ("{\"mu\": null, \"rho\": 0, \"step\": 0}\n", ":0", "no tasks"),
            ("nope\n", ":1", "invalid JSON"),
        ];
        for (text, at, want) in cases {
            std::fs::write(&path, text).unwrap();
            let e = read_posterior(&path).unwrap_err().to_string();
            let at_ok = if at == ":0" { e.contains("p.jsonl: ") } else { e.contains(&format!("p.jsonl{at}: ")) };
            assert!(at_ok && e.contains(want), "{text:?}: {e}");
        }
        let pq = dir.path().join("pool.parquet");
        crate::io::pool_file::tests::write_parquet(
            &pq,
            &[crate::io::pool_file::tests::Col::I64("task", vec![Some(0)])],
            4,
        );
        let e = read_posterior(&pq).unwrap_err().to_string();
        assert!(e.contains("metadata `mu` is missing"), "{e}");
    }
}
