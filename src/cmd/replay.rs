//! `bots replay`.

/// Arguments of `bots replay`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`bots replay` is not implemented yet")
}
