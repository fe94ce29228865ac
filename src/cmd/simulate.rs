//! `bots simulate`.

/// Arguments of `bots simulate`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`bots simulate` is not implemented yet")
}
