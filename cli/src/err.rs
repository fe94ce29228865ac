//! Constructors of the library's error variants that the files and the simulator report.

use std::path::PathBuf;

use bots::BotsError;

pub(crate) fn config(key: impl Into<String>, reason: impl Into<String>) -> BotsError {
    BotsError::Config { key: key.into(), reason: reason.into() }
}

pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> BotsError {
    BotsError::Io { path: path.into(), source }
}

pub(crate) fn parse(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> BotsError {
    BotsError::Parse { path: path.into(), line, message: message.into() }
}

pub(crate) fn in_file(path: impl Into<PathBuf>, line: usize, cause: BotsError) -> BotsError {
    BotsError::InFile { path: path.into(), line, cause: Box::new(cause) }
}
