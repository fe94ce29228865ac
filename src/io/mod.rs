//! File input and output: task pools ([`pool_file`]), replay logs of observed outcomes
//! ([`replay_log`]) and posteriors ([`state_out`]).
//!
//! The format of every file follows its extension: `.jsonl` (also `.ndjson`) or `.parquet`.
//! Every error names the file and, where it applies, the 1-based line (JSONL) or the 0-based row
//! (Parquet) and the column, as [`crate::BotsError::Parse`]; nothing is written until the input is
//! known good, and outputs are written atomically (a temporary file in the same folder, then a rename).

pub mod pool_file;
pub mod replay_log;
pub mod state_out;

use std::path::{Path, PathBuf};

use crate::error::{BotsError, Result};

pub use pool_file::{load_pool, LoadedPool};
pub use replay_log::{replay, LogStep, ReplayLog, ReplaySummary};
pub use state_out::{read_posterior, write_posterior, Posterior};

/// The file formats this module reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
}

impl Format {
    /// The format of `path`, from its extension (case-insensitive).
    ///
    /// ```
    /// use bots::io::Format;
    /// assert_eq!(Format::of(std::path::Path::new("pool.JSONL")).unwrap(), Format::Jsonl);
    /// assert!(Format::of(std::path::Path::new("pool.csv")).is_err());
    /// ```
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(BotsError::parse(
                path,
                0,
                format!("unknown file format `.{ext}`: use .jsonl (one JSON object per line) or .parquet"),
            )),
        }
    }
}

/// Writes a file atomically: `write` fills a temporary file in the same folder, which is synced and
/// renamed over `path` only if `write` succeeds; on any error the temporary file is removed and
/// `path` is left as it was.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(std::fs::File) -> Result<std::fs::File>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| BotsError::parse(path, 0, "the output path names no file"))?
        .to_string_lossy()
        .into_owned();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut attempt = 0;
    let (tmp, file) = loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(BotsError::io(&tmp, e)),
        }
    };
    let result = write(file).and_then(|f| f.sync_all().map_err(|e| BotsError::io(&tmp, e)));
    match result {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            BotsError::io(path, e)
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension() {
        assert_eq!(Format::of(Path::new("a/b.parquet")).unwrap(), Format::Parquet);
        assert_eq!(Format::of(Path::new("b.ndjson")).unwrap(), Format::Jsonl);
        let e = Format::of(Path::new("b.json")).unwrap_err().to_string();
        assert!(e.contains("b.json") && e.contains("unknown file format"), "{e}");
        assert!(Format::of(Path::new("noext")).is_err());
    }

    #[test]
    fn atomic_write_leaves_nothing_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let err = write_atomic(&path, |_f| Err(BotsError::Empty("test"))).unwrap_err();
        assert!(matches!(err, BotsError::Empty("test")));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file may be left behind");

        write_atomic(&path, |mut f| {
            use std::io::Write;
            f.write_all(b"hello").unwrap();
            Ok(f)
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
