//! `bots checkpoint`.

/// Checkpoint verbs.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a checkpoint's header and summary statistics.
    Inspect { file: std::path::PathBuf },
}

pub fn run(_c: Command) -> anyhow::Result<()> {
    anyhow::bail!("`bots checkpoint` is not implemented yet")
}
