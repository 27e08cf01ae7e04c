//! Integration tests for `kto_lab::feedback` (labs 4 and 5).

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use kto_lab::feedback::{
    advise, analyze, read_paired, unpair, unpair_file, DatasetFormat, FeedbackError, FeedbackStore,
    ImbalanceError, Message, Method, PairedRecord, Record, Stats, Text, TornTail, DECISION_GUIDE,
    RECOMMENDED_RATIO,
};
use serde_json::{json, Map, Value};
use tempfile::TempDir;

fn tmp() -> TempDir {
    tempfile::tempdir().expect("create a temp dir")
}

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

/// A fixture, as a relative path with `/` (valid on every OS) so snapshots do not depend on
/// where the crate lives. Cargo runs integration tests from the crate root.
fn data(name: &str) -> PathBuf {
    PathBuf::from(format!("tests/data/{name}"))
}

/// Write `content` to `dir/name` and return the path.
fn write(dir: &TempDir, name: &str, content: &str) -> PathBuf {
    let p = dir.path().join(name);
    fs::write(&p, content).expect("write fixture");
    p
}

const GOOD: &str = r#"{"prompt": "Hi", "completion": "Hello!", "label": true}"#;

// ---------------------------------------------------------------- records and the store

#[test]
fn append_then_load_round_trips() {
    let dir = tmp();
    let store = FeedbackStore::new(dir.path().join("feedback.jsonl"));
    let records = vec![
        Record::desirable(
            "What is Python?",
            "A high-level programming language known for its readability.",
        )
        .with_metadata(meta(json!({"user_id": "demo", "timestamp": "2024-01-01"}))),
        Record::undesirable("What is Python?", "A snake.")
            .with_metadata(meta(json!({"user_id": "demo", "nested": {"a": [1, 2]}}))),
        Record::new("Say \"hi\"\nplease", "hi \u{1F44B}", true),
    ];
    let mut offset = 0;
    for r in &records {
        let appended = store.append(r).unwrap();
        assert_eq!(appended.offset, offset);
        assert_eq!(appended.repaired, None);
        offset += r.to_store_line().len() as u64 + 1;
    }
    let loaded = store.load().unwrap();
    assert_eq!(loaded.records, records);
    assert_eq!(loaded.torn_tail, None);
    // One record per line, whatever the strings contain.
    let text = fs::read_to_string(store.path()).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.ends_with('\n'));
}

#[test]
fn load_of_a_missing_file_is_an_empty_store() {
    let dir = tmp();
    let store = FeedbackStore::new(dir.path().join("nothing-yet.jsonl"));
    let loaded = store.load().unwrap();
    assert!(loaded.records.is_empty());
    assert_eq!(loaded.torn_tail, None);
    assert!(!store.path().exists(), "load must not create the file");
}

#[test]
fn conversational_records_round_trip_in_trl_shape() {
    let dir = tmp();
    let store = FeedbackStore::new(dir.path().join("chat.jsonl"));
    let record = Record::new(
        vec![Message::system("Be brief."), Message::user("What is KTO?")],
        vec![Message::assistant("Alignment from thumbs up/down.")],
        true,
    );
    store.append(&record).unwrap();
    let line = fs::read_to_string(store.path()).unwrap();
    assert_eq!(
        line,
        concat!(
            r#"{"prompt":[{"role":"system","content":"Be brief."},{"role":"user","content":"What is KTO?"}],"#,
            r#""completion":[{"role":"assistant","content":"Alignment from thumbs up/down."}],"label":true}"#,
            "\n"
        )
    );
    let loaded = store.load().unwrap();
    assert_eq!(loaded.records, vec![record]);
    assert!(loaded.records[0].prompt.is_conversational());
}

#[test]
fn training_line_is_exactly_trls_format() {
    let r = Record::undesirable("What is Python?", "A snake.")
        .with_metadata(meta(json!({"user_id": "demo"})));
    assert_eq!(
        r.to_training_line(),
        r#"{"prompt":"What is Python?","completion":"A snake.","label":false}"#
    );
    assert_eq!(
        r.to_store_line(),
        r#"{"prompt":"What is Python?","completion":"A snake.","label":false,"metadata":{"user_id":"demo"}}"#
    );
    let p = PairedRecord::new("What is AI?", "The study of learning programs.", "dunno");
    assert_eq!(
        p.to_line(),
        r#"{"prompt":"What is AI?","chosen":"The study of learning programs.","rejected":"dunno"}"#
    );
}

#[test]
fn malformed_line_in_the_middle_names_path_line_and_field() {
    let dir = tmp();
    let content = format!(
        "{GOOD}\n{GOOD}\n{}\n{GOOD}\n",
        r#"{"prompt": "Hi", "completion": "Hello!", "label": "yes"}"#
    );
    let path = write(&dir, "feedback.jsonl", &content);
    let err = FeedbackStore::new(&path).load().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3: field \"label\": expected true or false, got \"yes\"",
            path.display()
        )
    );
    assert_eq!(err.path(), Some(path.as_path()));
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.field(), Some("label"));
    assert!(matches!(err, FeedbackError::WrongType { .. }));
}

/// Each bad line, placed on line 2 after a good one, and the end of the expected message.
#[test]
fn every_kind_of_bad_line_gets_a_precise_message() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            r#"{"prompt": "Hi", "label": true}"#,
            r#":2: missing field "completion""#,
            Some("completion"),
        ),
        (
            r#"{"prompt": "Hi", "completion": "Yo", "lable": true}"#,
            r#":2: unknown field "lable" (expected one of: prompt, completion, label, metadata)"#,
            Some("lable"),
        ),
        (
            r#"{"prompt": "Hi", "completion": "Yo", "label": true,}"#,
            ":2: not valid JSON: trailing comma at line 1 column 52",
            None,
        ),
        (
            r#"{"prompt": 42, "completion": "Yo", "label": true}"#,
            r#":2: field "prompt": expected a string or a list of {"role", "content"} messages, got 42"#,
            Some("prompt"),
        ),
        (
            r#"{"prompt": "Hi", "completion": "Yo", "label": 1}"#,
            r#":2: field "label": expected true or false, got 1"#,
            Some("label"),
        ),
        (
            r#"{"prompt": "Hi", "completion": "Yo", "label": null}"#,
            r#":2: field "label": expected true or false, got null"#,
            Some("label"),
        ),
        (
            r#"{"prompt": "  ", "completion": "Yo", "label": true}"#,
            r#":2: field "prompt": must not be empty"#,
            Some("prompt"),
        ),
        (
            r#"{"prompt": "Hi", "completion": "", "label": true}"#,
            r#":2: field "completion": must not be empty"#,
            Some("completion"),
        ),
        (
            r#"{"prompt": [], "completion": [], "label": true}"#,
            r#":2: field "prompt": must not be an empty list of messages"#,
            Some("prompt"),
        ),
        (
            r#"{"prompt": [{"role": "bot", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}], "label": true}"#,
            r#":2: field "prompt[0].role": expected "system", "user" or "assistant", got "bot""#,
            Some("prompt[0].role"),
        ),
        (
            r#"{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "user", "content": "Yo"}], "label": true}"#,
            r#":2: field "completion[0].role": a conversational completion holds only "assistant" messages, got "user""#,
            Some("completion[0].role"),
        ),
        (
            r#"{"prompt": [{"role": "user", "content": "Hi"}, {"role": "user"}], "completion": [{"role": "assistant", "content": "Yo"}], "label": true}"#,
            r#":2: missing field "prompt[1].content""#,
            Some("prompt[1].content"),
        ),
        (
            r#"{"prompt": [{"role": "user", "text": "Hi"}], "completion": [{"role": "assistant", "content": "Yo"}], "label": true}"#,
            r#":2: unknown field "prompt[0].text" (expected one of: role, content)"#,
            Some("prompt[0].text"),
        ),
        (
            r#"{"prompt": [{"role": "user", "content": "Hi"}], "completion": "Yo", "label": true}"#,
            r#":2: field "completion": is a plain string but "prompt" is a list of messages; use the same form for both"#,
            Some("completion"),
        ),
        (
            r#"{"prompt": "Hi", "completion": "Yo", "label": true, "metadata": "u7"}"#,
            r#":2: field "metadata": expected a JSON object, got "u7""#,
            Some("metadata"),
        ),
        (
            r#"["Hi", "Yo", true]"#,
            r#":2: expected an object with prompt, completion and label, got ["Hi","Yo",true]"#,
            None,
        ),
    ];
    let dir = tmp();
    for (i, (line, expected, field)) in cases.iter().enumerate() {
        let path = write(
            &dir,
            &format!("case{i}.jsonl"),
            &format!("{GOOD}\n{line}\n"),
        );
        let err = FeedbackStore::new(&path).load().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}{expected}", path.display()),
            "case {i}: {line}"
        );
        assert_eq!(err.line(), Some(2), "case {i}");
        assert_eq!(err.field(), *field, "case {i}");
    }
}

#[test]
fn long_values_are_shortened_in_messages() {
    let dir = tmp();
    let long = "x".repeat(500);
    let path = write(
        &dir,
        "long.jsonl",
        &format!("{{\"prompt\": \"Hi\", \"completion\": \"Yo\", \"label\": \"{long}\"}}\n"),
    );
    let msg = FeedbackStore::new(&path).load().unwrap_err().to_string();
    assert!(msg.len() < 200, "{msg}");
    assert!(msg.ends_with("…"), "{msg}");
}

#[test]
fn blank_lines_and_crlf_are_accepted_and_numbering_stays_physical() {
    let dir = tmp();
    let content = format!("\n{GOOD}\r\n   \n{GOOD}\n\n{}\n", r#"{"prompt": "Hi"}"#);
    let path = write(&dir, "f.jsonl", &content);
    let err = FeedbackStore::new(&path).load().unwrap_err();
    assert_eq!(err.line(), Some(6));
    let path = write(&dir, "g.jsonl", &format!("\n{GOOD}\r\n   \n{GOOD}\n\n"));
    assert_eq!(FeedbackStore::new(&path).load().unwrap().records.len(), 2);
}

#[test]
fn non_utf8_input_is_an_error_not_a_panic() {
    let dir = tmp();
    let path = dir.path().join("bin.jsonl");
    let mut bytes = format!("{GOOD}\n").into_bytes();
    bytes
        .extend_from_slice(b"{\"prompt\": \"\xff\xfe\", \"completion\": \"a\", \"label\": true}\n");
    fs::write(&path, bytes).unwrap();
    let err = FeedbackStore::new(&path).load().unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(matches!(err, FeedbackError::InvalidJson { .. }), "{err}");
}

#[test]
fn io_errors_name_the_path() {
    let dir = tmp();
    // A directory where the store's file should be.
    let store = FeedbackStore::new(dir.path());
    let err = store.append(&Record::desirable("a", "b")).unwrap_err();
    assert!(
        matches!(err, FeedbackError::NotARegularFile { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with(&dir.path().display().to_string()));
}

#[test]
fn append_refuses_an_invalid_record_and_writes_nothing() {
    let dir = tmp();
    let store = FeedbackStore::new(dir.path().join("f.jsonl"));
    let err = store.append(&Record::desirable("", "b")).unwrap_err();
    assert_eq!(err.field(), Some("prompt"));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: refusing to append: field \"prompt\": must not be empty",
            store.path().display()
        )
    );
    let mixed = Record::desirable("plain prompt", vec![Message::assistant("chat answer")]);
    assert!(store.append(&mixed).is_err());
    assert!(!store.path().exists());
    assert_eq!(
        Record::desirable("a", vec![Message::user("b")]).validate(),
        Err("field \"completion\": is a list of messages but \"prompt\" is a plain string; use the same form for both".to_string())
    );
}

// ---------------------------------------------------------------- torn tails

#[test]
fn torn_last_line_is_skipped_and_reported() {
    let dir = tmp();
    let fragment = r#"{"prompt": "Hi", "completion": "Hel"#;
    let path = write(&dir, "f.jsonl", &format!("{GOOD}\n{GOOD}\n{fragment}"));
    let loaded = FeedbackStore::new(&path).load().unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert_eq!(
        loaded.torn_tail,
        Some(TornTail {
            line: 3,
            bytes: fragment.len()
        })
    );
}

#[test]
fn an_unparseable_line_that_ends_in_newline_is_an_error_not_a_torn_tail() {
    let dir = tmp();
    let path = write(&dir, "f.jsonl", &format!("{GOOD}\n{{\"prompt\": \"Hi\"\n"));
    let err = FeedbackStore::new(&path).load().unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(matches!(err, FeedbackError::InvalidJson { .. }));
}

#[test]
fn a_complete_last_line_without_newline_is_kept() {
    let dir = tmp();
    let path = write(&dir, "f.jsonl", &format!("{GOOD}\n{GOOD}"));
    let store = FeedbackStore::new(&path);
    let loaded = store.load().unwrap();
    assert_eq!((loaded.records.len(), loaded.torn_tail), (2, None));
    // Appending finishes that line instead of moving it aside.
    let appended = store.append(&Record::undesirable("a", "b")).unwrap();
    // After the two lines and the newline that finishes the second.
    assert_eq!(appended.offset, 2 * GOOD.len() as u64 + 2);
    assert_eq!(appended.repaired, None);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        format!(
            "{GOOD}\n{GOOD}\n{}\n",
            r#"{"prompt":"a","completion":"b","label":false}"#
        )
    );
    assert_eq!(store.load().unwrap().records.len(), 3);
}

#[test]
fn append_after_a_torn_tail_saves_the_fragment_and_starts_a_new_line() {
    let dir = tmp();
    let fragment = "{\"prompt\": \"Hi\", \"completion\": \"caf\u{e9}"; // non-ASCII, cut mid-string
    let path = write(&dir, "feedback.jsonl", &format!("{GOOD}\n{fragment}"));
    let store = FeedbackStore::new(&path);
    let record = Record::desirable("What is 2 + 2?", "4");
    let appended = store.append(&record).unwrap();

    // The record takes the torn line's place, on a line of its own.
    assert_eq!(appended.offset, GOOD.len() as u64 + 1);
    let repair = appended.repaired.expect("the torn tail is reported");
    assert_eq!(repair.offset, GOOD.len() as u64 + 1);
    assert_eq!(repair.bytes, fragment.len());
    let sidecar_name = repair.sidecar.file_name().unwrap().to_string_lossy();
    assert!(
        sidecar_name.starts_with("feedback.jsonl.torn-"),
        "{sidecar_name}"
    );
    assert_eq!(repair.sidecar.parent(), Some(dir.path()));
    // Nothing lost: the sidecar holds the fragment byte for byte.
    assert_eq!(fs::read(&repair.sidecar).unwrap(), fragment.as_bytes());
    // The complete record before it is untouched.
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{GOOD}\n{}\n", record.to_store_line())
    );
    let loaded = store.load().unwrap();
    assert_eq!(loaded.records.len(), 2);
    assert_eq!(loaded.torn_tail, None);

    // A second torn tail in the same second gets its own sidecar.
    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b"{\"pro").unwrap();
    drop(f);
    let again = store.append(&record).unwrap();
    let second = again.repaired.expect("second repair");
    assert_ne!(second.sidecar, repair.sidecar);
    assert_eq!(fs::read(&second.sidecar).unwrap(), b"{\"pro");
    assert_eq!(fs::read(&repair.sidecar).unwrap(), fragment.as_bytes());
    assert_eq!(store.load().unwrap().records.len(), 3);
}

// ---------------------------------------------------------------- concurrency

#[test]
fn concurrent_appends_from_many_handles_keep_every_line_whole() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 50;
    let dir = tmp();
    let path = Arc::new(dir.path().join("feedback.jsonl"));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = Arc::clone(&path);
            thread::spawn(move || {
                // Each thread has its own store; every append opens its own file handle.
                let store = FeedbackStore::new(path.as_path());
                let mut lines = Vec::new();
                for i in 0..PER_THREAD {
                    // Long-ish lines make interleaving visible if locking were broken.
                    let completion = format!("thread {t} record {i} {}", "x".repeat(2000));
                    let r = Record::new(format!("prompt {t}/{i}"), completion, i % 3 != 0)
                        .with_metadata(meta(json!({"thread": t, "i": i})));
                    lines.push(store.append(&r).expect("append").offset);
                }
                lines
            })
        })
        .collect();
    let mut numbers = BTreeSet::new();
    for h in handles {
        for n in h.join().expect("thread") {
            assert!(numbers.insert(n), "offset {n} reported twice");
        }
    }
    assert_eq!(numbers.len(), THREADS * PER_THREAD);

    let loaded = FeedbackStore::new(path.as_path()).load().unwrap();
    assert_eq!(loaded.torn_tail, None);
    assert_eq!(loaded.records.len(), THREADS * PER_THREAD);
    let seen: BTreeSet<(u64, u64)> = loaded
        .records
        .iter()
        .map(|r| {
            let m = r.metadata.as_ref().unwrap();
            (m["thread"].as_u64().unwrap(), m["i"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(seen.len(), THREADS * PER_THREAD);
    // Every line is whole, and every offset an append reported is where a line starts.
    let text = fs::read_to_string(path.as_path()).unwrap();
    assert_eq!(text.lines().count(), THREADS * PER_THREAD);
    let starts: BTreeSet<u64> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1))
        .collect();
    assert!(numbers.is_subset(&starts));
}

#[test]
fn an_append_reads_only_the_end_of_the_file() {
    // A 4 MiB first line and then a torn tail: the repair finds the tail from the end and
    // leaves the big line as it was.
    let dir = tmp();
    let big = format!(
        r#"{{"prompt": "p", "completion": "{}", "label": true}}"#,
        "y".repeat(4 << 20)
    );
    let path = write(&dir, "big.jsonl", &format!("{big}\n{{\"prom"));
    let appended = FeedbackStore::new(&path)
        .append(&Record::desirable("a", "b"))
        .unwrap();
    assert_eq!(appended.offset, big.len() as u64 + 1);
    assert_eq!(appended.repaired.unwrap().bytes, 6);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&big) && text.ends_with("\"label\":true}\n"));
    assert_eq!(FeedbackStore::new(&path).load().unwrap().records.len(), 2);
}

#[test]
fn a_store_must_be_a_regular_file() {
    let dir = tmp();
    let record = Record::desirable("a", "b");
    // A directory, and (on Linux) a device that would otherwise swallow writes or never end.
    let mut paths = vec![dir.path().to_path_buf()];
    for device in ["/dev/full", "/dev/zero", "/dev/null"] {
        if std::path::Path::new(device).exists() {
            paths.push(device.into());
        }
    }
    for p in paths {
        let store = FeedbackStore::new(&p);
        for err in [
            store.append(&record).unwrap_err(),
            store.load().unwrap_err(),
            store.stats().unwrap_err(),
        ] {
            assert!(
                matches!(err, FeedbackError::NotARegularFile { .. }),
                "{}: {err}",
                p.display()
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: not a regular file (a directory, a device or a FIFO); a feedback store is a regular file",
                    p.display()
                )
            );
        }
    }
}

#[test]
fn stats_and_export_of_a_missing_file_name_it() {
    let dir = tmp();
    let path = dir.path().join("typo.jsonl");
    let store = FeedbackStore::new(&path);
    let want = format!("{}: no such file", path.display());
    assert_eq!(store.stats().unwrap_err().to_string(), want);
    assert_eq!(
        store
            .export(dir.path().join("out.jsonl"))
            .unwrap_err()
            .to_string(),
        want
    );
    assert!(!path.exists() && !dir.path().join("out.jsonl").exists());
    // load is unchanged: a store nothing has been appended to yet is empty.
    assert!(store.load().unwrap().records.is_empty());
}

/// Helper for the next test: does nothing unless started by it as a child process.
#[test]
fn child_process_appender() {
    let (Ok(path), Ok(id)) = (
        std::env::var("KTO_LAB_FEEDBACK_CHILD_STORE"),
        std::env::var("KTO_LAB_FEEDBACK_CHILD_ID"),
    ) else {
        return;
    };
    let store = FeedbackStore::new(path);
    for i in 0..50 {
        let r = Record::new(
            format!("process {id}"),
            format!("record {i} {}", "y".repeat(3000)),
            true,
        )
        .with_metadata(meta(json!({"process": id, "i": i})));
        store.append(&r).expect("append from child process");
    }
}

#[test]
fn concurrent_appends_from_several_processes_keep_every_line_whole() {
    const PROCESSES: usize = 4;
    let dir = tmp();
    let path = dir.path().join("feedback.jsonl");
    let exe = std::env::current_exe().expect("test binary path");
    let children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_process_appender", "--test-threads=1"])
                .env("KTO_LAB_FEEDBACK_CHILD_STORE", &path)
                .env("KTO_LAB_FEEDBACK_CHILD_ID", id.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait for child").success());
    }
    let loaded = FeedbackStore::new(&path).load().unwrap();
    assert_eq!(loaded.torn_tail, None);
    assert_eq!(loaded.records.len(), PROCESSES * 50);
    let seen: BTreeSet<String> = loaded
        .records
        .iter()
        .map(|r| r.metadata.as_ref().unwrap().get("i").unwrap().to_string() + &r.prompt.key())
        .collect();
    assert_eq!(seen.len(), PROCESSES * 50);
}

// ---------------------------------------------------------------- stats and export

fn sample_store(dir: &TempDir) -> FeedbackStore {
    let store = FeedbackStore::new(dir.path().join("feedback.jsonl"));
    let rows = [
        ("What is Python?", "A programming language.", true),
        ("What is Python?", "A snake.", false),
        ("What is 2 + 2?", "4", true),
        ("Name a prime.", "7", true),
        ("Name a prime.", "9", false),
        ("Capital of Australia?", "Canberra.", true),
        ("Capital of Australia?", "Sydney.", false),
    ];
    for (p, c, l) in rows {
        store
            .append(&Record::new(p, c, l).with_metadata(meta(json!({"source": "test"}))))
            .unwrap();
    }
    store
}

#[test]
fn stats_count_and_ratio() {
    let dir = tmp();
    let store = sample_store(&dir);
    let stats = store.stats().unwrap();
    insta::assert_json_snapshot!("stats_sample", stats);
    assert_eq!(
        stats.to_string(),
        "7 records: 4 desirable (thumbs up), 3 undesirable (thumbs down), ratio 1.33"
    );

    let one_class = Stats::of(&[Record::desirable("a", "b"), Record::desirable("c", "d")]);
    insta::assert_json_snapshot!("stats_one_class", one_class);
    assert_eq!(one_class.ratio, None);
    assert!(one_class
        .to_string()
        .ends_with("ratio undefined (no undesirable records)"));
    assert_eq!(Stats::of(&[]).ratio, None);
    assert_eq!(Stats::of(&[Record::undesirable("a", "b")]).ratio, Some(0.0));
}

#[test]
fn export_writes_trl_rows_without_metadata() {
    let dir = tmp();
    let store = sample_store(&dir);
    let dest = dir.path().join("train.jsonl");
    let exported = store.export(&dest).unwrap();
    assert_eq!(
        (exported.count, exported.desirable, exported.undesirable),
        (7, 4, 3)
    );
    assert_eq!(exported.warning, None);
    assert_eq!(exported.path, dest);
    let text = fs::read_to_string(&dest).unwrap();
    let expected: String = store
        .load()
        .unwrap()
        .records
        .iter()
        .map(|r| r.to_training_line() + "\n")
        .collect();
    assert_eq!(text, expected);
    assert_eq!(
        text.lines().next().unwrap(),
        r#"{"prompt":"What is Python?","completion":"A programming language.","label":true}"#
    );
    assert!(!text.contains("metadata"));
    // The exported file is itself loadable.
    assert_eq!(FeedbackStore::new(&dest).load().unwrap().records.len(), 7);
    // No temporary files left behind.
    let names: BTreeSet<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["feedback.jsonl", "train.jsonl"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn export_refuses_to_overwrite_and_leaves_the_file_byte_identical() {
    let dir = tmp();
    let store = sample_store(&dir);
    let dest = write(&dir, "train.jsonl", "precious\0bytes\nno newline at end");
    let before = fs::read(&dest).unwrap();
    let err = store.export(&dest).unwrap_err();
    assert!(matches!(err, FeedbackError::AlreadyExists { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "{}: already exists; refusing to overwrite it (choose a new name or remove it first)",
            dest.display()
        )
    );
    assert_eq!(fs::read(&dest).unwrap(), before);
    // Exporting onto the store itself is refused too.
    let before_store = fs::read(store.path()).unwrap();
    assert!(store.export(store.path()).is_err());
    assert_eq!(fs::read(store.path()).unwrap(), before_store);
}

#[test]
fn export_refuses_an_empty_store_and_warns_on_one_class() {
    let dir = tmp();
    let missing = FeedbackStore::new(dir.path().join("missing.jsonl"));
    let err = missing.export(dir.path().join("out.jsonl")).unwrap_err();
    assert!(matches!(err, FeedbackError::NotFound { .. }), "{err}");
    assert!(!dir.path().join("out.jsonl").exists());

    let blank = FeedbackStore::new(write(&dir, "blank.jsonl", "\n\n"));
    assert!(matches!(
        blank.export(dir.path().join("out.jsonl")),
        Err(FeedbackError::EmptyFile { .. })
    ));

    let one = FeedbackStore::new(dir.path().join("one.jsonl"));
    one.append(&Record::desirable("a", "b")).unwrap();
    let exported = one.export(dir.path().join("one-out.jsonl")).unwrap();
    assert_eq!(exported.count, 1);
    let warning = exported.warning.expect("one-class warning");
    assert!(
        warning.starts_with("the only record is desirable"),
        "{warning}"
    );
}

#[test]
fn export_skips_a_torn_tail_and_reports_it() {
    let dir = tmp();
    let path = write(&dir, "f.jsonl", &format!("{GOOD}\n{{\"prompt"));
    let exported = FeedbackStore::new(&path)
        .export(dir.path().join("out.jsonl"))
        .unwrap();
    assert_eq!(exported.count, 1);
    assert_eq!(exported.torn_tail, Some(TornTail { line: 2, bytes: 8 }));
}

// ---------------------------------------------------------------- unpairing

#[test]
fn unpair_splits_each_pair_into_a_thumbs_up_and_a_thumbs_down() {
    let rows = vec![
        PairedRecord::new("What is AI?", "The study of learning programs.", "dunno"),
        PairedRecord::new(
            vec![Message::user("2+2?")],
            vec![Message::assistant("4")],
            vec![Message::assistant("5")],
        ),
    ];
    let out = unpair(&rows);
    assert_eq!(
        out,
        vec![
            Record::desirable("What is AI?", "The study of learning programs."),
            Record::undesirable("What is AI?", "dunno"),
            Record::desirable(vec![Message::user("2+2?")], vec![Message::assistant("4")]),
            Record::undesirable(vec![Message::user("2+2?")], vec![Message::assistant("5")]),
        ]
    );
}

#[test]
fn unpair_file_writes_trl_rows_and_refuses_to_overwrite() {
    let dir = tmp();
    let dest = dir.path().join("kto.jsonl");
    let n = unpair_file(data("paired.jsonl"), &dest).unwrap();
    assert_eq!(n, 8);
    let text = fs::read_to_string(&dest).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(
            r#"{"prompt":"What is Python?","completion":"A high-level programming language known for its readability.","label":true}"#
        )
    );
    assert_eq!(
        lines.next(),
        Some(r#"{"prompt":"What is Python?","completion":"A snake.","label":false}"#)
    );
    let loaded = FeedbackStore::new(&dest).load().unwrap();
    let stats = Stats::of(&loaded.records);
    assert_eq!((stats.desirable, stats.undesirable), (4, 4));

    let before = fs::read(&dest).unwrap();
    let err = unpair_file(data("paired.jsonl"), &dest).unwrap_err();
    assert!(matches!(err, FeedbackError::AlreadyExists { .. }));
    assert_eq!(fs::read(&dest).unwrap(), before);

    let empty = write(&dir, "empty.jsonl", "");
    assert!(matches!(
        unpair_file(&empty, dir.path().join("x.jsonl")),
        Err(FeedbackError::EmptyFile { .. })
    ));
    assert!(read_paired(&empty).unwrap().is_empty());
}

#[test]
fn read_paired_errors_are_precise() {
    let dir = tmp();
    let good = r#"{"prompt": "a", "chosen": "b", "rejected": "c"}"#;
    let path = write(
        &dir,
        "pairs.jsonl",
        &format!("{good}\n{good}\n{}\n", r#"{"prompt": "a", "chosen": "b"}"#),
    );
    let err = read_paired(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:3: missing field \"rejected\"", path.display())
    );
    let path = write(
        &dir,
        "pairs2.jsonl",
        &format!(
            "{good}\n{}\n",
            r#"{"prompt": "a", "chosen": "b", "rejected": "c", "score": 1}"#
        ),
    );
    assert_eq!(
        read_paired(&path).unwrap_err().to_string(),
        format!(
            "{}:2: unknown field \"score\" (expected one of: prompt, chosen, rejected)",
            path.display()
        )
    );
    // Unlike the store, a dataset file has no excuse for a torn last line.
    let path = write(&dir, "pairs3.jsonl", &format!("{good}\n{{\"prompt"));
    assert_eq!(read_paired(&path).unwrap_err().line(), Some(2));
    let missing = dir.path().join("missing.jsonl");
    let err = read_paired(&missing).unwrap_err();
    assert!(matches!(err, FeedbackError::Io { .. }));
    assert!(err.to_string().starts_with(&missing.display().to_string()));
}

// ---------------------------------------------------------------- imbalance advice

#[test]
fn imbalance_advice_for_few_desirable_examples() {
    let a = advise(10, 100, 1.0, 1.0).unwrap();
    assert!((a.ratio - 0.1).abs() < 1e-12);
    assert!(!a.in_range);
    assert_eq!(a.desirable_weight_range[0], 10.0);
    assert!((a.desirable_weight_range[1] - 40.0 / 3.0).abs() < 1e-12);
    assert!((a.undesirable_weight_range[0] - 0.075).abs() < 1e-12);
    assert!((a.undesirable_weight_range[1] - 0.1).abs() < 1e-12);
    assert_eq!(a.suggested_desirable_weight, 10.0);
    assert_eq!(a.suggested_undesirable_weight, 0.1);
    assert_eq!(
        a.to_string(),
        "λD·nD / (λU·nU) = 0.1 (10 desirable × λD 1 vs 100 undesirable × λU 1) is below the \
         recommended range [1, 4/3]: desirable examples are under-weighted. Change ONE weight: \
         desirable_weight in [10, 13.33] (suggested 10), OR undesirable_weight in [0.075, 0.1] \
         (suggested 0.1)."
    );
    insta::assert_json_snapshot!("advice_10_100", a);
}

#[test]
fn imbalance_advice_in_range_and_above() {
    let a = advise(12, 10, 1.0, 1.0).unwrap();
    assert!(a.in_range);
    assert_eq!(
        (a.suggested_desirable_weight, a.suggested_undesirable_weight),
        (1.0, 1.0)
    );
    assert!(a.message.contains("lies in the recommended range"));
    // Exactly the edges count as in range.
    assert!(advise(10, 10, 1.0, 1.0).unwrap().in_range);
    assert!(advise(4, 3, 1.0, 1.0).unwrap().in_range);
    assert!(!advise(5, 3, 1.0, 1.0).unwrap().in_range);
    // Too many desirable examples.
    let a = advise(100, 10, 1.0, 1.0).unwrap();
    assert!(!a.in_range);
    assert!(a.message.contains("above the recommended range"), "{a}");
    assert_eq!(a.suggested_desirable_weight, 0.1);
    assert_eq!(a.suggested_undesirable_weight, 10.0);
    assert_eq!(RECOMMENDED_RATIO, (1.0, 4.0 / 3.0));
}

#[test]
fn suggested_weights_always_land_in_range() {
    for nd in [1usize, 2, 3, 7, 10, 33, 100, 999] {
        for nu in [1usize, 3, 9, 10, 64, 1000] {
            for (wd, wu) in [(1.0, 1.0), (0.3, 2.5), (1.7, 0.01)] {
                let a = advise(nd, nu, wd, wu).unwrap();
                let d = advise(nd, nu, a.suggested_desirable_weight, wu).unwrap();
                let u = advise(nd, nu, wd, a.suggested_undesirable_weight).unwrap();
                assert!(d.in_range, "nD={nd} nU={nu} λD={wd} λU={wu}: {d}");
                assert!(u.in_range, "nD={nd} nU={nu} λD={wd} λU={wu}: {u}");
                assert!(d.desirable_weight_range[0] <= d.desirable_weight_range[1]);
            }
        }
    }
}

#[test]
fn imbalance_errors() {
    assert_eq!(advise(0, 0, 1.0, 1.0), Err(ImbalanceError::NoData));
    let e = advise(5, 0, 1.0, 1.0).unwrap_err();
    assert!(matches!(e, ImbalanceError::OneClass { count: 5, .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("undefined") && msg.contains("KTO can still train"),
        "{msg}"
    );
    assert!(matches!(
        advise(0, 5, 1.0, 1.0),
        Err(ImbalanceError::OneClass { .. })
    ));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            advise(5, 5, bad, 1.0),
            Err(ImbalanceError::InvalidWeight {
                name: "desirable_weight",
                ..
            })
        ));
        assert!(matches!(
            advise(5, 5, 1.0, bad),
            Err(ImbalanceError::InvalidWeight {
                name: "undesirable_weight",
                ..
            })
        ));
    }
    // It converts into FeedbackError for `?` in lab code.
    let fe: FeedbackError = advise(0, 0, 1.0, 1.0).unwrap_err().into();
    assert!(fe.path().is_none());
}

// ---------------------------------------------------------------- the decision guide

#[test]
fn decision_guide_text() {
    insta::assert_snapshot!("decision_guide", DECISION_GUIDE);
}

#[test]
fn guide_recommends_dpo_for_paired_data() {
    let r = analyze(data("paired.jsonl")).unwrap();
    assert_eq!(r.format, DatasetFormat::Paired);
    assert_eq!(r.recommendation, Method::Dpo);
    assert_eq!((r.rows, r.prompts), (4, 3));
    assert!(r.reasons.iter().any(|s| s.contains("unpairing")));
    assert!(r.imbalance.is_none());
    insta::assert_snapshot!("guide_paired", r.to_string());
}

#[test]
fn guide_recommends_kto_for_unpaired_data() {
    let r = analyze(data("unpaired.jsonl")).unwrap();
    assert_eq!(r.format, DatasetFormat::Unpaired);
    assert_eq!(r.recommendation, Method::Kto);
    assert_eq!((r.rows, r.desirable, r.undesirable), (9, 5, 4));
    assert_eq!((r.prompts_with_both, r.possible_pairs), (2, 2));
    assert!(r.imbalance.as_ref().unwrap().in_range);
    assert!(r.warnings.is_empty());
    insta::assert_snapshot!("guide_unpaired", r.to_string());
    insta::assert_json_snapshot!("guide_unpaired_json", r);
}

#[test]
fn guide_notes_pairs_when_prompts_have_several_completions() {
    let r = analyze(data("multi.jsonl")).unwrap();
    assert_eq!(r.recommendation, Method::Kto);
    assert_eq!(
        (r.prompts, r.prompts_with_both, r.possible_pairs),
        (3, 2, 5)
    );
    assert!(r
        .reasons
        .iter()
        .any(|s| s.contains("up to 5 (chosen, rejected) pairs")));
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("conflicting feedback")));
    insta::assert_snapshot!("guide_multi", r.to_string());
}

#[test]
fn guide_reports_imbalance_with_suggested_weights() {
    let r = analyze(data("imbalanced.jsonl")).unwrap();
    assert_eq!(r.recommendation, Method::Kto);
    assert_eq!((r.desirable, r.undesirable), (2, 9));
    assert_eq!(r.prompts_with_both, 0);
    let advice = r.imbalance.as_ref().unwrap();
    assert!(!advice.in_range);
    assert_eq!(advice.suggested_desirable_weight, 4.5);
    insta::assert_snapshot!("guide_imbalanced", r.to_string());
}

#[test]
fn guide_warns_about_one_class_data() {
    let r = analyze(data("one_class.jsonl")).unwrap();
    assert_eq!(r.recommendation, Method::Kto);
    assert!(r.imbalance.is_none());
    assert!(r.warnings.iter().any(|w| w.contains("DPO cannot train")));
    insta::assert_snapshot!("guide_one_class", r.to_string());
}

#[test]
fn guide_rejects_mixed_formats_naming_the_line() {
    let err = analyze(data("mixed.jsonl")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tests/data/mixed.jsonl:3: this is a paired (DPO) row {prompt, chosen, rejected} but \
         line 1 is an unpaired (KTO) row {prompt, completion, label}: use one format per file"
    );
    assert_eq!(err.line(), Some(3));
}

#[test]
fn guide_errors_on_empty_and_unrecognized_files() {
    let dir = tmp();
    let empty = write(&dir, "empty.jsonl", "\n \n");
    let err = analyze(&empty).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no records (the file is empty or has only blank lines)",
            empty.display()
        )
    );
    let odd = write(
        &dir,
        "odd.jsonl",
        "{\"question\": \"a\", \"answer\": \"b\"}\n",
    );
    let err = analyze(&odd).unwrap_err();
    assert!(
        matches!(err, FeedbackError::UnrecognizedRow { line: 1, .. }),
        "{err}"
    );
    let both = write(
        &dir,
        "both.jsonl",
        "{\"prompt\": \"a\", \"completion\": \"b\", \"chosen\": \"c\"}\n",
    );
    assert!(analyze(&both)
        .unwrap_err()
        .to_string()
        .contains("mixes unpaired fields"));
    let bad = write(
        &dir,
        "bad.jsonl",
        &format!("{GOOD}\n{{\"prompt\": \"a\", \"completion\": \"b\", \"label\": \"no\"}}\n"),
    );
    assert_eq!(analyze(&bad).unwrap_err().field(), Some("label"));
}

#[test]
fn guide_tolerates_a_torn_tail_but_says_so() {
    let dir = tmp();
    let path = write(
        &dir,
        "f.jsonl",
        &format!(
            "{GOOD}\n{}\n{{\"prom",
            r#"{"prompt": "Hi", "completion": "Go away.", "label": false}"#
        ),
    );
    let r = analyze(&path).unwrap();
    assert_eq!(r.rows, 2);
    assert_eq!(r.torn_tail, Some(TornTail { line: 3, bytes: 6 }));
    assert!(r.warnings.iter().any(|w| w.contains("line 3 is torn")));
}

#[test]
fn text_helpers() {
    assert_eq!(Text::from("a"), Text::Plain("a".into()));
    assert!(!Text::from("a").is_conversational());
    assert_eq!(Text::from("a").key(), "\"a\"");
    assert_ne!(
        Text::from(vec![Message::user("a")]).key(),
        Text::from(vec![Message::system("a")]).key()
    );
}
