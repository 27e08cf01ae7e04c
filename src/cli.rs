//! Argument parsing and dispatch for the `kto-lab` binary.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

use kto_lab::losses::request::LossRequest;
use kto_lab::report::metrics_table;

/// kto-lab — align a language model from thumbs-up/thumbs-down feedback with KTO.
///
/// With no subcommand, runs the guided tour of the labs on built-in data and writes `out/`.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The guided tour of labs 1, 2, 4 and 5 on built-in data (the default).
    Tour {
        /// Where to write charts and data files (regenerated on every run).
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Compute a loss from log-probs and labels in a JSON file and print its metrics.
    Loss {
        /// A JSON file: {"loss": "kto", "policy_logps": [...], "reference_logps": [...], "labels": [...], ...}
        file: PathBuf,
        /// Print machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command.unwrap_or(Command::Tour { out: "out".into() }) {
        Command::Tour { out } => {
            let stdout = std::io::stdout();
            crate::tour::run(&out, &mut stdout.lock())
        }
        Command::Loss { file, json } => {
            let report = LossRequest::from_file(&file)?.compute(&file)?;
            let mut stdout = std::io::stdout().lock();
            if json {
                writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                writeln!(stdout, "{} — {}", report.loss.title(), file.display())?;
                write!(stdout, "{}", metrics_table(&report.metrics))?;
                writeln!(stdout, "gradients (negative = pushed up)")?;
                write!(stdout, "{}", metrics_table(&report.gradients))?;
            }
            Ok(())
        }
    }
}
