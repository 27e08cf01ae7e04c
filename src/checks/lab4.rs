//! Checks of lab 4's exercises (`solutions/04_collecting_feedback.ipynb`).
//!
//! | exercise | check | the reference it compares with |
//! |---|---|---|
//! | 4.1 from a chat UI's clicks to KTO training lines | [`training_lines`] | [`final_votes`], [`Record::to_training_line`] |
//! | 4.2 read a line back, rejecting malformed ones | [`parse_line`] | [`Record::parse_line`] |
//! | 4.3 the range of λD that balances the classes | [`desirable_weight_range`] | [`advise`] |

use std::path::Path;

use rand::Rng;
use serde_json::Value;

use super::{approx_eq, fmt_num, Ask, CheckResult, Checker};
use crate::feedback::{advise, final_votes, Click, Record, Text, Vote};

answer_key! {
    /// The reference of exercise 4.1: TRL's unpaired rows, `{"prompt","completion","label"}`, one
    /// per answer clicked, with its last vote ([`final_votes`]).
    pub fn reference_lines(clicks: &[Click]) -> Vec<String> {
        final_votes(clicks)
            .iter()
            .map(Record::to_training_line)
            .collect()
    }
}

/// The visible cases of exercise 4.1, then random click streams.
fn click_cases() -> Vec<(String, Vec<Click>)> {
    let q = "What is Python?";
    let (good, bad) = ("A high-level programming language.", "A snake.");
    let click = |p: &str, c: &str, v: Vote| Click::new(p, c, v);
    let mut cases = vec![
        ("one thumbs up".to_string(), vec![click(q, good, Vote::Up)]),
        (
            "a thumbs up and a thumbs down".into(),
            vec![click(q, good, Vote::Up), click(q, bad, Vote::Down)],
        ),
        (
            "a changed mind: 👍 then 👎 is one thumbs down".into(),
            vec![click(q, good, Vote::Up), click(q, good, Vote::Down)],
        ),
        (
            "three 👍 on one answer count once".into(),
            vec![
                click(q, good, Vote::Up),
                click(q, good, Vote::Up),
                click(q, bad, Vote::Down),
                click(q, good, Vote::Up),
            ],
        ),
        (
            "a vote taken back is no label (not a thumbs down)".into(),
            vec![click(q, bad, Vote::Down), click(q, bad, Vote::Clear)],
        ),
        (
            "taken back, then voted again".into(),
            vec![
                click(q, good, Vote::Down),
                click(q, good, Vote::Clear),
                click(q, good, Vote::Up),
            ],
        ),
        (
            "the same answer to two prompts is two answers".into(),
            vec![
                click("Capital of France?", "Paris.", Vote::Up),
                click("Capital of Italy?", "Paris.", Vote::Down),
            ],
        ),
        (
            "quotes, a backslash and a newline: still one line each".into(),
            vec![
                click("Say \"hi\"", "He said \"hi\" \\ bye", Vote::Up),
                click("Two lines?", "first\nsecond", Vote::Down),
            ],
        ),
        (
            "unicode".into(),
            vec![click(
                "Quelle est la capitale de la France ?",
                "Paris 🇫🇷 — évidemment.",
                Vote::Up,
            )],
        ),
        ("no clicks, no lines".into(), Vec::new()),
    ];
    let mut rng = super::grading::rng(0x6b74_6f34);
    let prompts = ["Capital of France?", "What is Python?"];
    let answers = ["Paris.", "A snake.", "I don't know."];
    for i in 0..3 {
        let n = rng.gen_range(4..14);
        let stream = (0..n)
            .map(|_| {
                let vote = [Vote::Up, Vote::Down, Vote::Clear][rng.gen_range(0..3)];
                click(
                    prompts[rng.gen_range(0..prompts.len())],
                    answers[rng.gen_range(0..answers.len())],
                    vote,
                )
            })
            .collect();
        cases.push((format!("random clicks {} ({n} clicks)", i + 1), stream));
    }
    cases
}

/// Lines as the check shows them: `·` between lines, `(none)` for none.
fn show(lines: &[String]) -> String {
    if lines.is_empty() {
        "(none)".into()
    } else {
        lines.join(" · ")
    }
}

/// Exercise 4.1 — `student(clicks)` must return one JSON line (no newline) per answer clicked,
/// holding exactly `prompt`, `completion` and `label` = its last vote; an answer whose last
/// click took the vote back gets no line. Compared as JSON and in any order, so key order,
/// spacing and line order are free; escaping must be right, and each answer counts once.
pub fn training_lines<F>(student: F) -> CheckResult
where
    F: Fn(&[Click]) -> Vec<String>,
{
    super::exam::answer(
        "4.1",
        |clicks: &Vec<Click>| student(clicks),
        check_training_lines,
    )
}

pub(crate) fn check_training_lines(student: &mut dyn Ask<Vec<Click>, Vec<String>>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 4.1 — from clicks to KTO training lines",
        "keep one entry per answer — the (prompt, completion) pair — and overwrite its vote on \
         every click; then one line per entry whose last vote is 👍 or 👎, built with \
         `json!({...}).to_string()` (never glued by hand: quotes and newlines must be escaped)",
    );
    for (name, clicks) in click_cases() {
        let expected = reference_lines(&clicks);
        let Some(got) = check.ask(student, &clicks) else {
            continue;
        };
        // Each line parsed on its own (a line with a newline inside is not one line), then
        // matched as multisets of JSON values: the same rows, each as often, in any order and
        // with the keys in any order.
        let parse = |lines: &[String]| -> Option<Vec<Value>> {
            lines
                .iter()
                .map(|l| {
                    (!l.contains('\n'))
                        .then(|| serde_json::from_str::<Value>(l).ok())
                        .flatten()
                })
                .collect()
        };
        let ok = match (parse(&got), parse(&expected)) {
            (Some(got), Some(mut left)) => {
                got.len() == left.len()
                    && got.iter().all(|row| {
                        let found = left.iter().position(|e| e == row);
                        found.map(|i| left.swap_remove(i)).is_some()
                    })
            }
            _ => false,
        };
        check.case(name, show(&expected), show(&got), ok);
    }
    check.finish()
}

answer_key! {
    /// The reference of exercise 4.2: the library's parser, keeping plain-text rows only.
    pub fn reference_parse(line: &str) -> Option<(String, String, bool)> {
        let record = Record::parse_line(line, Path::new("line"), 1).ok()?;
        match (record.prompt, record.completion) {
            (Text::Plain(p), Text::Plain(c)) => Some((p, c, record.label)),
            _ => None,
        }
    }
}

/// Exercise 4.2 — `student(line)` must return `Some((prompt, completion, label))` for a valid
/// plain-text row and `None` for anything else: a JSON object with exactly the keys `prompt`,
/// `completion`, `label` and optionally `metadata`; prompt and completion non-blank strings;
/// label `true`/`false`; metadata an object or `null`.
pub fn parse_line<F>(student: F) -> CheckResult
where
    F: Fn(&str) -> Option<(String, String, bool)>,
{
    super::exam::answer("4.2", |line: &String| student(line), check_parse_line)
}

pub(crate) fn check_parse_line(
    student: &mut dyn Ask<String, Option<(String, String, bool)>>,
) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 4.2 — read a feedback line, reject malformed ones",
        "parse with `serde_json::from_str::<Value>`, then `as_object()`, check the keys, \
         `as_str()` / `as_bool()` each field; every `?` on an Option returns None early",
    );
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
        let Some(got) = check.ask(student, &line.to_owned()) else {
            continue;
        };
        check.equal(name, expected, got);
    }
    check.finish()
}

answer_key! {
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
}

/// Exercise 4.3 — `student(n_desirable, n_undesirable, undesirable_weight)` must return the
/// range `(low, high)` of λD that puts λD·nD / (λU·nU) in [1, 4/3] (the KTO paper's range), or `None`
/// when either class is empty (the ratio is undefined).
pub fn desirable_weight_range<F>(student: F) -> CheckResult
where
    F: Fn(usize, usize, f64) -> Option<(f64, f64)>,
{
    super::exam::answer(
        "4.3",
        |&(d, u, w): &(usize, usize, f64)| student(d, u, w),
        check_desirable_weight_range,
    )
}

pub(crate) fn check_desirable_weight_range(
    student: &mut dyn Ask<(usize, usize, f64), Option<(f64, f64)>>,
) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 4.3 — the λD that balances the classes",
        "solve 1 ≤ λD·nD / (λU·nU) ≤ 4/3 for λD: low = λU·nU/nD, high = (4/3)·low; \
         with nD = 0 or nU = 0 there is no range (None)",
    );
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
        let Some(got) = check.ask(student, &(d, u, w)) else {
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

    /// Exercise 4.1's solution, as the notebook writes it.
    fn solution_lines(clicks: &[Click]) -> Vec<String> {
        let mut order: Vec<(&str, &str)> = Vec::new();
        let mut last: std::collections::HashMap<(&str, &str), Vote> = Default::default();
        for c in clicks {
            let answer = (c.prompt.as_str(), c.completion.as_str());
            if last.insert(answer, c.vote).is_none() {
                order.push(answer);
            }
        }
        order
            .into_iter()
            .filter_map(|(p, c)| {
                let label = match last[&(p, c)] {
                    Vote::Up => true,
                    Vote::Down => false,
                    Vote::Clear => return None,
                };
                Some(json!({"prompt": p, "completion": c, "label": label}).to_string())
            })
            .collect()
    }

    fn line(c: &Click, label: bool) -> String {
        json!({"prompt": c.prompt, "completion": c.completion, "label": label}).to_string()
    }

    fn failed(r: &CheckResult) -> Vec<&str> {
        r.failed_cases()
    }

    #[test]
    fn training_lines_passes_the_solution_and_names_each_wrong_decision() {
        let r = training_lines(solution_lines);
        assert!(r.passed(), "{r}");
        assert_eq!(r.cases.len(), 13);
        // Key order and row order are free.
        let reordered = |clicks: &[Click]| -> Vec<String> {
            let mut lines: Vec<String> = solution_lines(clicks)
                .iter()
                .map(|l| {
                    let v: Value = serde_json::from_str(l).unwrap_or_default();
                    json!({"label": v["label"], "completion": v["completion"], "prompt": v["prompt"]})
                        .to_string()
                })
                .collect();
            lines.reverse();
            lines
        };
        let r = training_lines(reordered);
        assert_eq!(r.failed_cases(), Vec::<&str>::new(), "{r}");
        // Every click a line: flipped votes keep both labels, repeats count thrice, a
        // withdrawn vote becomes… something.
        let every_click = |clicks: &[Click]| -> Vec<String> {
            clicks
                .iter()
                .filter(|c| c.vote != Vote::Clear)
                .map(|c| line(c, c.vote == Vote::Up))
                .collect()
        };
        let r = training_lines(every_click);
        assert_eq!(r.status, Status::Failed);
        let f = failed(&r);
        assert!(
            f.contains(&"a changed mind: 👍 then 👎 is one thumbs down"),
            "{r}"
        );
        assert!(f.contains(&"three 👍 on one answer count once"), "{r}");
        assert!(!f.contains(&"one thumbs up"), "{r}");
        // A cleared vote as a thumbs down.
        let clear_is_down = |clicks: &[Click]| -> Vec<String> {
            let as_down: Vec<Click> = clicks
                .iter()
                .map(|c| Click {
                    vote: if c.vote == Vote::Clear {
                        Vote::Down
                    } else {
                        c.vote
                    },
                    ..c.clone()
                })
                .collect();
            solution_lines(&as_down)
        };
        let r = training_lines(clear_is_down);
        assert!(
            failed(&r).contains(&"a vote taken back is no label (not a thumbs down)"),
            "{r}"
        );
        // Keyed by the completion alone: the same answer to two prompts merges.
        let by_completion = |clicks: &[Click]| -> Vec<String> {
            let mut last: Vec<(&Click, Vote)> = Vec::new();
            for c in clicks {
                match last.iter_mut().find(|(k, _)| k.completion == c.completion) {
                    Some(entry) => entry.1 = c.vote,
                    None => last.push((c, c.vote)),
                }
            }
            last.into_iter()
                .filter(|(_, v)| *v != Vote::Clear)
                .map(|(c, v)| line(c, v == Vote::Up))
                .collect()
        };
        let r = training_lines(by_completion);
        assert!(
            failed(&r).contains(&"the same answer to two prompts is two answers"),
            "{r}"
        );
        // Glued by hand: the escaping case fails.
        let glued = |clicks: &[Click]| -> Vec<String> {
            final_votes(clicks)
                .iter()
                .map(|r| match (&r.prompt, &r.completion) {
                    (Text::Plain(p), Text::Plain(c)) => format!(
                        "{{\"prompt\": \"{p}\", \"completion\": \"{c}\", \"label\": {}}}",
                        r.label
                    ),
                    _ => String::new(),
                })
                .collect()
        };
        let r = training_lines(glued);
        let f = failed(&r);
        assert!(
            f.contains(&"quotes, a backslash and a newline: still one line each"),
            "{r}"
        );
        let r = training_lines(|_: &[Click]| -> Vec<String> { todo!() });
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
