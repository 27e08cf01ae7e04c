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

/// `kto-lab feedback add FILE --prompt P --completion C` with `more` (the vote, metadata…).
fn feedback_add(file: &str, prompt: &str, completion: &str, more: &[&str]) -> Output {
    let args = [
        "feedback",
        "add",
        file,
        "--prompt",
        prompt,
        "--completion",
        completion,
    ];
    kto_lab(&[&args[..], more].concat())
}

#[test]
fn feedback_add_stats_export_and_never_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fb.jsonl");
    let f = file.to_str().unwrap();
    let o = feedback_add(f, "What is Python?", "A language.", &["--up"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("{f}: thumbs up recorded (at byte 0)\n"));
    let o = feedback_add(
        f,
        "What is Python?",
        "A snake.",
        &["--down", "--metadata", r#"{"user": "ana"}"#],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        lines.lines().nth(1),
        Some(
            r#"{"prompt":"What is Python?","completion":"A snake.","label":false,"metadata":{"user":"ana"}}"#
        )
    );

    let o = kto_lab(&["feedback", "stats", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with(&format!(
        "{f}: 2 records: 1 desirable (thumbs up), 1 undesirable"
    )));
    let o = kto_lab(&[
        "feedback",
        "stats",
        f,
        "--json",
        "--desirable-weight",
        "1.2",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stats"]["total"], 2);
    assert_eq!(v["imbalance"]["in_range"], true);

    let dest = dir.path().join("train.jsonl");
    let d = dest.to_str().unwrap();
    let o = kto_lab(&["feedback", "export", f, d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = std::fs::read_to_string(&dest).unwrap();
    assert!(!exported.contains("metadata"));
    // A second export refuses to overwrite, and the first file is byte-identical.
    let o = kto_lab(&["feedback", "export", f, d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already exists; refusing to overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), exported);
}

#[test]
fn feedback_add_rejects_bad_input_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fb.jsonl");
    let f = file.to_str().unwrap();
    let o = feedback_add(f, "p", "c", &["--up", "--metadata", "[1]"]);
    assert_one_line_error(
        &o,
        "--metadata: must be a JSON object, like '{\"user\": \"ana\"}'",
    );
    let o = feedback_add(f, "p", "c", &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "neither --up nor --down is a usage error"
    );
    let o = feedback_add(f, "p", "c", &["--up", "--down"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!file.exists());
}

#[test]
fn feedback_stats_reports_a_torn_last_line_and_a_malformed_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fb.jsonl");
    let f = file.to_str().unwrap();
    std::fs::write(
        &file,
        "{\"prompt\":\"p\",\"completion\":\"c\",\"label\":true}\n{\"prompt\":\"p\",\"compl",
    )
    .unwrap();
    let o = kto_lab(&["feedback", "stats", f]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains(&format!("warning: {f}:2: torn last line")),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("1 records"));

    std::fs::write(
        &file,
        "{\"prompt\":\"p\",\"completion\":\"c\",\"label\":\"yes\"}\n{\"prompt\":\"p\",\"completion\":\"c\",\"label\":true}\n",
    )
    .unwrap();
    assert_one_line_error(
        &kto_lab(&["feedback", "stats", f]),
        &format!("{f}:1: field \"label\": expected true or false, got \"yes\""),
    );
}

#[test]
fn feedback_unpair_and_guide() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("unpaired.jsonl");
    let o = kto_lab(&[
        "feedback",
        "unpair",
        "tests/data/paired.jsonl",
        dest.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = std::fs::read_to_string(&dest).unwrap();
    let n_pairs = std::fs::read_to_string("tests/data/paired.jsonl")
        .unwrap()
        .lines()
        .count();
    assert_eq!(rows.lines().count(), 2 * n_pairs);

    let o = kto_lab(&["guide", "tests/data/paired.jsonl"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("Recommendation: DPO"));
    let o = kto_lab(&["guide", dest.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["recommendation"], "KTO");
    let o = kto_lab(&["guide"]);
    assert!(stdout(&o).contains("KTO or DPO?"));
    assert_one_line_error(
        &kto_lab(&["guide", "tests/data/mixed.jsonl"]),
        &feedback_error_line("tests/data/mixed.jsonl"),
    );
}

/// What `kto_lab::feedback::analyze` says about a file, as the CLI must print it.
fn feedback_error_line(path: &str) -> String {
    kto_lab::feedback::analyze(path).unwrap_err().to_string()
}

#[test]
fn charts_writes_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let o = kto_lab(&["charts", "--out", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for name in [
        "value_function.svg",
        "value_function.png",
        "kto_loss.svg",
        "kto_loss.png",
    ] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert!(meta.len() > 1000, "{name} is {} bytes", meta.len());
    }
}

#[test]
fn tour_prints_every_lab_and_writes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = kto_lab(&["tour", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o).replace(out.to_str().unwrap(), "<out>");
    insta::assert_snapshot!("tour", text);
    for name in [
        "feedback.jsonl",
        "kto_train.jsonl",
        "paired.jsonl",
        "unpaired_from_pairs.jsonl",
        "charts/value_function.png",
        "charts/kto_loss.svg",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    // A second run regenerates its own files instead of appending to or refusing them.
    let again = kto_lab(&["tour", "--out", out.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again), stdout(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("feedback.jsonl"))
            .unwrap()
            .lines()
            .count(),
        9
    );
}

#[test]
fn train_rejects_a_lora_rank_this_build_lacks_and_lora_over_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lab3");
    let out = out.to_str().unwrap();
    let o = kto_lab(&["train", "--out", out, "--lora", "5", "--quiet"]);
    assert_one_line_error(
        &o,
        "--lora 5: this build has ranks [4, 8, 16, 32] (dfdx needs the rank at compile time)",
    );
    let o = kto_lab(&["train", "--out", out, "--lora", "16", "--seeds", "2"]);
    assert_one_line_error(&o, "--lora runs with one seed (drop --seeds)");
    let o = kto_lab(&["train", "--out", out, "--lora", "8", "--lora-alpha=-1"]);
    assert_one_line_error(
        &o,
        "`lora alpha` = -1 is invalid: it must be a finite number > 0",
    );
    assert!(!dir.path().join("lab3").exists(), "nothing written");
}

#[test]
fn train_rejects_a_device_this_build_lacks_and_bad_beta() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lab3");
    for (flag, value, error) in [
        (
            "--device",
            "cuda",
            "--device cuda: this build runs on cpu (build with --features cuda for cuda)",
        ),
        (
            "--beta",
            "0",
            "`beta` = 0 is invalid: it must be a finite number > 0",
        ),
        ("--kto-rounds", "0", "--kto-rounds 0: at least 1 round"),
        ("--seeds", "0", "--seeds 0: at least 1 seed"),
    ] {
        let o = kto_lab(&[
            "train",
            "--out",
            out.to_str().unwrap(),
            flag,
            value,
            "--quiet",
        ]);
        assert_one_line_error(&o, error);
    }
    assert!(
        !out.exists(),
        "nothing is written before the settings are checked"
    );
}

#[test]
fn bench_times_both_steps_and_says_when_torch_is_missing() {
    let o = kto_lab(&[
        "bench",
        "--batch",
        "4",
        "--warmup",
        "0",
        "--steps",
        "1",
        "--python",
        "/nonexistent/python",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("SFT step, median ms per round") && text.contains("KTO step, median ms"),
        "{text}"
    );
    // One round, dfdx alone: its row, then the medians.
    assert!(text.contains("| 1 | dfdx |"), "{text}");
    assert!(text.contains("| **median** |"), "{text}");
    assert!(stderr(&o).contains("timing dfdx only"), "{}", stderr(&o));
    let o = kto_lab(&["bench", "--batch", "1", "--no-torch"]);
    assert_one_line_error(
        &o,
        "`batch` = 1 is invalid: at least 2 (KTO's mismatched pairs)",
    );
}

/// A write that fails part-way (here: past the file-size limit, `ulimit -f`, the way a full disk
/// fails a write) leaves the file exactly as it was, and the command fails naming it.
#[test]
#[cfg(unix)]
fn a_failed_append_cuts_the_partial_line_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fb.jsonl");
    let before = "{\"prompt\":\"p\",\"completion\":\"c\",\"label\":true}\n";
    std::fs::write(&file, before).unwrap();
    let long = "z".repeat(4000);
    // sh's `ulimit -f` counts 512-byte blocks (dash) or KiB (bash): 1 block is below 4000
    // bytes either way. SIGXFSZ ignored, so the write returns an error instead of killing.
    let o = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_kto-lab"))
        .args(["feedback", "add"])
        .arg(&file)
        .args(["--prompt", "q", "--completion", &long, "--down"])
        .output()
        .expect("sh runs");
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!("error: {}: ", file.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn feedback_stats_of_a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing.jsonl");
    assert_one_line_error(
        &kto_lab(&["feedback", "stats", file.to_str().unwrap()]),
        &format!("{}: no such file", file.display()),
    );
}

#[test]
fn feedback_add_refuses_a_device() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    assert_one_line_error(
        &kto_lab(&["feedback", "add", "/dev/full", "--prompt", "p", "--completion", "c", "--up"]),
        "/dev/full: not a regular file (a directory, a device or a FIFO); a feedback store is a regular file",
    );
}
