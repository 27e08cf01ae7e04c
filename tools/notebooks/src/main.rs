//! `kto-lab-notebooks`: generate the student notebooks, check they are in sync, run notebooks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kto_lab_notebooks::generate::{self, Written};
use kto_lab_notebooks::run::{workspace, CellRun, Runner, Workspace};

#[derive(Parser)]
#[command(
    name = "kto-lab-notebooks",
    version,
    about = "The kto-lab notebooks: generate labs/ from solutions/, check them, run notebooks headless"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write labs/*.ipynb from solutions/*.ipynb (exercises become todo!() stubs, outputs
    /// cleared). Only labs with a solution are written; nothing is deleted.
    Generate {
        /// The solution notebooks.
        #[arg(long, default_value = "solutions")]
        solutions: PathBuf,
        /// Where the student notebooks go.
        #[arg(long, default_value = "labs")]
        labs: PathBuf,
    },
    /// Exit 1 naming every lab that is missing or differs from what `generate` writes.
    Check {
        /// The solution notebooks.
        #[arg(long, default_value = "solutions")]
        solutions: PathBuf,
        /// The student notebooks.
        #[arg(long, default_value = "labs")]
        labs: PathBuf,
    },
    /// Execute notebooks' code cells in order with evcxr (one kernel per notebook, in the
    /// notebook's folder); exit 1 if a cell fails to compile, panics, or a check fails.
    Run {
        /// The notebooks.
        #[arg(required = true)]
        notebooks: Vec<PathBuf>,
        /// Print every cell's wall time (and evcxr's phases).
        #[arg(long)]
        timings: bool,
        /// Also write each notebook, outputs filled in, into this folder.
        #[arg(long, value_name = "DIR")]
        write_executed: Option<PathBuf>,
        /// The shared build folder [default: <cargo target dir>/evcxr-notebooks].
        #[arg(long, value_name = "DIR")]
        build_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // evcxr re-executes this binary to run compiled cells: this must come first.
    evcxr::runtime_hook();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Generate { solutions, labs } => {
            let done = generate::generate(&solutions, &labs).map_err(|e| e.to_string())?;
            if done.is_empty() {
                println!("no notebooks in {}", solutions.display());
            }
            for (p, written) in done {
                let what = match written {
                    Written::Created => "created",
                    Written::Updated => "updated",
                    Written::Unchanged => "up to date",
                };
                println!("{what}: {}", p.lab.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { solutions, labs } => {
            let stale = generate::check(&solutions, &labs).map_err(|e| e.to_string())?;
            for orphan in generate::orphans(&solutions, &labs).map_err(|e| e.to_string())? {
                eprintln!(
                    "note: {} has no solution notebook (generate leaves it alone)",
                    orphan.display()
                );
            }
            if stale.is_empty() {
                println!("labs are in sync with {}", solutions.display());
                return Ok(ExitCode::SUCCESS);
            }
            for s in &stale {
                eprintln!("{s}");
            }
            eprintln!(
                "run `cargo run --bin kto-lab-notebooks -- generate` and commit {}",
                labs.display()
            );
            Ok(ExitCode::FAILURE)
        }
        Command::Run {
            notebooks,
            timings,
            write_executed,
            build_dir,
        } => run_notebooks(&notebooks, timings, write_executed.as_deref(), build_dir),
    }
}

fn run_notebooks(
    notebooks: &[PathBuf],
    timings: bool,
    write_executed: Option<&Path>,
    build_dir: Option<PathBuf>,
) -> Result<ExitCode, String> {
    // Fail on a missing or malformed notebook before the (slow) first build.
    for path in notebooks {
        kto_lab_notebooks::Notebook::load(path).map_err(|e| e.to_string())?;
    }
    let ws = workspace();
    let build_dir = build_dir
        .or_else(|| ws.as_ref().map(Workspace::build_dir))
        .unwrap_or_else(|| PathBuf::from("target/evcxr-notebooks"));
    let mut runner = Runner::new(&build_dir).map_err(|e| e.to_string())?;
    if let Some(ws) = &ws {
        runner
            .seed_lockfile(&ws.root.join("Cargo.lock"))
            .map_err(|e| e.to_string())?;
    }
    let mut ok = true;
    for path in notebooks {
        if timings {
            println!("{}:", path.display());
        }
        let report = |cell: &CellRun| {
            if timings {
                let phases: Vec<String> = cell
                    .phases
                    .iter()
                    .map(|(name, d)| format!("{name} {:.2} s", d.as_secs_f64()))
                    .collect();
                println!(
                    "  {:<28} {:>7.2} s  {}",
                    cell.at.to_string(),
                    cell.duration.as_secs_f64(),
                    phases.join(", ")
                );
            }
            if let Some(e) = &cell.error {
                eprintln!("{}: {}:", path.display(), cell.at);
                for line in e.lines() {
                    eprintln!("  {line}");
                }
            }
            if cell.panicked {
                eprintln!("{}: {} panicked:", path.display(), cell.at);
                for line in cell.stderr.lines() {
                    eprintln!("  {line}");
                }
            }
        };
        let run = runner.run(path, report).map_err(|e| e.to_string())?;
        if timings {
            println!("  (kernel start {:.2} s)", run.startup.as_secs_f64());
        }
        println!("{}", run.summary());
        if let Some(dir) = write_executed {
            let out = run.write_executed(dir).map_err(|e| e.to_string())?;
            println!("wrote {}", out.display());
        }
        ok &= run.ok() && run.checks().failed == 0;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
