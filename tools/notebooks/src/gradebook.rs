//! `kto-lab-notebooks grade`: a folder of student notebooks → a gradebook.
//!
//! Submissions are found under `SUBMISSIONS/<student>/`, at any depth (nbgrader's
//! `submitted/<student>/<assignment>/<notebook>.ipynb` works too): every notebook whose file
//! name is a solution's (`01_kto_loss.ipynb`). Each submission is graded by
//! [`crate::grade`] in a process of its own (`grade-one`), so a submission that crashes its
//! kernel, or the grader, cannot touch the others; `jobs` of them run at a time, each in its own
//! build folder (evcxr builds in one folder per kernel), seeded from the first so that the
//! library compiles once. Nothing under `SUBMISSIONS` is written: each runs with a scratch
//! folder under `OUT/.work/` as its working directory, emptied first, so a re-grade starts from
//! the same state.
//!
//! Output: `OUT/gradebook.csv` (student, lab, exercise, points, max, status, reason) and
//! `OUT/feedback/<student>.md`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::generate::solution_paths;
use crate::grade::{all_exercises, exercises, NotebookGrade, Status};
use crate::notebook::{write_atomic, Notebook};

/// What `grade` needs to know.
#[derive(Debug, Clone)]
pub struct Options {
    /// The submissions folder.
    pub submissions: PathBuf,
    /// The pristine solution notebooks.
    pub solutions: PathBuf,
    /// Where the gradebook and feedback go.
    pub out: PathBuf,
    /// Only these labs (file stems or their prefixes, `01`); empty: every lab submitted.
    pub labs: Vec<String>,
    /// Submissions graded at a time.
    pub jobs: usize,
    /// Per-cell time limit.
    pub timeout: Duration,
    /// Time limit of one submission as a whole (its grading process and everything in it).
    pub submission_timeout: Duration,
    /// Per-cell output cap in bytes.
    pub output_cap: usize,
    /// The hidden tests' seed (drawn at random when `None`).
    pub seed: Option<u64>,
    /// The folder holding the per-job build folders.
    pub build_dir: PathBuf,
    /// A folder whose `target/` (an earlier notebook run's) seeds the build folders.
    pub seed_build: Option<PathBuf>,
    /// Print a line per submission as it finishes.
    pub progress: bool,
}

/// One graded (or not submitted) notebook.
#[derive(Debug, Clone)]
pub struct Row {
    /// The student (their folder's name).
    pub student: String,
    /// The lab (the solution's file stem).
    pub lab: String,
    /// The grade.
    pub grade: NotebookGrade,
}

/// The whole class.
#[derive(Debug, Clone)]
pub struct Gradebook {
    /// Students × labs, sorted.
    pub rows: Vec<Row>,
    /// Submissions the grader failed on.
    pub grader_errors: usize,
    /// The hidden tests' seed used.
    pub seed: u64,
}

struct Job {
    student: String,
    lab: String,
    solution: PathBuf,
    submission: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> crate::Error + '_ {
    move |source| crate::Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The notebooks under `dir` (recursively; hidden folders and `.ipynb_checkpoints` skipped).
/// Symbolic links are never followed: a linked notebook or folder goes to `links`, to be
/// refused (it could point at another student's work or at a solution).
fn notebooks_under(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    links: &mut Vec<PathBuf>,
) -> Result<(), crate::Error> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        let kind = fs::symlink_metadata(&p).map_err(io(&p))?.file_type();
        if kind.is_symlink() {
            links.push(p);
        } else if kind.is_dir() {
            notebooks_under(&p, out, links)?;
        } else if kind.is_file() && name.ends_with(".ipynb") {
            out.push(p);
        }
    }
    Ok(())
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Grades every submission and writes the gradebook and the feedback files.
pub fn grade(opts: &Options) -> Result<Gradebook, crate::Error> {
    let solutions = solution_paths(&opts.solutions)?;
    let mut lab_exercises = BTreeMap::new();
    for s in &solutions {
        let nb = Notebook::load(s)?;
        let ex = exercises(&nb, s).map_err(|e| crate::Error::NotANotebook {
            path: s.clone(),
            reason: e.to_string(),
        })?;
        if !ex.is_empty() {
            lab_exercises.insert(stem(s), (s.clone(), ex));
        }
    }
    let mut students: Vec<PathBuf> = fs::read_dir(&opts.submissions)
        .map_err(io(&opts.submissions))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !stem(p).starts_with('.'))
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir() || m.file_type().is_symlink()))
        .collect();
    students.sort();

    // (student, lab) → submission; and what was refused as a symbolic link.
    let mut found: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut refused: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    for dir in &students {
        let student = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (mut nbs, mut links) = (Vec::new(), Vec::new());
        if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            links.push(dir.clone());
        } else {
            notebooks_under(dir, &mut nbs, &mut links)?;
        }
        for nb in nbs {
            let lab = stem(&nb);
            if lab_exercises.contains_key(&lab) {
                found.entry((student.clone(), lab)).or_insert(nb);
            }
        }
        for link in links {
            // A linked folder may hold any lab; a linked notebook names its own.
            let labs: Vec<String> = if link.extension().is_some_and(|e| e == "ipynb") {
                vec![stem(&link)]
            } else {
                lab_exercises.keys().cloned().collect()
            };
            for lab in labs.into_iter().filter(|l| lab_exercises.contains_key(l)) {
                refused
                    .entry((student.clone(), lab))
                    .or_insert(link.clone());
            }
        }
    }
    let labs: Vec<String> = lab_exercises
        .keys()
        .filter(|lab| {
            if opts.labs.is_empty() {
                found.keys().chain(refused.keys()).any(|(_, l)| l == *lab)
            } else {
                opts.labs.iter().any(|want| lab.starts_with(want.as_str()))
            }
        })
        .cloned()
        .collect();

    let seed = opts.seed.unwrap_or_else(crate::grade::random_u64);
    let mut rows = Vec::new();
    let mut jobs = Vec::new();
    for dir in &students {
        let student = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for lab in &labs {
            let (solution, ex) = &lab_exercises[lab];
            let key = (student.clone(), lab.clone());
            match (found.get(&key), refused.get(&key)) {
                (Some(sub), _) => jobs.push(Job {
                    student: student.clone(),
                    lab: lab.clone(),
                    solution: solution.clone(),
                    submission: sub.clone(),
                }),
                (None, Some(link)) => {
                    rows.push(Row {
                        student: student.clone(),
                        lab: lab.clone(),
                        grade: all_exercises(
                            ex,
                            Status::Unreadable,
                            &format!(
                            "{} is a symbolic link: refused (only files inside the submissions \
                             folder are graded)",
                            link.strip_prefix(&opts.submissions).unwrap_or(link).display()
                        ),
                        ),
                    })
                }
                (None, None) => rows.push(Row {
                    student: student.clone(),
                    lab: lab.clone(),
                    grade: all_exercises(ex, Status::NotSubmitted, "no notebook for this lab"),
                }),
            }
        }
    }
    fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let work = opts.out.join(".work");
    let (graded, grader_errors) = run_jobs(opts, &jobs, &work, seed, &lab_exercises)?;
    rows.extend(graded);
    rows.sort_by(|a, b| (&a.student, &a.lab).cmp(&(&b.student, &b.lab)));
    let book = Gradebook {
        rows,
        grader_errors,
        seed,
    };
    write_atomic(&opts.out.join("gradebook.csv"), &book.csv())?;
    let feedback = opts.out.join("feedback");
    fs::create_dir_all(&feedback).map_err(io(&feedback))?;
    let mut by_student: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &book.rows {
        by_student.entry(&r.student).or_default().push(r);
    }
    for (student, rows) in by_student {
        write_atomic(
            &feedback.join(format!("{student}.md")),
            &feedback_markdown(student, &rows),
        )?;
    }
    let _ = fs::remove_dir_all(&work);
    Ok(book)
}

/// Copies `from/target` (and its `Cargo.lock`) into `to`, unless `to` has a build already.
fn seed_build_dir(from: &Path, to: &Path) -> Result<(), crate::Error> {
    if to.join("target").is_dir() || !from.join("target").is_dir() {
        return Ok(());
    }
    fs::create_dir_all(to).map_err(io(to))?;
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("target"))
        .arg(to)
        .status()
        .map_err(io(to))?;
    if !status.success() {
        return Err(crate::Error::Io {
            path: to.to_owned(),
            source: std::io::Error::other("cp -a of the build folder failed"),
        });
    }
    if from.join("Cargo.lock").is_file() {
        fs::copy(from.join("Cargo.lock"), to.join("Cargo.lock")).map_err(io(to))?;
    }
    Ok(())
}

fn run_jobs(
    opts: &Options,
    jobs: &[Job],
    work: &Path,
    seed: u64,
    lab_exercises: &BTreeMap<String, (PathBuf, Vec<crate::grade::Exercise>)>,
) -> Result<(Vec<Row>, usize), crate::Error> {
    let slots = opts.jobs.clamp(1, jobs.len().max(1));
    let slot_dir = |k: usize| opts.build_dir.join(format!("slot-{k}"));
    if let Some(from) = &opts.seed_build {
        seed_build_dir(from, &slot_dir(0))?;
    }
    let exe = std::env::current_exe().map_err(io(Path::new("kto-lab-notebooks")))?;
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut errors = 0;
    let mut queue: std::collections::VecDeque<&Job> = jobs.iter().collect();
    let mut running: Vec<(usize, &Job, Child, PathBuf, Instant)> = Vec::new();
    let mut free: Vec<usize> = (0..slots).rev().collect();
    // Until slot 0 has built the library once, it runs alone.
    let mut warm = slot_dir(0).join("target").is_dir();
    let mut done = 0;
    while !queue.is_empty() || !running.is_empty() {
        while let Some(&slot) = free.last() {
            if !warm && !running.is_empty() {
                break;
            }
            let Some(job) = queue.pop_front() else { break };
            free.pop();
            if slot > 0 {
                seed_build_dir(&slot_dir(0), &slot_dir(slot))?;
            }
            let dir = work.join(&job.student).join(&job.lab);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            let result = work.join(format!("{}--{}.json", job.student, job.lab));
            let log = fs::File::create(work.join(format!("{}--{}.log", job.student, job.lab)))
                .map_err(io(work))?;
            let child = Command::new(&exe)
                // Its own process group: a submission over its time is killed with everything
                // it started (the kernel, its children).
                .process_group(0)
                .arg("grade-one")
                .arg(&job.solution)
                .arg(&job.submission)
                .arg("--work")
                .arg(&dir)
                .arg("--build-dir")
                .arg(slot_dir(slot))
                .arg("--timeout")
                .arg(opts.timeout.as_secs_f64().to_string())
                .arg("--output-cap")
                .arg(opts.output_cap.to_string())
                .arg("--seed")
                .arg(seed.to_string())
                .arg("--result")
                .arg(&result)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(io(&exe))?;
            running.push((slot, job, child, result, Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut i = 0;
        while i < running.len() {
            let finished = running[i].2.try_wait().map_err(io(&exe))?;
            let Some(status) = finished else {
                if running[i].4.elapsed() > opts.submission_timeout {
                    let pgid = running[i].2.id() as i32;
                    // SAFETY: kill(2) on the process group we created for this submission.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    let _ = running[i].2.wait();
                    let (slot, job, _child, _result, _) = running.swap_remove(i);
                    free.push(slot);
                    warm = true;
                    done += 1;
                    rows.push(Row {
                        student: job.student.clone(),
                        lab: job.lab.clone(),
                        grade: all_exercises(
                            &lab_exercises[&job.lab].1,
                            Status::TimedOut,
                            &format!(
                                "the whole submission ran past its limit of {:.0} s",
                                opts.submission_timeout.as_secs_f64()
                            ),
                        ),
                    });
                    continue;
                }
                i += 1;
                continue;
            };
            let (slot, job, _child, result, _) = running.swap_remove(i);
            free.push(slot);
            warm = true;
            done += 1;
            let grade = fs::read_to_string(&result)
                .ok()
                .filter(|_| status.success())
                .and_then(|t| serde_json::from_str::<NotebookGrade>(&t).ok());
            let grade = match grade {
                Some(g) => g,
                None => {
                    errors += 1;
                    let log = work.join(format!("{}--{}.log", job.student, job.lab));
                    let last = fs::read_to_string(&log)
                        .ok()
                        .and_then(|t| t.lines().last().map(str::to_owned))
                        .unwrap_or_default();
                    eprintln!("grader error on {}: {last}", job.submission.display());
                    all_exercises(
                        &lab_exercises[&job.lab].1,
                        Status::GraderError,
                        &format!("the grader failed: {last}"),
                    )
                }
            };
            if opts.progress {
                let (p, m) = totals(&grade);
                eprintln!(
                    "[{done}/{}] {:>6.1} s  {} {}: {p}/{m} points",
                    jobs.len(),
                    started.elapsed().as_secs_f64(),
                    job.student,
                    job.lab
                );
            }
            rows.push(Row {
                student: job.student.clone(),
                lab: job.lab.clone(),
                grade,
            });
        }
    }
    Ok((rows, errors))
}

fn totals(g: &NotebookGrade) -> (f64, f64) {
    g.exercises
        .iter()
        .fold((0.0, 0.0), |(p, m), e| (p + e.points, m + e.max))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl Gradebook {
    /// `gradebook.csv`: one row per student, lab and exercise.
    pub fn csv(&self) -> String {
        let mut out = String::from("student,lab,exercise,points,max,status,reason\n");
        for r in &self.rows {
            for e in &r.grade.exercises {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    csv_field(&r.student),
                    csv_field(&r.lab),
                    csv_field(&e.id),
                    e.points,
                    e.max,
                    e.status.as_str(),
                    csv_field(&e.reason)
                ));
            }
        }
        out
    }

    /// The terminal summary: each student's points per lab and in all.
    pub fn summary(&self) -> String {
        let labs: Vec<&str> = {
            let mut l: Vec<&str> = self.rows.iter().map(|r| r.lab.as_str()).collect();
            l.sort();
            l.dedup();
            l
        };
        let mut out = format!("{:<16}", "student");
        for l in &labs {
            out.push_str(&format!(" {:>14}", l.split('_').next().unwrap_or(l)));
        }
        out.push_str(&format!(" {:>10}\n", "total"));
        let mut students: Vec<&str> = self.rows.iter().map(|r| r.student.as_str()).collect();
        students.dedup();
        for s in students {
            out.push_str(&format!("{s:<16}"));
            let (mut tp, mut tm) = (0.0, 0.0);
            for l in &labs {
                match self.rows.iter().find(|r| r.student == s && r.lab == *l) {
                    Some(r) => {
                        let (p, m) = totals(&r.grade);
                        tp += p;
                        tm += m;
                        out.push_str(&format!(" {:>14}", format!("{p}/{m}")));
                    }
                    None => out.push_str(&format!(" {:>14}", "-")),
                }
            }
            out.push_str(&format!(" {:>10}\n", format!("{tp}/{tm}")));
        }
        out
    }
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// One student's feedback: every exercise, its check table and its hint.
fn feedback_markdown(student: &str, rows: &[&Row]) -> String {
    let (p, m) = rows.iter().fold((0.0, 0.0), |(p, m), r| {
        let (a, b) = totals(&r.grade);
        (p + a, m + b)
    });
    let mut out = format!("# Feedback for {student}\n\n**{p} / {m} points**\n");
    for r in rows {
        let (a, b) = totals(&r.grade);
        out.push_str(&format!("\n## {} — {a} / {b}\n", r.lab));
        for e in &r.grade.exercises {
            let mark = if e.status == Status::Passed {
                "✅"
            } else {
                "❌"
            };
            let title = if e.title.is_empty() {
                format!("Exercise {}", e.id)
            } else {
                e.title.clone()
            };
            out.push_str(&format!(
                "\n### {mark} {title} — {} / {} ({})\n\n",
                e.points,
                e.max,
                e.status.as_str()
            ));
            if !e.reason.is_empty() {
                out.push_str(&format!("{}\n\n", e.reason));
            }
            if !e.cases.is_empty() {
                out.push_str("| | case | expected | got |\n|---|---|---|---|\n");
                for c in &e.cases {
                    out.push_str(&format!(
                        "| {} | {} | `{}` | `{}` |\n",
                        if c.ok { "✅" } else { "❌" },
                        md_cell(&c.name),
                        md_cell(&c.expected),
                        md_cell(&c.got)
                    ));
                }
                out.push('\n');
            }
            if e.status != Status::Passed && !e.hint.is_empty() {
                out.push_str(&format!("💡 Hint: {}\n", e.hint));
            }
        }
        for n in &r.grade.notes {
            out.push_str(&format!("\n> note: {n}\n"));
        }
    }
    out
}
