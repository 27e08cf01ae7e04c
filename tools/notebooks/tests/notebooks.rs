//! Executes every notebook with evcxr (harness = false: evcxr re-executes this binary to run the
//! compiled cells, so `main` must call `evcxr::runtime_hook()` first).
//!
//! - every `solutions/*.ipynb` (and the fixture in `tests/data/solutions/`): no cell error, no
//!   panic, every check `✅ passed`, outputs equal to the snapshot
//!   `tests/snapshots/notebooks__solution_<name>.snap` (normalized: see
//!   `kto_lab_notebooks::normalize`);
//! - the book's chapter of each `solutions/*.ipynb` (`book/src/labs/<name>.md`, its charts):
//!   what `kto-lab-notebooks book` makes of the same run (`KTO_LAB_BOOK_UPDATE=1` rewrites it);
//! - every `labs/*.ipynb`: runs to the end with no compile error and no panic, and every check
//!   reports `⏳ not done yet`, as many as its solution has;
//! - the runner itself on `tests/data/runner/errors.ipynb`: a panic is detected and the run goes
//!   on, a compile error stops it.
//!
//! - the grader (`kto-lab-notebooks grade`) on a fixture class of lab 1 notebooks
//!   (`grade_class`): the exact gradebook as the snapshot `notebooks__grade_class.snap`.
//!
//! Arguments as libtest takes them: `--list`, `--ignored` (nothing is ignored, so nothing runs),
//! and filters: with a filter, only notebooks whose path contains it run (`notebooks` runs all).
//! Dependencies build once in `<target>/evcxr-notebooks`, shared with `kto-lab-notebooks run`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kto_lab_notebooks::book;
use kto_lab_notebooks::generate::solution_paths;
use kto_lab_notebooks::normalize::Normalizer;
use kto_lab_notebooks::run::{workspace, NotebookRun, Runner};
use kto_lab_notebooks::Notebook;

mod grade_class;

fn main() -> ExitCode {
    evcxr::runtime_hook();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("notebooks: test");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "--ignored") {
        return ExitCode::SUCCESS;
    }
    let filters = filters(&args);
    match run_all(&filters) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failures) => {
            eprintln!("\n{} notebook problem(s):", failures.len());
            for f in &failures {
                eprintln!("- {f}");
            }
            ExitCode::FAILURE
        }
    }
}

/// libtest's free arguments (skipping the values of its options).
fn filters(args: &[String]) -> Vec<String> {
    const WITH_VALUE: &[&str] = &[
        "--test-threads",
        "--skip",
        "--color",
        "--format",
        "--logfile",
        "--shuffle-seed",
        "-Z",
    ];
    let mut out = Vec::new();
    let mut skip_next = false;
    for a in args {
        if skip_next {
            skip_next = false;
        } else if WITH_VALUE.contains(&a.as_str()) {
            skip_next = true;
        } else if !a.starts_with('-') {
            out.push(a.clone());
        }
    }
    out
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// (solution, its lab) for every solution notebook, the fixture first; paths relative to the
/// repository root (how they show in messages).
fn notebook_pairs(root: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut pairs = Vec::new();
    for (solutions, labs) in [
        (
            "tools/notebooks/tests/data/solutions",
            "tools/notebooks/tests/data/labs",
        ),
        ("solutions", "labs"),
    ] {
        let found = solution_paths(&root.join(solutions)).expect("the solutions folder reads");
        for path in found {
            let name = path.file_name().expect("a file name").to_owned();
            pairs.push((
                Path::new(solutions).join(&name),
                Path::new(labs).join(&name),
            ));
        }
    }
    pairs
}

fn selected(filters: &[String], path: &Path) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| {
            "notebooks".contains(f.as_str()) || path.to_string_lossy().contains(f.as_str())
        })
}

fn run_all(filters: &[String]) -> Result<(), Vec<String>> {
    let root = repo_root();
    let errors = Path::new("tools/notebooks/tests/data/runner/errors.ipynb");
    let run_errors = selected(filters, errors);
    let pairs: Vec<(PathBuf, PathBuf)> = notebook_pairs(&root)
        .into_iter()
        .filter(|(solution, lab)| selected(filters, solution) || selected(filters, lab))
        .collect();
    let run_grader = filters.is_empty()
        || filters
            .iter()
            .any(|f| "notebooks".contains(f.as_str()) || "grade_class".contains(f.as_str()));
    if !run_errors && pairs.is_empty() && !run_grader {
        return Ok(());
    }
    // Paths in messages and snapshots are relative to the repository root.
    std::env::set_current_dir(&root).expect("cd to the repository root");
    let ws = workspace().expect("cargo metadata works in the repository");
    let mut runner = Runner::new(&ws.build_dir()).expect("the build folder is usable");
    runner
        .seed_lockfile(&ws.root.join("Cargo.lock"))
        .expect("the lock file copies");
    let normalizer = Normalizer::new(&root, runner.build_dir());
    let mut failures = Vec::new();

    if run_errors {
        println!("the runner on a notebook made to fail (a panic, then a compile error):");
        match run_one(&mut runner, errors) {
            Ok(run) => check_errors_fixture(&run, &normalizer, &mut failures),
            Err(e) => failures.push(e),
        }
    }

    for (solution, lab) in pairs {
        let expected_checks = match run_one(&mut runner, &solution) {
            Ok(run) => {
                check_solution(&run, &normalizer, &mut failures);
                check_book_chapter(&run, &normalizer, &root, &mut failures);
                if solution.starts_with("tools/notebooks/tests/data") {
                    check_write_executed(&run, &mut failures);
                }
                run.checks().total()
            }
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        if !lab.exists() {
            failures.push(format!(
                "{} is missing: run `cargo run --bin kto-lab-notebooks -- generate`",
                lab.display()
            ));
            continue;
        }
        match run_one(&mut runner, &lab) {
            Ok(run) => check_lab(&run, expected_checks, &mut failures),
            Err(e) => failures.push(e),
        }
    }
    drop(runner);
    if run_grader {
        grade_fixture_class(&root, &ws, &mut failures);
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Grades the fixture class with the real binary, as an instructor would, and compares the
/// gradebook with its snapshot. The feedback files must exist for every student and nothing in
/// the submissions may change.
fn grade_fixture_class(
    root: &Path,
    ws: &kto_lab_notebooks::run::Workspace,
    failures: &mut Vec<String>,
) {
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let class = tmp.path().join("submitted");
    let students = grade_class::write(root, &class);
    let before = folder_bytes(&class);
    let out = tmp.path().join("grades");
    println!(
        "the grader on a class of {} lab 1 notebooks:",
        students.len()
    );
    let t = std::time::Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_kto-lab-notebooks"))
        .current_dir(root)
        .arg("grade")
        .arg(&class)
        .args(["--lab", "01", "--timeout", "45", "--jobs", "2", "--out"])
        .arg(&out)
        .arg("--build-dir")
        .arg(ws.target_dir.join("evcxr-grade"))
        .status();
    println!("graded in {:.1} s", t.elapsed().as_secs_f64());
    match status {
        Ok(s) if s.success() => {}
        other => {
            failures.push(format!("kto-lab-notebooks grade failed: {other:?}"));
            return;
        }
    }
    let leftovers = processes_with_arg(grade_class::LEFTOVER);
    if leftovers > 0 {
        failures.push(format!(
            "{leftovers} processes a submission started are still running after grading"
        ));
    }
    if class.join("escaped.txt").exists() {
        failures.push("a submission wrote outside its folder while graded".into());
    }
    if folder_bytes(&class) != before {
        failures.push("grading changed a file in the submissions folder".into());
    }
    for s in &students {
        if !out.join("feedback").join(format!("{s}.md")).is_file() {
            failures.push(format!("no feedback file for {s}"));
        }
    }
    match std::fs::read_to_string(out.join("gradebook.csv")) {
        Ok(csv) => {
            readme_excerpt_is_from(&root.join("README.md"), &csv, failures);
            snapshot("grade_class", csv, &out.join("gradebook.csv"), failures)
        }
        Err(e) => failures.push(format!("gradebook.csv: {e}")),
    }
}

/// The README's sample gradebook (the ```csv block of its grading section) must be lines of the
/// fixture class's real gradebook, so that it cannot drift from what the grader writes.
fn readme_excerpt_is_from(readme: &Path, csv: &str, failures: &mut Vec<String>) {
    let text = std::fs::read_to_string(readme).unwrap_or_default();
    let Some(block) = text
        .split("```csv\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
    else {
        failures.push("README.md has no ```csv sample gradebook".into());
        return;
    };
    let lines: Vec<&str> = csv.lines().collect();
    for line in block.lines().filter(|l| *l != "…") {
        if !lines.contains(&line) {
            failures.push(format!(
                "README.md's sample gradebook has a line the fixture class's gradebook does not: {line}"
            ));
        }
    }
}

/// Every file under `dir` with its mode and contents, sorted (links are not followed).
fn folder_bytes(dir: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else {
                let bytes = if meta.is_file() {
                    std::fs::read(&p).unwrap_or_default()
                } else {
                    Vec::new()
                };
                out.push((p.clone(), meta.permissions().mode(), bytes));
            }
        }
    }
    out.sort();
    out
}

/// How many processes have `arg` as an argument (scanning /proc).
fn processes_with_arg(arg: &str) -> usize {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
        })
        .count()
}

fn run_one(runner: &mut Runner, path: &Path) -> Result<NotebookRun, String> {
    let run = runner.run(path, |_| {}).map_err(|e| e.to_string())?;
    let slowest = run
        .cells
        .iter()
        .max_by_key(|c| c.duration)
        .map(|c| format!("; slowest {} {:.1} s", c.at, c.duration.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "{} (kernel start {:.1} s{slowest})",
        run.summary(),
        run.startup.as_secs_f64()
    );
    Ok(run)
}

/// Problems common to solutions and labs: a cell that did not compile, a panic.
fn cell_problems(run: &NotebookRun, failures: &mut Vec<String>) {
    if let Some(cell) = run.error_cell() {
        failures.push(format!(
            "{}: {} did not compile or run:\n{}",
            run.path.display(),
            cell.at,
            indent(cell.error.as_deref().unwrap_or(""))
        ));
    }
    for cell in run.panicked_cells() {
        failures.push(format!(
            "{}: {} panicked:\n{}",
            run.path.display(),
            cell.at,
            indent(&cell.stderr)
        ));
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_solution(run: &NotebookRun, normalizer: &Normalizer, failures: &mut Vec<String>) {
    cell_problems(run, failures);
    let checks = run.checks();
    if checks.failed > 0 || checks.not_done > 0 {
        failures.push(format!(
            "{}: every check must pass in a solution; got {checks}",
            run.path.display()
        ));
    }
    let stem = run
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    snapshot(
        &format!("solution_{stem}"),
        normalizer.run(run),
        &run.path,
        failures,
    );
}

/// The book's chapter of a solution notebook (`book/src/labs/<name>.md` and its charts) is what
/// `kto-lab-notebooks book` makes of this same run; with `KTO_LAB_BOOK_UPDATE=1` it is rewritten
/// instead (never in CI).
fn check_book_chapter(
    run: &NotebookRun,
    normalizer: &Normalizer,
    root: &Path,
    failures: &mut Vec<String>,
) {
    if !run.path.starts_with("solutions") {
        return;
    }
    let src = root.join("book/src");
    let chapter = match book::chapter(run, normalizer) {
        Ok(c) => c,
        Err(e) => return failures.push(e.to_string()),
    };
    let update = std::env::var_os("KTO_LAB_BOOK_UPDATE").is_some_and(|v| v == "1");
    let drift = if update {
        book::write(&chapter, &src, normalizer)
    } else {
        book::compare(&chapter, &src, normalizer)
    };
    match drift {
        Ok(drift) if update => {
            for d in drift {
                println!("book: rewrote book/src/{}", d.path().display());
            }
        }
        Ok(drift) => {
            for d in drift {
                failures.push(format!(
                    "book/src/{d} (from {}): run `cargo run --bin kto-lab-notebooks -- book` \
                     (or `KTO_LAB_BOOK_UPDATE=1 cargo test --test notebooks`) and commit book/src",
                    run.path.display()
                ));
            }
        }
        Err(e) => failures.push(e.to_string()),
    }
}

fn check_lab(run: &NotebookRun, solution_checks: usize, failures: &mut Vec<String>) {
    cell_problems(run, failures);
    let checks = run.checks();
    if checks.passed > 0 || checks.failed > 0 || checks.not_done != solution_checks {
        failures.push(format!(
            "{}: every check must report not done yet, {solution_checks} like its solution; got {checks}",
            run.path.display()
        ));
    }
}

/// Compares with the insta snapshot `name`, recording a mismatch instead of stopping.
fn snapshot(name: &str, text: String, path: &Path, failures: &mut Vec<String>) {
    // insta prints the diff, then panics: keep the panic's message and backtrace out.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(|| {
        insta::assert_snapshot!(name, text);
    }));
    std::panic::set_hook(previous);
    if result.is_err() {
        let snap = format!("tools/notebooks/tests/snapshots/notebooks__{name}.snap");
        let what = if Path::new(&snap).exists() {
            "outputs differ from"
        } else {
            "no snapshot yet:"
        };
        failures.push(format!(
            "{}: {what} {snap} (diff above; accept with `cargo insta review` after a local run)",
            path.display()
        ));
    }
}

/// The runner on a notebook made to fail: a panic is reported and later cells still run; a
/// compile error stops the run.
fn check_errors_fixture(run: &NotebookRun, normalizer: &Normalizer, failures: &mut Vec<String>) {
    let flags: Vec<(bool, bool)> = run
        .cells
        .iter()
        .map(|c| (c.panicked, c.error.is_some()))
        .collect();
    if flags != [(false, false), (true, false), (false, false), (false, true)] || run.ok() {
        failures.push(format!(
            "{}: expected cells 1..4 to be ok, panic, ok, compile error, then stop; got {flags:?}",
            run.path.display()
        ));
    }
    snapshot("runner_errors", normalizer.run(run), &run.path, failures);
}

/// `--write-executed`: the notebook with outputs filled in is a valid notebook with every code
/// cell numbered and the outputs in Jupyter's shapes.
fn check_write_executed(run: &NotebookRun, failures: &mut Vec<String>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let result = run
        .write_executed(dir.path())
        .map_err(|e| e.to_string())
        .and_then(|p| Notebook::load(&p).map_err(|e| e.to_string()));
    let nb = match result {
        Ok(nb) => nb,
        Err(e) => {
            failures.push(format!("{}: write_executed: {e}", run.path.display()));
            return;
        }
    };
    let mut kinds = Vec::new();
    for cell in nb.code_cells() {
        let json = cell.json();
        let count = json["execution_count"].as_u64();
        let outputs: Vec<String> = json["outputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| {
                let kind = o["output_type"].as_str().unwrap_or("?").to_owned();
                match o["name"].as_str() {
                    Some(name) => format!("{kind}:{name}"),
                    None => match o["data"].as_object() {
                        Some(data) => format!(
                            "{kind}:{}",
                            data.keys().cloned().collect::<Vec<_>>().join("+")
                        ),
                        None => kind,
                    },
                }
            })
            .collect();
        kinds.push(format!("{count:?} {}", outputs.join(" ")));
    }
    let got = kinds.join("\n");
    let expected = "Some(1) \n\
                    Some(2) \n\
                    Some(3) execute_result:text/html+text/plain\n\
                    Some(4) \n\
                    Some(5) execute_result:text/html+text/plain\n\
                    Some(6) stream:stdout stream:stderr execute_result:image/svg+xml";
    if got != expected {
        failures.push(format!(
            "{}: the executed notebook's outputs are\n{got}\nexpected\n{expected}",
            run.path.display()
        ));
    }
}
