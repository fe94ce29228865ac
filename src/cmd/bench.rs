//! `bots bench`.

/// Arguments of `bots bench`.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`bots bench` is not implemented yet")
}
