//! `kto-lab-notebooks`: generate the student notebooks, check they are in sync, run notebooks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kto_lab_notebooks::generate::{self, Written};
use kto_lab_notebooks::run::{workspace, CellRun, Runner, Workspace};
use kto_lab_notebooks::{book, grade, gradebook};

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
    /// Run the solution notebooks and write the book's lab chapters from them:
    /// SRC/labs/<name>.md and its charts in SRC/labs/<name>/ (only files that changed).
    Book {
        /// The solution notebooks [default: every solutions/*.ipynb].
        notebooks: Vec<PathBuf>,
        /// The book's source folder.
        #[arg(long, default_value = "book/src")]
        src: PathBuf,
        /// Write nothing; exit 1 naming every chapter file that is missing or out of date.
        #[arg(long)]
        check: bool,
        /// The shared build folder [default: <cargo target dir>/evcxr-notebooks].
        #[arg(long, value_name = "DIR")]
        build_dir: Option<PathBuf>,
    },
    /// Grade a folder of student notebooks (SUBMISSIONS/<student>/…/<NN_lab>.ipynb) against
    /// the solutions: writes OUT/gradebook.csv and OUT/feedback/<student>.md. Exit 0 unless
    /// the grader itself failed.
    Grade {
        /// The submissions folder: one sub-folder per student.
        submissions: PathBuf,
        /// The pristine solution notebooks.
        #[arg(long, default_value = "solutions")]
        solutions: PathBuf,
        /// Where the gradebook and the feedback files go.
        #[arg(long, default_value = "grades")]
        out: PathBuf,
        /// Grade only this lab (file name or its start, e.g. 01); repeatable. A student
        /// without it gets `not-submitted` rows.
        #[arg(long = "lab", value_name = "LAB")]
        labs: Vec<String>,
        /// Submissions graded at a time.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Time limit of each cell, in seconds (the `:dep` cell excepted).
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Time limit of one submission as a whole, in seconds (compiling included); past it,
        /// its grading process and everything it started are killed and every exercise of it
        /// is `timed-out`.
        #[arg(long, default_value_t = 900.0)]
        submission_timeout: f64,
        /// Bytes of stdout and of stderr kept per cell.
        #[arg(long, default_value_t = 1 << 20)]
        output_cap: usize,
        /// Seed of the hidden tests' inputs [default: drawn for this run].
        #[arg(long)]
        seed: Option<u64>,
        /// Folder of the per-job build folders [default: <cargo target dir>/evcxr-grade].
        #[arg(long, value_name = "DIR")]
        build_dir: Option<PathBuf>,
    },
    /// Grade one submission (what `grade` runs for each, in a process of its own).
    #[command(hide = true)]
    GradeOne {
        solution: PathBuf,
        submission: PathBuf,
        #[arg(long)]
        work: PathBuf,
        #[arg(long)]
        build_dir: PathBuf,
        #[arg(long)]
        timeout: f64,
        #[arg(long)]
        output_cap: usize,
        #[arg(long)]
        seed: u64,
        #[arg(long)]
        result: PathBuf,
    },
}

fn main() -> ExitCode {
    // In a grading kernel, writes are confined before any student code runs.
    kto_lab_notebooks::sandbox::confine_if_grading();
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
        Command::Book {
            notebooks,
            src,
            check,
            build_dir,
        } => book_command(notebooks, src, check, build_dir),
        Command::Grade {
            submissions,
            solutions,
            out,
            labs,
            jobs,
            timeout,
            submission_timeout,
            output_cap,
            seed,
            build_dir,
        } => {
            let ws = workspace();
            let build_dir = build_dir
                .or_else(|| ws.as_ref().map(|w| w.target_dir.join("evcxr-grade")))
                .unwrap_or_else(|| PathBuf::from("target/evcxr-grade"));
            let opts = gradebook::Options {
                submissions,
                solutions,
                out: out.clone(),
                labs,
                jobs,
                timeout: seconds(timeout)?,
                submission_timeout: seconds(submission_timeout)?,
                output_cap,
                seed,
                build_dir,
                seed_build: ws.as_ref().map(Workspace::build_dir),
                progress: true,
            };
            let book = gradebook::grade(&opts).map_err(|e| e.to_string())?;
            print!("{}", book.summary());
            println!(
                "wrote {} and {}",
                out.join("gradebook.csv").display(),
                out.join("feedback").display()
            );
            Ok(if book.grader_errors == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!("the grader failed on {} submission(s)", book.grader_errors);
                ExitCode::FAILURE
            })
        }
        Command::GradeOne {
            solution,
            submission,
            work,
            build_dir,
            timeout,
            output_cap,
            seed,
            result,
        } => {
            let settings = grade::Settings {
                timeout: seconds(timeout)?,
                output_cap,
                seed,
            };
            let g = grade::grade_notebook(&solution, &submission, &work, &build_dir, &settings)
                .map_err(|e| e.to_string())?;
            grade::write_grade(&result, &g).map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn seconds(s: f64) -> Result<std::time::Duration, String> {
    std::time::Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--timeout {s}: expected a positive number of seconds"))
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

fn book_command(
    notebooks: Vec<PathBuf>,
    src: PathBuf,
    check: bool,
    build_dir: Option<PathBuf>,
) -> Result<ExitCode, String> {
    let ws = workspace();
    let notebooks = if notebooks.is_empty() {
        generate::solution_paths(Path::new("solutions")).map_err(|e| e.to_string())?
    } else {
        notebooks
    };
    let opts = book::Options {
        notebooks,
        src: src.clone(),
        check,
        build_dir: build_dir
            .or_else(|| ws.as_ref().map(Workspace::build_dir))
            .unwrap_or_else(|| PathBuf::from("target/evcxr-notebooks")),
        root: ws
            .as_ref()
            .map_or_else(|| PathBuf::from("."), |w| w.root.clone()),
        lockfile: ws.as_ref().map(|w| w.root.join("Cargo.lock")),
    };
    let mut ok = true;
    let outcomes = book::build(&opts, |o| {
        println!("{}", o.summary);
        match &o.result {
            Ok(drift) if drift.is_empty() => println!("  up to date"),
            Ok(drift) => {
                for d in drift {
                    let path = src.join(d.path());
                    let what = match (d, check) {
                        (book::Drift::Missing(_), true) => "missing",
                        (book::Drift::OutOfDate(_), true) => "out of date",
                        (book::Drift::Extra(_), true) => "no longer generated",
                        (book::Drift::Missing(_), false) => "created",
                        (book::Drift::OutOfDate(_), false) => "updated",
                        (book::Drift::Extra(_), false) => "removed",
                    };
                    if check {
                        eprintln!("  {}: {what}", path.display());
                    } else {
                        println!("  {what}: {}", path.display());
                    }
                }
                ok &= !check;
            }
            Err(e) => {
                eprintln!("error: {e}");
                ok = false;
            }
        }
    })
    .map_err(|e| e.to_string())?;
    let stems: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.chapter.as_ref().map(|c| c.stem.clone()))
        .collect();
    let summary_path = src.join("SUMMARY.md");
    let summary = std::fs::read_to_string(&summary_path).unwrap_or_default();
    for link in book::missing_from_summary(&summary, &stems) {
        eprintln!("error: {}: no link to {link}", summary_path.display());
        ok = false;
    }
    if check && !ok {
        eprintln!("run `cargo run --bin kto-lab-notebooks -- book` and commit book/src");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
