//! Checks of lab 4's exercises (`solutions/04_collecting_feedback.ipynb`).
//!
//! | exercise | check | the reference it compares with |
//! |---|---|---|
//! | 4.1 one thumbs-up/down as a KTO training line | [`training_line`] | [`Record::to_training_line`] |
//! | 4.2 read a line back, rejecting malformed ones | [`parse_line`] | [`Record::parse_line`] |
//! | 4.3 the range of λD that balances the classes | [`desirable_weight_range`] | [`advise`] |

use std::path::Path;

use rand::Rng;
use serde_json::Value;

use super::{approx_eq, fmt_num, Checker, Verdict};
use crate::feedback::{advise, Record, Text};

/// The reference of exercise 4.1: TRL's unpaired row, `{"prompt","completion","label"}`.
pub fn reference_line(prompt: &str, completion: &str, label: bool) -> String {
    crate::checks::grading::reference("checks::lab4::reference_line");
    Record::new(prompt, completion, label).to_training_line()
}

/// Exercise 4.1 — `student(prompt, completion, thumbs_up)` must return one JSON line (no
/// newline) holding exactly `prompt`, `completion` and `label`. Compared as JSON, so key
/// order and spacing are free; escaping must be right.
pub fn training_line<F>(student: F) -> Verdict
where
    F: Fn(&str, &str, bool) -> String,
{
    let mut check = Checker::new(
        "Exercise 4.1 — a thumbs up/down as a KTO training line",
        "build the object with serde_json (`json!({...})` or a `Map`) and serialize it with \
         `to_string` — never glue strings by hand: quotes and newlines must be escaped",
    )
    .forbid(&[
        "checks::lab4::reference_line",
        "feedback::Record::to_training_line",
    ]);
    let cases: Vec<(&str, String, String, bool)> = vec![
        (
            "thumbs up",
            "What is Python?".into(),
            "A high-level programming language.".into(),
            true,
        ),
        (
            "thumbs down",
            "What is Python?".into(),
            "A snake.".into(),
            false,
        ),
        (
            "quotes and a backslash",
            "Say \"hi\"".into(),
            "He said \"hi\" \\ bye".into(),
            true,
        ),
        (
            "a newline inside the completion stays on one line",
            "Two lines?".into(),
            "first\nsecond".into(),
            false,
        ),
        (
            "unicode",
            "Quelle est la capitale de la France ?".into(),
            "Paris 🇫🇷 — évidemment.".into(),
            true,
        ),
        ("empty prompt", String::new(), "Hello.".into(), true),
    ];
    for (name, prompt, completion, label) in cases {
        let expected = reference_line(&prompt, &completion, label);
        let Some(got) = check.call(|| student(&prompt, &completion, label)) else {
            continue;
        };
        let want: Value = serde_json::from_str(&expected).unwrap_or(Value::Null);
        let ok =
            !got.contains('\n') && serde_json::from_str::<Value>(&got).is_ok_and(|v| v == want);
        check.case(name, expected, got, ok);
    }
    check.finish()
}

/// The reference of exercise 4.2: the library's parser, keeping plain-text rows only.
pub fn reference_parse(line: &str) -> Option<(String, String, bool)> {
    crate::checks::grading::reference("checks::lab4::reference_parse");
    let record = Record::parse_line(line, Path::new("line"), 1).ok()?;
    match (record.prompt, record.completion) {
        (Text::Plain(p), Text::Plain(c)) => Some((p, c, record.label)),
        _ => None,
    }
}

/// Exercise 4.2 — `student(line)` must return `Some((prompt, completion, label))` for a valid
/// plain-text row and `None` for anything else: a JSON object with exactly the keys `prompt`,
/// `completion`, `label` and optionally `metadata`; prompt and completion non-blank strings;
/// label `true`/`false`; metadata an object or `null`.
pub fn parse_line<F>(student: F) -> Verdict
where
    F: Fn(&str) -> Option<(String, String, bool)>,
{
    let mut check = Checker::new(
        "Exercise 4.2 — read a feedback line, reject malformed ones",
        "parse with `serde_json::from_str::<Value>`, then `as_object()`, check the keys, \
         `as_str()` / `as_bool()` each field; every `?` on an Option returns None early",
    )
    .forbid(&[
        "checks::lab4::reference_parse",
        "feedback::Record::parse_line",
    ]);
    let cases = [
        (
            "a thumbs up",
            r#"{"prompt":"What is Python?","completion":"A language.","label":true}"#,
        ),
        (
            "a thumbs down with metadata",
            r#"{"prompt":"What is Python?","completion":"A snake.","label":false,"metadata":{"user":"demo"}}"#,
        ),
        (
            "spaces around and a \\r at the end",
            "  {\"label\": true, \"completion\": \"Paris.\", \"prompt\": \"Capital of France?\"} \r",
        ),
        (
            "metadata: null",
            r#"{"prompt":"p","completion":"c","label":true,"metadata":null}"#,
        ),
        (
            "a torn line (a crash mid-write)",
            r#"{"prompt":"What is Python?","completion":"A lan"#,
        ),
        ("an empty line", ""),
        (
            "label as a string",
            r#"{"prompt":"p","completion":"c","label":"true"}"#,
        ),
        (
            "label missing, misspelt",
            r#"{"prompt":"p","completion":"c","lable":true}"#,
        ),
        (
            "an extra key",
            r#"{"prompt":"p","completion":"c","label":true,"score":5}"#,
        ),
        (
            "a blank completion",
            r#"{"prompt":"p","completion":"   ","label":false}"#,
        ),
        (
            "a number as prompt",
            r#"{"prompt":42,"completion":"c","label":true}"#,
        ),
        (
            "metadata that is not an object",
            r#"{"prompt":"p","completion":"c","label":true,"metadata":"web"}"#,
        ),
        ("not an object", r#"["p","c",true]"#),
    ];
    for (name, line) in cases {
        let expected = reference_parse(line);
        let Some(got) = check.call(|| student(line)) else {
            continue;
        };
        check.equal(name, expected, got);
    }
    check.finish()
}

/// The reference of exercise 4.3: [`advise`]'s range of λD for the given λU (λD itself
/// does not matter), or `None` when a class is empty or λU is not positive.
pub fn reference_range(
    n_desirable: usize,
    n_undesirable: usize,
    undesirable_weight: f64,
) -> Option<(f64, f64)> {
    let a = advise(n_desirable, n_undesirable, 1.0, undesirable_weight).ok()?;
    Some((a.desirable_weight_range[0], a.desirable_weight_range[1]))
}

/// Exercise 4.3 — `student(n_desirable, n_undesirable, undesirable_weight)` must return the
/// range `(low, high)` of λD that puts λD·nD / (λU·nU) in [1, 4/3] (the KTO paper's range), or `None`
/// when either class is empty (the ratio is undefined).
pub fn desirable_weight_range<F>(student: F) -> Verdict
where
    F: Fn(usize, usize, f64) -> Option<(f64, f64)>,
{
    let mut check = Checker::new(
        "Exercise 4.3 — the λD that balances the classes",
        "solve 1 ≤ λD·nD / (λU·nU) ≤ 4/3 for λD: low = λU·nU/nD, high = (4/3)·low; \
         with nD = 0 or nU = 0 there is no range (None)",
    )
    .forbid(&["feedback::advise"]);
    let mut cases: Vec<(String, usize, usize, f64)> = vec![
        (
            "10 up, 100 down (the paper's 90% drop)".into(),
            10,
            100,
            1.0,
        ),
        ("balanced 50 / 50".into(), 50, 50, 1.0),
        ("more thumbs up than down".into(), 300, 100, 1.0),
        ("λU = 2".into(), 20, 60, 2.0),
        ("one class: only thumbs down".into(), 0, 40, 1.0),
        ("one class: only thumbs up".into(), 25, 0, 1.0),
        ("no feedback at all".into(), 0, 0, 1.0),
    ];
    let mut rng = super::grading::rng(4);
    for i in 0..4 {
        let (d, u) = (rng.gen_range(1..500), rng.gen_range(1..500));
        let w = (rng.gen_range(0.25..4.0f64) * 100.0).round() / 100.0;
        cases.push((
            format!("random {} ({d} up, {u} down, λU = {w})", i + 1),
            d,
            u,
            w,
        ));
    }
    for (name, d, u, w) in cases {
        let expected = reference_range(d, u, w);
        let Some(got) = check.call(|| student(d, u, w)) else {
            continue;
        };
        let ok = match (expected, got) {
            (None, None) => true,
            (Some(e), Some(g)) => approx_eq(e.0, g.0, 1e-9) && approx_eq(e.1, g.1, 1e-9),
            _ => false,
        };
        let show = |r: Option<(f64, f64)>| {
            r.map_or("None".to_string(), |(lo, hi)| {
                format!("λD in [{}, {}]", fmt_num(lo), fmt_num(hi))
            })
        };
        check.case(name, show(expected), show(got), ok);
    }
    check.finish()
}

/// Where the student stands in lab 4: each exercise with its latest check result in this
/// kernel (the lab's last cell).
pub fn progress() -> super::progress::Progress {
    super::progress::Progress::of("Lab 4", &["4.1", "4.2", "4.3"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use serde_json::json;

    #[test]
    fn training_line_passes_serde_json_and_fails_string_gluing() {
        let good = |p: &str, c: &str, l: bool| {
            json!({"prompt": p, "completion": c, "label": l}).to_string()
        };
        let r = training_line(good);
        assert!(r.passed(), "{r}");
        let glued = |p: &str, c: &str, l: bool| {
            format!("{{\"prompt\": \"{p}\", \"completion\": \"{c}\", \"label\": {l}}}")
        };
        let r = training_line(glued);
        assert_eq!(r.status, Status::Failed);
        let text = r.to_string();
        assert!(text.contains("FAIL quotes and a backslash"), "{text}");
        assert!(text.contains("hint:"), "{text}");
        // Extra keys (metadata) do not belong in a training file.
        let with_meta = |p: &str, c: &str, l: bool| {
            json!({"prompt": p, "completion": c, "label": l, "metadata": {}}).to_string()
        };
        assert_eq!(training_line(with_meta).status, Status::Failed);
        // Pretty-printed JSON spans lines.
        let pretty = |p: &str, c: &str, l: bool| {
            serde_json::to_string_pretty(&json!({"prompt": p, "completion": c, "label": l}))
                .unwrap()
        };
        assert_eq!(training_line(pretty).status, Status::Failed);
        let r = training_line(|_: &str, _: &str, _: bool| -> String { todo!() });
        assert_eq!(r.status, Status::NotDone);
    }

    fn solution_parse(line: &str) -> Option<(String, String, bool)> {
        let v: Value = serde_json::from_str(line).ok()?;
        let obj = v.as_object()?;
        let known = ["prompt", "completion", "label", "metadata"];
        if obj.keys().any(|k| !known.contains(&k.as_str())) {
            return None;
        }
        let prompt = obj.get("prompt")?.as_str()?;
        let completion = obj.get("completion")?.as_str()?;
        let label = obj.get("label")?.as_bool()?;
        match obj.get("metadata") {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(_) => return None,
        }
        if prompt.trim().is_empty() || completion.trim().is_empty() {
            return None;
        }
        Some((prompt.to_string(), completion.to_string(), label))
    }

    #[test]
    fn parse_line_passes_the_solution_and_fails_a_lenient_parser() {
        let r = parse_line(solution_parse);
        assert!(r.passed(), "{r}");
        // Accepts extra keys and blank text.
        let lenient = |line: &str| -> Option<(String, String, bool)> {
            let v: Value = serde_json::from_str(line).ok()?;
            Some((
                v.get("prompt")?.as_str()?.to_string(),
                v.get("completion")?.as_str()?.to_string(),
                v.get("label")?.as_bool()?,
            ))
        };
        let r = parse_line(lenient);
        assert_eq!(r.status, Status::Failed);
        let text = r.to_string();
        assert!(text.contains("FAIL an extra key"), "{text}");
        assert!(text.contains("FAIL a blank completion"), "{text}");
        // Panics on a torn line: a failed case naming the panic.
        let unwrapping = |line: &str| {
            let v: Value = serde_json::from_str(line).unwrap();
            solution_parse(&v.to_string())
        };
        let r = parse_line(unwrapping);
        assert_eq!(r.status, Status::Failed);
        assert!(r.to_string().contains("panic"), "{r}");
        let r = parse_line(|_: &str| -> Option<(String, String, bool)> { todo!() });
        assert_eq!(r.status, Status::NotDone);
    }

    #[test]
    fn weight_range_passes_eq_8_and_fails_inverted_ratios() {
        let solution = |d: usize, u: usize, w: f64| {
            if d == 0 || u == 0 {
                return None;
            }
            let low = w * u as f64 / d as f64;
            Some((low, low * 4.0 / 3.0))
        };
        let r = desirable_weight_range(solution);
        assert!(r.passed(), "{r}");
        let inverted = |d: usize, u: usize, w: f64| {
            let low = w * d as f64 / u.max(1) as f64;
            Some((low, low * 4.0 / 3.0))
        };
        let r = desirable_weight_range(inverted);
        assert_eq!(r.status, Status::Failed);
        let text = r.to_string();
        assert!(
            text.contains("expected λD in [10, 13.333333], got λD in [0.1, 0.133333]"),
            "{text}"
        );
        assert!(text.contains("FAIL no feedback at all"), "{text}");
        let r =
            desirable_weight_range(|_: usize, _: usize, _: f64| -> Option<(f64, f64)> { todo!() });
        assert_eq!(r.status, Status::NotDone);
    }
}
