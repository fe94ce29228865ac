//! File input and output: task pools ([`pool_file`]), replay logs of observed outcomes
//! ([`replay_log`]) and posteriors ([`state_out`]).
//!
//! The format of every file follows its extension: `.jsonl` (also `.ndjson`) or `.parquet`.
//! Every error names the file and, where it applies, the 1-based line (JSONL) or the 0-based row
//! (Parquet) and the column, as [`bots::BotsError::Parse`] (the file's shape) or
//! [`bots::BotsError::InFile`] (a replay line's evidence, wrapping the variant every backend gives for
//! it); nothing is written until the input is known good, and every output is written by
//! [`write_atomic`] (a temporary file in the same folder, fsync, rename, fsync of the folder).

pub mod pool_file;
pub mod replay_log;
pub mod state_out;

use std::path::Path;

use bots::Result;

use crate::err;
pub use bots::__private::{write_atomic, write_bytes_atomic};

pub use pool_file::{load_embeddings, load_pool, Embeddings, LoadedPool};
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
    /// use bots_cli::io::Format;
    /// assert_eq!(Format::of(std::path::Path::new("pool.JSONL")).unwrap(), Format::Jsonl);
    /// assert!(Format::of(std::path::Path::new("pool.csv")).is_err());
    /// ```
    pub fn of(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(err::parse(
                path,
                0,
                format!("unknown file format `.{ext}`: use .jsonl (one JSON object per line) or .parquet"),
            )),
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
}
