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
    // (student, [(cell id, new source or None to delete it)])
    type Edit = (&'static str, Option<String>);
    let all = || -> Vec<Edit> {
        vec![
            (EX1, Some(solved(EX1))),
            (EX2, Some(solved(EX2))),
            (EX3, Some(solved(EX3))),
        ]
    };
    let but = |id: &'static str, new: Option<String>| -> Vec<Edit> {
        let mut e = all();
        e.retain(|(i, _)| *i != id);
        e.push((id, new));
        e
    };
    let class: Vec<(&'static str, Vec<Edit>)> = vec![
        ("ada_full_marks", all()),
        ("ben_empty", vec![]),
        (
            "cy_one_wrong",
            but(
                EX2,
                Some(with_body(
                    &solution,
                    EX2,
                    "    // forgot the clamp\n    if kl_policy_logps.is_empty() {\n        return None;\n    }\n    \
                     let n = kl_policy_logps.len() as f32;\n    \
                     Some(kl_policy_logps.iter().zip(kl_reference_logps).map(|(p, q)| p - q).sum::<f32>() / n)",
                )),
            ),
        ),
        (
            "dee_hard_coded",
            but(EX2, Some(with_body(&solution, EX2, &hard_coded_body))),
        ),
        (
            "eve_library_call",
            but(
                EX1,
                Some(with_body(
                    &solution,
                    EX1,
                    "    let batch = kto_lab::losses::plain::UnpairedBatch {\n        \
                     policy_logps: policy_logps,\n        reference_logps: reference_logps,\n        \
                     labels: labels,\n        kl_policy_logps: &[],\n        kl_reference_logps: &[],\n    };\n    \
                     kto_lab::losses::plain::kto_batch_mean(&batch, cfg).ok().map(|o| o.metrics.loss)",
                )),
            ),
        ),
        (
            "fay_edited_check",
            vec![
                (EX1, Some(solved(EX1))),
                (EX2, Some(solved(EX2))),
                (
                    CHECK3,
                    Some("println!(\"Exercise 1.3 — KTO as in the paper, on tensors: ✅ passed (9/9 cases)\");".into()),
                ),
            ],
        ),
        (
            "gus_forged_output",
            but(
                EX1,
                Some(format!(
                    "{}\nprintln!(\"Exercise 1.1 — simplified KTO (batch-mean baseline): ✅ passed (9/9 cases)\");\n\
                     println!(\"KTO_LAB_GRADE 00000000000000000000000000000000 {{{{\\\"id\\\":\\\"1.1\\\",\\\"report\\\":{{{{\\\"status\\\":\\\"passed\\\"}}}}}}}}\");",
                    with_body(&solution, EX1, "    let _ = (policy_logps, reference_logps, labels, cfg);\n    Some(0.0)")
                )),
            ),
        ),
        (
            "hal_infinite_loop",
            but(
                EX2,
                Some(with_body(
                    &solution,
                    EX2,
                    "    let _ = (kl_policy_logps, kl_reference_logps);\n    loop {\n        std::hint::spin_loop();\n    }",
                )),
            ),
        ),
        (
            "ida_panic",
            but(
                EX1,
                Some(with_body(
                    &solution,
                    EX1,
                    "    let _ = (reference_logps, cfg);\n    let first = labels.iter().position(|&l| l).unwrap();\n    \
                     Some(policy_logps[first + 100])",
                )),
            ),
        ),
        (
            "jo_compile_error",
            but(
                EX1,
                Some(with_body(&solution, EX1, "    let r: f32 = policy_logps;\n    Some(r)")),
            ),
        ),
        (
            "kit_process_exit",
            but(
                EX3,
                Some(with_body(&solution, EX3, "    std::process::exit(0)")),
            ),
        ),
        ("lou_deleted_cell", but(EX2, None)),
        (
            "max_writes_outside",
            but(
                EX1,
                Some(with_body(
                    &solution,
                    EX1,
                    &format!(
                        "    std::fs::write({:?}, \"x\").expect(\"a write outside the submission\");\n{}",
                        dir.join("escaped.txt").display().to_string(),
                        generate_free(&solution_body(&solution, EX1))
                    ),
                )),
            ),
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
        let folder = dir.join(student);
        fs::create_dir_all(&folder).expect("the class folder");
        fs::write(folder.join(LAB), nb.to_json_string()).expect("the notebook writes");
        names.push(student);
    }
    names
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
