//! File input and output: task pools ([`pool_file`]), replay logs of observed outcomes
//! ([`replay_log`]) and posteriors ([`state_out`]).
//!
//! The format of every file follows its extension: `.jsonl` (also `.ndjson`) or `.parquet`.
//! Every error names the file and, where it applies, the 1-based line (JSONL) or the 0-based row
//! (Parquet) and the column, as [`crate::BotsError::Parse`] (the file's shape) or
//! [`crate::BotsError::InFile`] (a replay line's evidence, wrapping the variant every backend gives for
//! it); nothing is written until the input is known good, and every output is written by
//! [`write_atomic`] (a temporary file in the same folder, fsync, rename, fsync of the folder).

pub mod pool_file;
pub mod replay_log;
pub mod state_out;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Writes a file atomically; the one writer of every file the crate and its binary write (checkpoints,
/// posteriors, plots, example outputs). `write` fills a new temporary file `.<name>.<pid>.<n>.tmp` in
/// the target's folder; it is then fsynced, renamed over `path`, and the folder is fsynced (on Unix) so
/// the rename itself survives a crash. If `write` or any of these steps fails, the temporary file is
/// removed and `path` is left as it was: a reader sees the old file or the new one, never a mix.
///
/// ```
/// use std::io::Write;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.txt");
/// bots::io::write_atomic(&path, |mut f| {
///     f.write_all(b"hello").map_err(|e| bots::BotsError::Io { path: "out.txt".into(), source: e })?;
///     Ok(f)
/// })
/// .unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
/// ```
pub fn write_atomic(path: &Path, write: impl FnOnce(File) -> Result<File>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| {
            let why = "the output path names a folder, not a file: give a file name, e.g. out/posterior.jsonl";
            BotsError::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, why))
        })?
        .to_string_lossy()
        .into_owned();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut attempt = 0;
    let (tmp, file) = loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match File::options().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
            Err(e) => return Err(BotsError::io(&tmp, e)),
        }
    };
    let result = write(file).and_then(|f| {
        f.sync_all().map_err(|e| BotsError::io(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| BotsError::io(path, e))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // Make the rename itself durable (POSIX; other systems cannot open a folder as a file).
    #[cfg(unix)]
    File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| BotsError::io(&dir, e))?;
    Ok(())
}

/// [`write_atomic`] of contents already in memory.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |mut f| {
        std::io::Write::write_all(&mut f, bytes).map_err(|e| BotsError::io(path, e))?;
        Ok(f)
    })
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
    fn a_path_without_a_file_name_is_an_invalid_input_error() {
        for p in ["..", "/", "out/.."] {
            let err = write_atomic(Path::new(p), Ok).unwrap_err();
            let BotsError::Io { source, .. } = &err else { panic!("{p}: {err:?}") };
            assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{p}");
            assert!(err.to_string().contains("give a file name"), "{err}");
        }
    }

    #[test]
    fn interrupted_atomic_write_keeps_the_old_file_and_leaves_no_temp_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let err = write_atomic(&path, |_f| Err(BotsError::Empty("test"))).unwrap_err();
        assert!(matches!(err, BotsError::Empty("test")));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file may be left behind");

        write_atomic(&path, |mut f| {
            f.write_all(b"old contents").unwrap();
            Ok(f)
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old contents");

        // The writer fails mid-way, after part of the new contents reached the temporary file.
        let mut tmp_seen = None;
        let err = write_atomic(&path, |mut f| {
            f.write_all(b"new, half").unwrap();
            f.flush().unwrap();
            tmp_seen = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).find(|n| n != "out.txt");
            Err(BotsError::Empty("interrupted"))
        })
        .unwrap_err();
        assert!(matches!(err, BotsError::Empty("interrupted")), "{err}");
        let tmp = tmp_seen.expect("the temporary file exists while writing");
        assert!(tmp.to_string_lossy().starts_with(".out.txt.") && tmp.to_string_lossy().ends_with(".tmp"), "{tmp:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old contents", "the old file must be intact");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.txt")], "no temporary file may be left behind");

        write_atomic(&path, |mut f| {
            f.write_all(b"new").unwrap();
            Ok(f)
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
