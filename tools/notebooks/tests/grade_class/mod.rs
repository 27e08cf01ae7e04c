//! The fixture class for the grader: students' lab 1 notebooks, each made from `labs/` the way a
//! student would (filling in, breaking or cheating on exercise cells), so the class never drifts
//! from the lab. Written fresh into a temporary folder by the test.

use std::fs;
use std::path::Path;

use kto_lab_notebooks::Notebook;
use serde_json::Value;

const LAB: &str = "01_kto_loss.ipynb";
/// Exercise cells of lab 1 and their check cells, by id.
const EX1: &str = "lab1-07";
const EX2: &str = "lab1-17";
const EX3: &str = "lab1-23";
const CHECK3: &str = "lab1-25";

fn cell_index(nb: &Notebook, id: &str) -> usize {
    nb.cells()
        .iter()
        .find(|c| c.at().id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("lab 1 has a cell {id}"))
        .at()
        .index
}

fn source(nb: &Notebook, id: &str) -> String {
    nb.cells()[cell_index(nb, id)].source()
}

/// The solution's cell `id` with its solution region replaced by `body`.
fn with_body(solution: &Notebook, id: &str, body: &str) -> String {
    let src = source(solution, id);
    let region = solution_body(solution, id);
    src.replacen(&region, body, 1)
}

/// The answers lab 1's visible check of exercise 1.2 expects, in the order it asks: what a
/// student copying the "expected" column would hard-code.
fn visible_answers_1_2() -> Vec<Option<f32>> {
    let asked = std::cell::RefCell::new(Vec::new());
    let report = kto_lab::checks::lab1::reference_point(|p: &[f32], r: &[f32]| {
        // Written out: the check would catch the library's own reference_point.
        let z0 = (!p.is_empty()).then(|| {
            let sum: f64 = p.iter().zip(r).map(|(a, b)| f64::from(a - b)).sum();
            (sum / p.len() as f64).max(0.0) as f32
        });
        asked.borrow_mut().push(z0);
        z0
    });
    assert!(report.passed(), "{report}");
    asked.into_inner()
}

/// Writes the class under `dir/<student>/01_kto_loss.ipynb`; returns the student names.
pub fn write(root: &Path, dir: &Path) -> Vec<&'static str> {
    let lab = Notebook::load(&root.join("labs").join(LAB)).expect("lab 1 reads");
    let solution = Notebook::load(&root.join("solutions").join(LAB)).expect("solution 1 reads");
    let solved = |id: &str| generate_free(&source(&solution, id));
    let hard_coded: Vec<String> = visible_answers_1_2()
        .iter()
        .map(|a| match a {
            Some(x) => format!("Some({x:?}f32)"),
            None => "None".into(),
        })
        .collect();
    let hard_coded_body = format!(
        "    // The \"expected\" column of the check, copied in the order it asks.\n    \
         use std::sync::atomic::{{AtomicUsize, Ordering}};\n    \
         static CALL: AtomicUsize = AtomicUsize::new(0);\n    \
         const ANSWERS: [Option<f32>; {}] = [{}];\n    \
         let _ = (kl_policy_logps, kl_reference_logps);\n    \
         ANSWERS.get(CALL.fetch_add(1, Ordering::SeqCst)).copied().flatten()",
        hard_coded.len(),
        hard_coded.join(", ")
    );
    // What each kind of student writes in one exercise cell (None: the cell deleted).
    let one_wrong = with_body(
        &solution,
        EX2,
        "    // forgot the clamp\n    if kl_policy_logps.is_empty() {\n        return None;\n    }\n    \
         let n = kl_policy_logps.len() as f32;\n    \
         Some(kl_policy_logps.iter().zip(kl_reference_logps).map(|(p, q)| p - q).sum::<f32>() / n)",
    );
    let hard_coded = with_body(&solution, EX2, &hard_coded_body);
    let library_call = with_body(
        &solution,
        EX1,
        "    let batch = kto_lab::losses::plain::UnpairedBatch {\n        \
         policy_logps: policy_logps,\n        reference_logps: reference_logps,\n        \
         labels: labels,\n        kl_policy_logps: &[],\n        kl_reference_logps: &[],\n    };\n    \
         kto_lab::losses::plain::kto_batch_mean(&batch, cfg).ok().map(|o| o.metrics.loss)",
    );
    let forged_output = format!(
        "{}\nprintln!(\"Exercise 1.1 — simplified KTO (batch-mean baseline): ✅ passed (9/9 cases)\");\n\
         println!(\"KTO_LAB_GRADE 00000000000000000000000000000000 {{{{\\\"id\\\":\\\"1.1\\\",\\\"report\\\":{{{{\\\"status\\\":\\\"passed\\\"}}}}}}}}\");",
        with_body(&solution, EX1, "    let _ = (policy_logps, reference_logps, labels, cfg);\n    Some(0.0)")
    );
    let edited_check =
        "println!(\"Exercise 1.3 — KTO as in the paper, on tensors: ✅ passed (9/9 cases)\");"
            .to_owned();
    let endless_loop = with_body(
        &solution,
        EX2,
        "    let _ = (kl_policy_logps, kl_reference_logps);\n    loop {\n        std::hint::spin_loop();\n    }",
    );
    let panic = with_body(
        &solution,
        EX1,
        "    let _ = (reference_logps, cfg);\n    let first = labels.iter().position(|&l| l).unwrap();\n    \
         Some(policy_logps[first + 100])",
    );
    let compile_error = with_body(
        &solution,
        EX1,
        "    let r: f32 = policy_logps;\n    Some(r)",
    );
    let process_exit = with_body(&solution, EX3, "    std::process::exit(0)");
    let writes_outside = with_body(
        &solution,
        EX1,
        &format!(
            "    std::fs::write({:?}, \"x\").expect(\"a write outside the submission\");\n{}",
            dir.join("escaped.txt").display().to_string(),
            generate_free(&solution_body(&solution, EX1))
        ),
    );
    // A reference called from a thread of the student's own: the grader's build of the library
    // has no such function, so it does not compile, whatever thread calls it.
    let thread_reference = with_body(
        &solution,
        EX1,
        "    let (p, r, l, c) = (policy_logps.to_vec(), reference_logps.to_vec(), labels.to_vec(), *cfg);\n    \
         std::thread::spawn(move || {\n        \
         let b = kto_lab::losses::plain::UnpairedBatch {\n            \
         policy_logps: &p,\n            reference_logps: &r,\n            labels: &l,\n            \
         kl_policy_logps: &[],\n            kl_reference_logps: &[],\n        };\n        \
         kto_lab::losses::plain::kto_batch_mean(&b, &c).ok().map(|o| o.metrics.loss)\n    \
         })\n    .join()\n    .unwrap()",
    );
    // Snooping: a right answer only while the other student's notebook and the pristine
    // solution stay unreadable (a leak turns the row from passed to failed).
    let snooping = with_body(
        &solution,
        EX2,
        &format!(
            "    for secret in [{:?}, {:?}] {{\n        \
             if std::fs::read(secret).is_ok() {{\n            return Some(-1.0);\n        }}\n    }}\n{}",
            dir.join("ada_full_marks").join(LAB).display().to_string(),
            root.join("solutions").join(LAB).display().to_string(),
            generate_free(&solution_body(&solution, EX2))
        ),
    );
    // Vandalism: truncate and chmod another student's notebook (must fail), then answer.
    let vandal = with_body(
        &solution,
        EX3,
        &format!(
            "    let victim = {:?};\n    \
             let _ = std::fs::OpenOptions::new().write(true).open(victim).map(|f| f.set_len(0));\n    \
             {{\n        use std::os::unix::fs::PermissionsExt;\n        \
             let _ = std::fs::set_permissions(victim, std::fs::Permissions::from_mode(0));\n    }}\n{}",
            dir.join("ada_full_marks").join(LAB).display().to_string(),
            generate_free(&solution_body(&solution, EX3))
        ),
    );
    // Touching the hidden seed in the student's own kernel changes nothing the judge draws.
    let seed_toucher = format!(
        "kto_lab::checks::grading::set_hidden_seed(7);\n{}",
        solved(EX1)
    );
    // Leaves processes behind: none may survive the grading run.
    let sleepers = with_body(
        &solution,
        EX2,
        &format!(
            "    for _ in 0..30 {{\n        \
             let _ = std::process::Command::new(\"sleep\").arg({LEFTOVER:?}).spawn();\n    }}\n{}",
            generate_free(&solution_body(&solution, EX2))
        ),
    );
    // Each student but the first two breaks or cheats on several exercises at once, one way
    // each, so the class also shows that what happens in one exercise (a panic, a time-out and
    // the kernel's restart, an exit) costs only that exercise. (student, [(cell id, its new
    // source or None to delete it)]); cells not named stay as the lab has them.
    type Edit = (&'static str, Option<String>);
    let class: Vec<(&'static str, Vec<Edit>)> = vec![
        (
            "ada_full_marks",
            vec![
                (EX1, Some(solved(EX1))),
                (EX2, Some(solved(EX2))),
                (EX3, Some(solved(EX3))),
            ],
        ),
        ("ben_empty", vec![]),
        (
            "cy_library_call_one_wrong",
            vec![
                (EX1, Some(library_call)),
                (EX2, Some(one_wrong)),
                (EX3, Some(solved(EX3))),
            ],
        ),
        (
            "dee_forged_hard_coded_edited_check",
            vec![
                (EX1, Some(forged_output)),
                (EX2, Some(hard_coded)),
                (CHECK3, Some(edited_check)),
            ],
        ),
        (
            "hal_panic_endless_loop",
            vec![
                (EX1, Some(panic)),
                (EX2, Some(endless_loop)),
                (EX3, Some(solved(EX3))),
            ],
        ),
        (
            "jo_compile_error_deleted_exit",
            vec![
                (EX1, Some(compile_error)),
                (EX2, None),
                (EX3, Some(process_exit)),
            ],
        ),
        (
            "kai_thread_reference_snooping_vandal",
            vec![
                (EX1, Some(thread_reference)),
                (EX2, Some(snooping)),
                (EX3, Some(vandal)),
            ],
        ),
        (
            // Saved as Colab and nbformat 4.4 save: no cell ids (see `without_ids`).
            "mo_colab_no_ids_touches_seed",
            vec![
                (EX1, Some(seed_toucher)),
                (EX2, Some(solved(EX2))),
                (EX3, Some(solved(EX3))),
            ],
        ),
        (
            // Exercise 1.1's cell twice, a wrong copy first (see `DUPLICATED`).
            "ned_duplicate_id_sleepers",
            vec![
                (EX1, Some(solved(EX1))),
                (EX2, Some(sleepers)),
                (EX3, Some(solved(EX3))),
            ],
        ),
        (
            "max_writes_outside",
            vec![
                (EX1, Some(writes_outside)),
                (EX2, Some(solved(EX2))),
                (EX3, Some(solved(EX3))),
            ],
        ),
    ];
    let mut names = Vec::new();
    for (student, edits) in class {
        let mut nb = lab.clone();
        let mut deleted = Vec::new();
        for (id, new) in &edits {
            let i = cell_index(&lab, id);
            match new {
                Some(src) => {
                    nb.set_source(i, src);
                }
                None => deleted.push(i),
            }
        }
        if !deleted.is_empty() {
            let mut json = nb.json().clone();
            if let Value::Array(cells) = &mut json["cells"] {
                deleted.sort_unstable();
                for i in deleted.into_iter().rev() {
                    cells.remove(i);
                }
            }
            nb = Notebook::parse(&json.to_string(), Path::new(LAB)).expect("still a notebook");
        }
        if student.starts_with("mo_") {
            nb = without_ids(&nb);
        }
        if student.starts_with("ned_") {
            let mut json = nb.json().clone();
            let i = cell_index(&nb, EX1);
            let mut wrong = json["cells"][i].clone();
            wrong["source"] = Value::from(with_body(
                &solution,
                EX1,
                "    let _ = (policy_logps, reference_logps, labels, cfg);\n    Some(0.0)",
            ));
            if let Value::Array(cells) = &mut json["cells"] {
                cells.insert(i, wrong);
            }
            nb = Notebook::parse(&json.to_string(), Path::new(LAB)).expect("still a notebook");
        }
        let folder = dir.join(student);
        fs::create_dir_all(&folder).expect("the class folder");
        fs::write(folder.join(LAB), nb.to_json_string()).expect("the notebook writes");
        names.push(student);
    }
    // A student folder that is a symbolic link to a folder outside the class, holding a link to
    // the pristine solution: refused, never graded.
    let outside = dir.with_file_name("outside-the-class");
    fs::create_dir_all(&outside).expect("a folder outside the class");
    let _ = fs::remove_file(outside.join(LAB));
    std::os::unix::fs::symlink(root.join("solutions").join(LAB), outside.join(LAB))
        .expect("a link to the solution");
    std::os::unix::fs::symlink(&outside, dir.join("oli_symlinked_solution"))
        .expect("a linked student folder");
    names.push("oli_symlinked_solution");
    names
}

/// The argument of the `sleep` processes a submission leaves behind: the test looks for it.
pub const LEFTOVER: &str = "987.654";

/// The notebook as nbformat 4.4 (and Colab) saves it: no cell ids.
fn without_ids(nb: &Notebook) -> Notebook {
    let mut json = nb.json().clone();
    json["nbformat_minor"] = Value::from(4);
    if let Value::Array(cells) = &mut json["cells"] {
        for c in cells {
            if let Value::Object(o) = c {
                o.remove("id");
            }
        }
    }
    Notebook::parse(&json.to_string(), Path::new(LAB)).expect("still a notebook")
}

/// The solution region of cell `id`, markers included.
fn solution_body(solution: &Notebook, id: &str) -> String {
    let src = source(solution, id);
    let start = src
        .find("    // BEGIN SOLUTION")
        .expect("a solution region");
    let end = src.find("// END SOLUTION").expect("its end") + "// END SOLUTION".len();
    src[start..end].to_owned()
}

/// The solution's source with its markers dropped (what a student who solved it has).
fn generate_free(src: &str) -> String {
    src.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("// BEGIN SOLUTION") && !t.starts_with("// END SOLUTION")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
