//! The `kto-lab` binary end to end: output, exit codes, one-line errors.

use std::path::Path;
use std::process::{Command, Output};

fn kto_lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kto-lab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the kto-lab binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure is exactly one line on stderr, nothing on stdout, exit code 1.
fn assert_one_line_error(o: &Output, expected: &str) {
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(o));
    assert_eq!(stdout(o), "");
    assert_eq!(stderr(o), format!("error: {expected}\n"));
}

#[test]
fn loss_prints_a_table_of_trl_metrics() {
    let o = kto_lab(&["loss", "tests/data/loss_kto.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    insta::assert_snapshot!("loss_kto_table", stdout(&o));
}

#[test]
fn loss_json_is_machine_readable() {
    for file in ["tests/data/loss_kto.json", "tests/data/loss_dpo.json"] {
        let o = kto_lab(&["loss", file, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
        assert!(
            v["metrics"]["loss"].as_f64().is_some_and(f64::is_finite),
            "{v}"
        );
    }
    let o = kto_lab(&["loss", "tests/data/loss_dpo.json", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["loss"], "dpo");
    assert_eq!(v["metrics"]["rewards/accuracies"], 1.0);
    assert_eq!(
        v["gradients"]["grad_policy_chosen_logps"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[test]
fn loss_errors_name_the_file_line_and_field() {
    assert_one_line_error(
        &kto_lab(&["loss", "tests/data/loss_bad_label.json"]),
        "tests/data/loss_bad_label.json:4: field `labels[1]`: invalid type: string \"thumbs down\", expected a boolean",
    );
    assert_one_line_error(
        &kto_lab(&["loss", "tests/data/loss_short.json"]),
        "tests/data/loss_short.json: `policy_logps` has 1 values but `labels` has 2: they must line up one per example",
    );
    assert_one_line_error(
        &kto_lab(&["loss", "tests/data/missing.json"]),
        "tests/data/missing.json: No such file or directory (os error 2)",
    );
}

#[test]
fn loss_reports_a_missing_field_for_the_chosen_loss() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("no_kl.json");
    std::fs::write(
        &f,
        r#"{"policy_logps": [-1.0], "reference_logps": [-1.0], "labels": [true]}"#,
    )
    .unwrap();
    let o = kto_lab(&["loss", f.to_str().unwrap()]);
    assert_one_line_error(
        &o,
        &format!(
            "{}: missing field `kl_policy_logps` (the \"kto\" loss needs it)",
            f.display()
        ),
    );
    assert!(Path::new(&f).exists());
}

#[test]
fn unknown_subcommand_fails_with_usage() {
    let o = kto_lab(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unrecognized subcommand"));
}
