use super::*;

#[test]
fn demo_cells_nothing_graded_needs_are_left_out() {
    let cell = |index: usize, role: Role, source: &str| PlanCell {
        at: CellRef { index, id: None },
        role,
        source: source.to_owned(),
    };
    let answer = || Role::Answer("1.1".into());
    let plan = vec![
        cell(0, Role::Dep, ":dep kto-lab = { path = \"..\" }"),
        cell(1, Role::Setup, "use kto_lab::losses::KtoConfig;"),
        cell(
            2,
            Role::Setup,
            "let cfg: KtoConfig = KtoConfig::default();\ncfg",
        ),
        cell(
            3,
            Role::Setup,
            "let shown = 2.0_f32;\nprintln!(\"{shown} {cfg:?}\");",
        ),
        cell(4, Role::Setup, "chart.evcxr_display()"),
        cell(5, Role::Setup, "const N: usize = 3;"),
        cell(
            6,
            answer(),
            "let _ = (); fn f(x: f32) -> f32 { x * cfg.beta as f32 }",
        ),
        cell(7, Role::Setup, "let later = 1;"),
    ];
    let kept: Vec<usize> = without_demo_cells(plan)
        .iter()
        .map(|c| c.at.index)
        .collect();
    // 2 binds `cfg`, which the answer reads; 3 and 4 show things; 5 is an item; 7 comes
    // after everything graded.
    assert_eq!(kept, [0, 1, 2, 5, 6]);
}

#[test]
fn library_paths_become_absolute() {
    assert_eq!(
        absolute_paths("kto_lab::checks::lab1::f(f)\n.with_hidden(|| checks::lab3::g(g))"),
        "::kto_lab::checks::lab1::f(f)\n.with_hidden(|| ::kto_lab::checks::lab3::g(g))"
    );
    assert_eq!(
        absolute_paths("::kto_lab::x; my_checks::y"),
        "::kto_lab::x; my_checks::y"
    );
}

#[test]
fn the_dep_line_asks_for_the_exam_build() {
    assert_eq!(
        exam_dep(":dep kto-lab = { path = \"/repo\" }"),
        ":dep kto-lab = { path = \"/repo\", features = [\"exam\"] }"
    );
}

#[test]
fn a_private_answer_in_a_compile_error_is_a_reference_call() {
    let e =
        "error[E0603]: function `reference_point` is private\n  --> line 3:40: private function";
    assert_eq!(
        reference_calls(e).as_deref(),
        Some("kto_lab::losses::kto::reference_point")
    );
    let m = "error[E0624]: method `to_training_line` is private";
    assert_eq!(
        reference_calls(m).as_deref(),
        Some("kto_lab::feedback::Record::to_training_line")
    );
    assert_eq!(
        reference_calls("error[E0603]: function `helper` is private"),
        None
    );
    assert_eq!(reference_calls("error[E0308]: mismatched types"), None);
}

#[test]
fn demonstrations_of_the_answers_are_recognised() {
    assert!(uses_answer_key("let t = plain::kto_batch_mean(&b, &cfg)?;"));
    assert!(uses_answer_key(
        "println!(\"{}\", prospect::value(1.0, &p));"
    ));
    assert!(uses_answer_key("for r in final_votes(&clicks) {}"));
    assert!(uses_answer_key("r.to_training_line()"));
    assert!(!uses_answer_key("let cfg = KtoConfig::default();"));
    assert!(!uses_answer_key("fn kto_loss(d: f64) -> f64 { d }"));
}

/// A notebook of code cells: (id, exercise metadata, source).
fn notebook(cells: &[(Option<&str>, Option<&str>, &str)]) -> Notebook {
    let cells: Vec<serde_json::Value> = cells
        .iter()
        .map(|(id, ex, src)| {
            let mut c = serde_json::json!({
                "cell_type": "code", "metadata": {}, "source": src,
                "outputs": [], "execution_count": null
            });
            if let Some(id) = id {
                c["id"] = (*id).into();
            }
            if let Some(ex) = ex {
                c["metadata"] = serde_json::json!({"kto_lab": {"exercise": ex}});
            }
            c
        })
        .collect();
    let json = serde_json::json!({
        "cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5
    });
    Notebook::parse(&json.to_string(), Path::new("t.ipynb")).unwrap()
}

#[test]
fn the_students_cell_is_found_by_id_then_metadata_then_position() {
    let solution = notebook(&[
        (Some("a"), None, "setup"),
        (Some("ex"), Some("1.1"), "solution"),
        (Some("b"), None, "check"),
    ]);
    let sol = solution.code_cells();
    let find = |student: &Notebook, notes: &mut Vec<String>| {
        let cells = student.code_cells();
        students_cell(&cells, &sol, &sol[1], "1.1", notes).map(|c| c.source())
    };
    let mut notes = Vec::new();
    // By id; a duplicated id takes the last copy, with a note.
    let dup = notebook(&[
        (Some("a"), None, "setup"),
        (Some("ex"), None, "first"),
        (Some("ex"), None, "last"),
        (Some("b"), None, "check"),
    ]);
    assert_eq!(find(&dup, &mut notes).as_deref(), Some("last"));
    assert!(notes[0].contains("appears 2 times"), "{notes:?}");
    // No ids (nbformat 4.4, Colab): the exercise metadata…
    let meta = notebook(&[
        (None, None, "setup"),
        (None, Some("1.1"), "mine"),
        (None, None, "c"),
    ]);
    assert_eq!(find(&meta, &mut notes).as_deref(), Some("mine"));
    // …or, without it, the position when the cells are the lab's.
    let bare = notebook(&[
        (None, None, "setup"),
        (None, None, "mine"),
        (None, None, "c"),
    ]);
    assert_eq!(find(&bare, &mut notes).as_deref(), Some("mine"));
    // Cells added or deleted and no id or metadata: not found (graded as missing).
    let other = notebook(&[(None, None, "setup"), (None, None, "mine")]);
    assert_eq!(find(&other, &mut notes), None);
}

#[test]
fn dep_paths_become_absolute() {
    let out = absolute_dep(":dep kto-lab = { path = \"..\" }", Path::new("/tmp"));
    assert_eq!(out, ":dep kto-lab = { path = \"/\" }");
}

#[test]
fn an_unreadable_submission_scores_zero_naming_the_file_and_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let solution = root.join("solutions/01_kto_loss.ipynb");
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("01_kto_loss.ipynb");
    fs::write(&broken, "{\n \"cells\": [\n").unwrap();
    let settings = Settings {
        timeout: Duration::from_secs(1),
        output_cap: 1024,
        seed: 1,
    };
    let g = grade_notebook(&solution, &broken, tmp.path(), tmp.path(), &settings).unwrap();
    assert_eq!(g.exercises.len(), 3);
    for e in &g.exercises {
        assert_eq!(e.status, Status::Unreadable);
        assert_eq!(e.points, 0.0);
        assert!(e.reason.contains("01_kto_loss.ipynb:3:"), "{}", e.reason);
    }
}

#[test]
fn the_solutions_declare_their_exercises() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut ids = Vec::new();
    for p in crate::generate::solution_paths(&root.join("solutions")).unwrap() {
        let nb = Notebook::load(&p).unwrap();
        ids.extend(exercises(&nb, &p).unwrap().into_iter().map(|e| e.id));
    }
    assert_eq!(ids.len(), 16, "{ids:?}");
}
