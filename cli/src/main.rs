//! `bots`: a thin command-line shell over the library.

mod cmd;

use clap::{Parser, Subcommand};

/// Bayesian Online Task Selection: simulate, replay and benchmark BOTS task selection.
#[derive(Parser)]
#[command(name = "bots", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a synthetic RL-finetuning loop and compare task selectors on the same pool and seed.
    Simulate(cmd::simulate::Args),
    /// Rebuild a posterior from a pool file and a JSONL log of observed outcomes.
    Replay(cmd::replay::Args),
    /// Time full selection steps on a backend.
    Bench(cmd::bench::Args),
    /// Inspect checkpoint files.
    #[command(subcommand)]
    Checkpoint(cmd::checkpoint::Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Checkpoint(c) => cmd::checkpoint::run(c),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
