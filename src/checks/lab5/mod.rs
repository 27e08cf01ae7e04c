//! Checks for lab 5 — KTO or DPO?
//!
//! | exercise | check | the student writes |
//! |---|---|---|
//! | 5.1 | [`dpo_loss`] | DPO's sigmoid loss on (chosen, rejected) pairs |
//! | 5.2 | [`dpo_grads`] | how hard DPO pushes each side of each pair: ∂loss/∂log πθ |
//! | 5.3 | [`write_feedback`] | thumbs-up/down rows written as TRL's unpaired JSONL with serde_json |
//!
//! The losses are compared with [`plain::dpo`]; the file is read back line by line and by
//! [`feedback::analyze`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use serde_json::Value;

use super::lab1::close_opt;
use super::{Ask, CheckResult, Checker};
use crate::feedback::{self, SEED_FEEDBACK};
use crate::losses::plain;
use crate::losses::ExampleBatch;

/// Exercise 5.1's signature: policy chosen, policy rejected, reference chosen, reference
/// rejected log-probs, β → loss (`None` when there are no pairs).
pub type DpoLossFn<'a> = dyn Fn(&[f32], &[f32], &[f32], &[f32], f32) -> Option<f32> + 'a;
/// Exercise 5.2's signature: the same inputs → (∂loss/∂chosen, ∂loss/∂rejected) per pair.
pub type DpoGradsFn<'a> = dyn Fn(&[f32], &[f32], &[f32], &[f32], f32) -> (Vec<f32>, Vec<f32>) + 'a;
/// Exercise 5.3's signature: write `(prompt, completion, thumbs up?)` rows to a JSONL file.
pub type WriteFeedbackFn<'a> = dyn Fn(&Path, &[(&str, &str, bool)]) -> std::io::Result<()> + 'a;

const TOL: f64 = 1e-5;

/// Exercises 5.1's and 5.2's question: the four log-prob slices and β, in [`plain::dpo`]'s
/// order.
pub(crate) type PairsQuestion = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, f32);

/// Calls `f` with a question's slices and β.
trait ApplyPairs {
    fn apply<R>(&self, f: impl FnOnce(&[f32], &[f32], &[f32], &[f32], f32) -> R) -> R;
}

impl ApplyPairs for PairsQuestion {
    fn apply<R>(&self, f: impl FnOnce(&[f32], &[f32], &[f32], &[f32], f32) -> R) -> R {
        f(&self.0, &self.1, &self.2, &self.3, self.4)
    }
}

/// One set of pairs: the four log-prob slices and β.
struct Pairs {
    name: String,
    policy_chosen: Vec<f32>,
    policy_rejected: Vec<f32>,
    reference_chosen: Vec<f32>,
    reference_rejected: Vec<f32>,
    beta: f32,
}

impl Pairs {
    fn question(&self) -> PairsQuestion {
        (
            self.policy_chosen.clone(),
            self.policy_rejected.clone(),
            self.reference_chosen.clone(),
            self.reference_rejected.clone(),
            self.beta,
        )
    }

    /// `f(policy_chosen, policy_rejected, reference_chosen, reference_rejected, β)`: the
    /// argument order of [`plain::dpo`] and of exercises 5.1 and 5.2.
    fn apply<R>(&self, f: impl FnOnce(&[f32], &[f32], &[f32], &[f32], f32) -> R) -> R {
        f(
            &self.policy_chosen,
            &self.policy_rejected,
            &self.reference_chosen,
            &self.reference_rejected,
            self.beta,
        )
    }
}

/// Pairs from chosen and rejected log-ratios around a fixed reference.
fn from_ratios(name: &str, chosen: &[f32], rejected: &[f32], beta: f32) -> Pairs {
    Pairs {
        name: name.to_string(),
        policy_chosen: chosen.iter().map(|r| -20.0 + r).collect(),
        policy_rejected: rejected.iter().map(|r| -24.0 + r).collect(),
        reference_chosen: vec![-20.0; chosen.len()],
        reference_rejected: vec![-24.0; rejected.len()],
        beta,
    }
}

fn inputs() -> Vec<Pairs> {
    let lab = ExampleBatch::generate(8, 42);
    let (up, down) = lab.policy_logps.split_at(4);
    let (ref_up, ref_down) = lab.reference_logps.split_at(4);
    let lab_pairs = |name: &str, beta: f32| Pairs {
        name: name.to_string(),
        policy_chosen: up.to_vec(),
        policy_rejected: down.to_vec(),
        reference_chosen: ref_up.to_vec(),
        reference_rejected: ref_down.to_vec(),
        beta,
    };
    let mut v = vec![
        lab_pairs("lab 1's batch as 4 pairs (up i vs down i)", 0.1),
        lab_pairs("same pairs, β = 0.5", 0.5),
        from_ratios("a pair on the wrong side", &[-1.0], &[2.0], 0.1),
        from_ratios(
            "a far-off pair (β·margin = −200)",
            &[-1000.0, 0.5],
            &[1000.0, -0.5],
            0.1,
        ),
        from_ratios(
            "both sides pushed up, chosen more",
            &[3.0, 1.0],
            &[2.0, 0.5],
            0.2,
        ),
    ];
    let mut rng = super::grading::rng(0x6b74_6f35);
    for k in 0..5 {
        let n = rng.gen_range(1..=8);
        let mut draw = || -> Vec<f32> { (0..n).map(|_| rng.gen_range(-40.0..-5.0)).collect() };
        let (pc, pr, rc, rr) = (draw(), draw(), draw(), draw());
        v.push(Pairs {
            name: format!("random pairs #{} (n = {n})", k + 1),
            policy_chosen: pc,
            policy_rejected: pr,
            reference_chosen: rc,
            reference_rejected: rr,
            beta: rng.gen_range(0.01..1.0),
        });
    }
    v.push(from_ratios("no pairs", &[], &[], 0.1));
    v
}

/// Exercise 5.1 — DPO's loss: mean over pairs of −log σ(β·[(πc − rc) − (πr − rr)]); `None` for
/// no pairs. Compared with [`plain::dpo`].
pub fn dpo_loss(f: impl Fn(&[f32], &[f32], &[f32], &[f32], f32) -> Option<f32>) -> CheckResult {
    super::exam::answer("5.1", |p: &PairsQuestion| p.apply(&f), check_dpo_loss)
}

pub(crate) fn check_dpo_loss(f: &mut dyn Ask<PairsQuestion, Option<f32>>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 5.1 — the DPO loss",
        "per pair: margin = β·[(policy_chosen − reference_chosen) − (policy_rejected − \
         reference_rejected)], loss = −log σ(margin); then the mean over pairs. −log σ(−200) = \
         200 must stay finite: compute in f64 or use kto_lab::math::log_sigmoid. No pairs gives \
         None.",
    );
    for p in inputs() {
        let expected = p.apply(plain::dpo).ok().map(|o| f64::from(o.metrics.loss));
        let Some(got) = check.ask(f, &p.question()) else {
            continue;
        };
        close_opt(&mut check, p.name, expected, got.map(f64::from), TOL);
    }
    check.finish()
}

/// Exercise 5.2 — DPO's gradient with respect to the policy log-probs, per pair:
/// `(∂loss/∂policy_chosen, ∂loss/∂policy_rejected)`, both empty for no pairs. Compared with
/// the gradients [`plain::dpo`] gets from dfdx's `backward()`.
pub fn dpo_grads(
    f: impl Fn(&[f32], &[f32], &[f32], &[f32], f32) -> (Vec<f32>, Vec<f32>),
) -> CheckResult {
    super::exam::answer("5.2", |p: &PairsQuestion| p.apply(&f), check_dpo_grads)
}

pub(crate) fn check_dpo_grads(f: &mut dyn Ask<PairsQuestion, (Vec<f32>, Vec<f32>)>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 5.2 — DPO's push on each side of a pair",
        "with m = the pair's margin and n pairs: ∂loss/∂policy_chosen = −β·σ(−m)/n and \
         ∂loss/∂policy_rejected = +β·σ(−m)/n (the 1/n comes from the mean). Same size, \
         opposite signs.",
    );
    let to64 = |v: &[f32]| -> Vec<f64> { v.iter().map(|&x| f64::from(x)).collect() };
    for p in inputs() {
        let (want_c, want_r) = match p.apply(plain::dpo) {
            Ok(o) => (o.grad_policy_chosen_logps, o.grad_policy_rejected_logps),
            Err(_) => (Vec::new(), Vec::new()),
        };
        let Some((got_c, got_r)) = check.ask(f, &p.question()) else {
            continue;
        };
        check.close_all(
            format!("{}: ∂/∂chosen", p.name),
            &to64(&want_c),
            &to64(&got_c),
            TOL,
        );
        check.close_all(
            format!("{}: ∂/∂rejected", p.name),
            &to64(&want_r),
            &to64(&got_r),
            TOL,
        );
    }
    check.finish()
}

/// Rows whose text must be escaped: quotes, a newline, a tab, a backslash, non-ASCII.
const TRICKY: &[(&str, &str, bool)] = &[
    ("Quote me: \"hi\"", "He said \"hi\" and left.", true),
    ("Two lines?", "line one\nline two", true),
    ("Path?", "C:\\Users\\kto\tend", false),
    ("Café ☕?", "Un café, s'il vous plaît — 日本語も", true),
];

/// One feedback row: (prompt, completion, thumbs up?).
type Row<'a> = (&'a str, &'a str, bool);

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch folder for one check run, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "kto-lab-check-{}-{}",
            std::process::id(),
            SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why line `text` is not the row `(prompt, completion, label)`, if it is not.
fn line_problem(text: &str, row: &(&str, &str, bool)) -> Option<String> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Some(format!("not JSON ({e}): {text}")),
    };
    let Some(obj) = value.as_object() else {
        return Some(format!("not a JSON object: {text}"));
    };
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["completion", "label", "prompt"] {
        return Some(format!(
            "keys {keys:?}, want exactly prompt, completion, label"
        ));
    }
    let want = serde_json::json!({"prompt": row.0, "completion": row.1, "label": row.2});
    if want.as_object() != Some(obj) {
        return Some(format!("{text} (want {want})"));
    }
    None
}

/// Exercise 5.3 — write `(prompt, completion, thumbs up?)` rows as TRL's unpaired JSONL: one
/// object `{"prompt", "completion", "label"}` per line, each line ending in `\n`, replacing any
/// existing file; no rows gives an empty file. Checked by reading the file back line by line,
/// then with [`feedback::analyze`].
pub fn write_feedback(
    f: impl Fn(&Path, &[(&str, &str, bool)]) -> std::io::Result<()>,
) -> CheckResult {
    super::exam::answer(
        "5.3",
        |q: &WriteQuestion| answer_write_feedback(&f, q),
        check_write_feedback,
    )
}

/// Exercise 5.3's question: the rows, and whether an old file is there to be replaced.
pub(crate) type WriteQuestion = (Vec<(String, String, bool)>, bool);

/// What exercise 5.3's check reads of the student's write: the file's text, or why there is
/// none.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum Written {
    /// The check could not prepare the scratch folder or the old file.
    Setup(String),
    /// The student's function returned this error.
    Failed(String),
    /// The file could not be read back as UTF-8.
    Unreadable(String),
    /// The file's text.
    Text(String),
}

/// Runs the student's writer on a fresh path in a scratch folder (over an old file when asked)
/// and reads the file back.
fn answer_write_feedback(f: &WriteFeedbackFn, (rows, old_file): &WriteQuestion) -> Written {
    let scratch = match Scratch::new() {
        Ok(s) => s,
        Err(e) => return Written::Setup(format!("a scratch folder: {e}")),
    };
    let path = scratch.0.join("feedback.jsonl");
    if *old_file {
        if let Err(e) = std::fs::write(&path, "{\"old\": \"content\"}\n".repeat(20)) {
            return Written::Setup(format!("the old file: {e}"));
        }
    }
    let rows: Vec<(&str, &str, bool)> = rows
        .iter()
        .map(|(p, c, l)| (p.as_str(), c.as_str(), *l))
        .collect();
    if let Err(e) = f(&path, &rows) {
        return Written::Failed(e.to_string());
    }
    match std::fs::read_to_string(&path) {
        Ok(t) => Written::Text(t),
        Err(e) => Written::Unreadable(e.to_string()),
    }
}

pub(crate) fn check_write_feedback(f: &mut dyn Ask<WriteQuestion, Written>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 5.3 — thumbs up/down to JSONL",
        "build each line with serde_json::json!({\"prompt\": p, \"completion\": c, \"label\": l}) \
         and serde_json::to_string (it escapes quotes, newlines and backslashes; format!() does \
         not); write every line followed by \\n with std::fs::write or File::create, which \
         replace an existing file.",
    );
    let scratch = match Scratch::new() {
        Ok(s) => s,
        Err(e) => {
            check.case(
                "a scratch folder for the check",
                "created",
                format!("error: {e}"),
                false,
            );
            return check.finish();
        }
    };
    let scenarios: [(&str, &[Row], bool); 3] = [
        ("the seed's 9 rows", SEED_FEEDBACK, false),
        ("text that needs escaping, over an old file", TRICKY, true),
        ("no rows", &[], false),
    ];
    for (k, (name, rows, old_file)) in scenarios.into_iter().enumerate() {
        let question: WriteQuestion = (
            rows.iter()
                .map(|&(p, c, l)| (p.to_owned(), c.to_owned(), l))
                .collect(),
            old_file,
        );
        let Some(written) = check.ask(f, &question) else {
            continue;
        };
        let text = match written {
            Written::Text(t) => t,
            Written::Setup(e) => {
                check.case(
                    format!("{name}: setup"),
                    "done",
                    format!("error: {e}"),
                    false,
                );
                continue;
            }
            Written::Failed(e) => {
                check.case(
                    format!("{name}: writes the file"),
                    "Ok(())",
                    format!("Err({e})"),
                    false,
                );
                continue;
            }
            Written::Unreadable(e) => {
                check.case(format!("{name}: file exists"), "a UTF-8 file", e, false);
                continue;
            }
        };
        // The judge reads its own copy of the text with the library's reader.
        let path = scratch.0.join(format!("feedback-{k}.jsonl"));
        if let Err(e) = std::fs::write(&path, &text) {
            check.case(
                format!("{name}: a copy to read"),
                "written",
                format!("error: {e}"),
                false,
            );
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        check.equal(format!("{name}: number of lines"), rows.len(), lines.len());
        let ends_ok = text.is_empty() || text.ends_with('\n');
        check.case(
            format!("{name}: ends with a newline"),
            if rows.is_empty() {
                "an empty file"
            } else {
                "…\\n"
            },
            if ends_ok {
                "yes"
            } else {
                "no: the last line is unterminated"
            },
            ends_ok && (rows.is_empty() == text.is_empty()),
        );
        let problem = rows
            .iter()
            .zip(&lines)
            .enumerate()
            .find_map(|(i, (row, line))| {
                line_problem(line, row).map(|p| format!("line {}: {p}", i + 1))
            });
        let rows_ok = problem.is_none() && lines.len() == rows.len();
        check.case(
            format!("{name}: each line is {{prompt, completion, label}}"),
            "every row, in order",
            problem.unwrap_or_else(|| {
                if rows_ok {
                    "every row, in order".into()
                } else {
                    "line count differs".into()
                }
            }),
            rows_ok,
        );
        if !rows.is_empty() {
            let up = rows.iter().filter(|r| r.2).count();
            let want = format!("KTO, {up} up / {} down", rows.len() - up);
            let got = match feedback::analyze(&path) {
                Ok(r) => format!(
                    "{}, {} up / {} down",
                    r.recommendation, r.desirable, r.undesirable
                ),
                Err(e) => format!("error: {e}"),
            };
            check.case(
                format!("{name}: feedback::analyze reads it"),
                &want,
                &got,
                want == got,
            );
        }
    }
    check.finish()
}

/// Where the student stands in lab 5: each exercise with its latest check result in this
/// kernel (the lab's last cell).
pub fn progress() -> super::progress::Progress {
    super::progress::Progress::of("Lab 5", &["5.1", "5.2", "5.3"])
}

#[cfg(test)]
mod tests;
