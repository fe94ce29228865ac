//! The one writer of every file the crate writes (checkpoints), and of the application's outputs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{BotsError, Result};

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
/// bots::__private::write_atomic(&path, |mut f| {
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
