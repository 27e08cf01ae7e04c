//! Instant feedback for the notebook exercises.
//!
//! Every exercise in a lab notebook is followed by a check cell that hands the student's function
//! to a check in this module, for example `checks::lab1::kto_batch_mean(&my_kto_loss)`. The check
//! runs the function on fixed and random inputs (edge cases included), compares each answer with
//! the library's reference, and returns a [`CheckResult`]: a small pass/fail table that evcxr shows
//! inline, with a hint when something is off.
//!
//! An exercise that still holds the lab's `todo!()` stub is reported **not done yet** instead of
//! crashing the notebook: each call into student code goes through [`Checker::call`], which
//! catches the panic (and keeps its message off the notebook's stderr).
//!
//! The first line of a result's text always contains exactly one of [`Status`]'s markers —
//! `✅ passed`, `❌ failed`, `⏳ not done yet` — so a notebook runner can tell the three apart.
//!
//! Every result is also remembered for the kernel's lifetime, so the last cell of a lab can show
//! where the student stands: `checks::lab1::progress()` ([`progress`]).

pub mod exam;
pub mod grading;
pub mod lab1;
pub mod lab2;
pub mod lab3;
pub mod lab4;
pub mod lab5;
pub mod progress;

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

/// Where an exercise stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every case agreed with the reference.
    Passed,
    /// At least one case disagreed, or the student's code panicked.
    Failed,
    /// The exercise still holds its `todo!()` stub.
    NotDone,
}

impl Status {
    /// The marker a result's first line carries (what a notebook runner looks for).
    pub fn marker(self) -> &'static str {
        match self {
            Status::Passed => "✅ passed",
            Status::Failed => "❌ failed",
            Status::NotDone => "⏳ not done yet",
        }
    }
}

/// One compared case: what was asked, what the reference says, what the student's code gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// A short description of the input ("one-class batch", "β = 0.5", …).
    pub name: String,
    /// The reference answer, formatted.
    pub expected: String,
    /// The student's answer, formatted (or the panic message).
    pub got: String,
    /// Whether the two agree (within the check's tolerance).
    pub ok: bool,
}

/// The outcome of one exercise's check: shown inline in the notebook.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The exercise's name as the notebook shows it, e.g. "Exercise 1.1 — simplified KTO".
    pub exercise: String,
    /// Passed, failed or not done yet.
    pub status: Status,
    /// Every case that ran, in order.
    pub cases: Vec<Case>,
    /// What to look at when a case fails.
    pub hint: String,
    /// How many of `cases` are hidden tests (their names start with `hidden: `); 0 outside a
    /// solution or grading run.
    pub hidden: usize,
}

impl CheckResult {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.status == Status::Passed
    }

    /// The names of the cases that failed, in order.
    pub fn failed_cases(&self) -> Vec<&str> {
        self.cases
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The same result with the hidden tests added: `hidden` is this exercise's check again,
    /// with every random input drawn from the grading run's seed
    /// ([`grading::set_hidden_seed`]). Solution notebooks call it between
    /// `// BEGIN HIDDEN TESTS` and `// END HIDDEN TESTS`, a region student notebooks do not have.
    pub fn with_hidden(mut self, hidden: impl FnOnce() -> CheckResult) -> CheckResult {
        let extra = grading::run_hidden(hidden);
        self.hidden += extra.cases.len();
        self.cases.extend(extra.cases.into_iter().map(|c| Case {
            name: format!("hidden: {}", c.name),
            ..c
        }));
        self.status = match (self.status, extra.status) {
            (Status::NotDone, _) | (_, Status::NotDone) => Status::NotDone,
            (Status::Passed, Status::Passed) => Status::Passed,
            _ => Status::Failed,
        };
        progress::record(&self);
        self
    }

    /// The first line of the result: the exercise, its marker and the count of passing cases.
    pub fn headline(&self) -> String {
        let ok = self.cases.iter().filter(|c| c.ok).count();
        match self.status {
            Status::NotDone => format!(
                "{}: {} — replace the todo!() with your code and run the cell again",
                self.exercise,
                self.status.marker()
            ),
            _ => format!(
                "{}: {} ({ok}/{} cases)",
                self.exercise,
                self.status.marker(),
                self.cases.len()
            ),
        }
    }

    /// evcxr's rich display: an HTML table, plus the plain text for text-only front ends.
    pub fn evcxr_display(&self) {
        show_in_notebook(&self.to_string(), &self.html());
    }

    /// The result as an HTML table (what a notebook shows).
    pub fn html(&self) -> String {
        let colour = match self.status {
            Status::Passed => "#1a7f37",
            Status::Failed => "#cf222e",
            Status::NotDone => "#9a6700",
        };
        let mut html = format!(
            "<div><p style=\"color:{colour};font-weight:bold\">{}</p>",
            escape(&self.headline())
        );
        if self.status != Status::NotDone && !self.cases.is_empty() {
            html.push_str("<table><tr><th></th><th>case</th><th>expected</th><th>got</th></tr>");
            for c in &self.cases {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                    if c.ok { "✅" } else { "❌" },
                    escape(&c.name),
                    escape(&c.expected),
                    escape(&c.got)
                ));
            }
            html.push_str("</table>");
        }
        if self.status == Status::Failed && !self.hint.is_empty() {
            html.push_str(&format!("<p>💡 Hint: {}</p>", escape(&self.hint)));
        }
        html.push_str("</div>");
        html
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        if self.status != Status::NotDone {
            let width = self
                .cases
                .iter()
                .map(|c| c.name.chars().count())
                .max()
                .unwrap_or(0);
            for c in &self.cases {
                let mark = if c.ok { "ok  " } else { "FAIL" };
                write!(f, "  {mark} {:<width$}  expected {}", c.name, c.expected)?;
                if c.ok {
                    writeln!(f)?;
                } else {
                    writeln!(f, ", got {}", c.got)?;
                }
            }
        }
        if self.status == Status::Failed && !self.hint.is_empty() {
            writeln!(f, "  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Prints `text` and `html` in evcxr's rich-output form (the front end picks the richer one).
fn show_in_notebook(text: &str, html: &str) {
    println!("EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT");
    println!("EVCXR_BEGIN_CONTENT text/html\n{html}\nEVCXR_END_CONTENT");
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Why a call into student code did not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    /// The code reached a `todo!()` (or `unimplemented!()`).
    NotDone,
    /// Any other panic, with its message.
    Panicked(String),
}

/// How a check puts a question to the student's code: the inputs of one call (`Q`), and what
/// the call returned (`A`).
///
/// In a notebook the question is answered right here ([`Local`]); while grading, in the
/// student's own process, over the grader's socket ([`exam`]) — the check, its expected values
/// and its verdict stay on the grader's side.
pub trait Ask<Q, A> {
    /// Calls the student's code on `question`; a `todo!()` or a panic is an [`Interrupted`].
    fn ask(&mut self, question: &Q) -> Result<A, Interrupted>;
}

/// The student's function, called in this process, panics caught ([`guarded`]).
pub struct Local<F>(pub F);

impl<Q, A, F: FnMut(&Q) -> A> Ask<Q, A> for Local<F> {
    fn ask(&mut self, question: &Q) -> Result<A, Interrupted> {
        guarded(|| (self.0)(question))
    }
}

/// Builds a [`CheckResult`] case by case.
///
/// ```
/// use kto_lab::checks::Checker;
/// let square = |x: f64| x * x;
/// let mut check = Checker::new("Exercise 0 — square", "multiply x by itself");
/// for x in [0.0, 1.5, -2.0] {
///     if let Some(got) = check.call(|| square(x)) {
///         check.close(format!("x = {x}"), x * x, got, 1e-12);
///     }
/// }
/// assert!(check.finish().passed());
/// ```
#[derive(Debug)]
pub struct Checker {
    exercise: String,
    hint: String,
    cases: Vec<Case>,
    not_done: bool,
}

/// Serializes the swap of the process-wide panic hook.
static HOOK: Mutex<()> = Mutex::new(());

impl Checker {
    /// A check for `exercise`, showing `hint` if a case fails.
    pub fn new(exercise: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            exercise: exercise.into(),
            hint: hint.into(),
            cases: Vec::new(),
            not_done: false,
        }
    }

    /// Runs student code, catching a panic. `None` when it did not return: a `todo!()` marks the
    /// exercise not done; any other panic is recorded as a failed case named after the panic.
    /// Once the exercise is known to be not done, later calls are skipped.
    pub fn call<T>(&mut self, f: impl FnOnce() -> T) -> Option<T> {
        if self.not_done {
            return None;
        }
        let result = guarded(f);
        self.settle(result)
    }

    /// Puts `question` to the student's code (see [`Ask`]): like [`Checker::call`], `None`
    /// when it did not answer.
    pub fn ask<Q, A>(&mut self, student: &mut dyn Ask<Q, A>, question: &Q) -> Option<A> {
        if self.not_done {
            return None;
        }
        let result = student.ask(question);
        self.settle(result)
    }

    fn settle<T>(&mut self, result: Result<T, Interrupted>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(Interrupted::NotDone) => {
                self.not_done = true;
                None
            }
            Err(Interrupted::Panicked(msg)) => {
                self.cases.push(Case {
                    name: "runs without panicking".into(),
                    expected: "a value".into(),
                    got: format!("panic: {msg}"),
                    ok: false,
                });
                None
            }
        }
    }

    /// Records a case that passes when `ok`.
    pub fn case(
        &mut self,
        name: impl Into<String>,
        expected: impl fmt::Display,
        got: impl fmt::Display,
        ok: bool,
    ) {
        self.cases.push(Case {
            name: name.into(),
            expected: expected.to_string(),
            got: got.to_string(),
            ok,
        });
    }

    /// Records a case comparing two numbers: equal within `tol`, absolutely or relative to the
    /// expected value's size (whichever is looser). NaN never passes.
    pub fn close(&mut self, name: impl Into<String>, expected: f64, got: f64, tol: f64) {
        let ok = approx_eq(expected, got, tol);
        self.case(name, fmt_num(expected), fmt_num(got), ok);
    }

    /// Records a case comparing two vectors element-wise with [`Checker::close`]'s rule.
    pub fn close_all(&mut self, name: impl Into<String>, expected: &[f64], got: &[f64], tol: f64) {
        let ok = expected.len() == got.len()
            && expected
                .iter()
                .zip(got)
                .all(|(e, g)| approx_eq(*e, *g, tol));
        self.case(name, fmt_vec(expected), fmt_vec(got), ok);
    }

    /// Records a case comparing two values with `==`, shown with `Debug`.
    pub fn equal<T: PartialEq + fmt::Debug>(
        &mut self,
        name: impl Into<String>,
        expected: T,
        got: T,
    ) {
        let ok = expected == got;
        self.case(name, format!("{expected:?}"), format!("{got:?}"), ok);
    }

    /// The result: not done if a `todo!()` was hit, passed if every case agreed (and there was
    /// at least one), failed otherwise.
    pub fn finish(self) -> CheckResult {
        let status = if self.not_done {
            Status::NotDone
        } else if !self.cases.is_empty() && self.cases.iter().all(|c| c.ok) {
            Status::Passed
        } else {
            Status::Failed
        };
        let result = CheckResult {
            exercise: self.exercise,
            status,
            cases: self.cases,
            hint: self.hint,
            hidden: 0,
        };
        progress::record(&result);
        result
    }
}

/// Runs `f`, turning a panic into [`Interrupted`] with the default panic message kept off stderr.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Interrupted> {
    let _lock = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(previous);
    result.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        if msg.starts_with("not yet implemented") || msg.starts_with("not implemented") {
            Interrupted::NotDone
        } else {
            Interrupted::Panicked(msg)
        }
    })
}

/// `a ≈ b` within `tol`, absolutely or relative to `|a|`; NaN is never close to anything.
pub fn approx_eq(a: f64, b: f64, tol: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return false;
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= tol || diff <= tol * a.abs()
}

/// A number as a check shows it: 6 significant digits, so results are stable across machines.
pub fn fmt_num(x: f64) -> String {
    if x.is_nan() || x.is_infinite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".into();
    }
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s == "0" {
        format!("{x:.3e}")
    } else {
        s.to_string()
    }
}

fn fmt_vec(xs: &[f64]) -> String {
    let shown: Vec<String> = xs.iter().take(6).map(|x| fmt_num(*x)).collect();
    if xs.len() > 6 {
        format!("[{}, … ({} values)]", shown.join(", "), xs.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn todo_is_not_done_and_skips_later_calls() {
        let mut c = Checker::new("Exercise 0", "hint");
        let student = |_: f64| -> f64 { todo!("write the loss") };
        assert_eq!(c.call(|| student(1.0)), None);
        let mut ran = false;
        assert_eq!(
            c.call(|| {
                ran = true;
                1
            }),
            None
        );
        assert!(!ran);
        let r = c.finish();
        assert_eq!(r.status, Status::NotDone);
        assert!(r.headline().contains("⏳ not done yet"), "{}", r.headline());
    }

    #[test]
    fn other_panics_fail_with_their_message() {
        let mut c = Checker::new("Exercise 0", "look at the index");
        let v: Vec<f64> = vec![];
        assert_eq!(c.call(|| v[3]), None);
        let r = c.finish();
        assert_eq!(r.status, Status::Failed);
        assert!(
            r.cases[0].got.contains("index out of bounds"),
            "{:?}",
            r.cases
        );
        let text = r.to_string();
        assert!(
            text.starts_with("Exercise 0: ❌ failed (0/1 cases)"),
            "{text}"
        );
        assert!(text.contains("hint: look at the index"), "{text}");
    }

    #[test]
    fn close_cases_pass_and_fail() {
        let mut c = Checker::new("Exercise 0", "");
        c.close("same", 1.0, 1.0 + 1e-9, 1e-6);
        c.close("nan", 1.0, f64::NAN, 1e-6);
        c.close_all("vec", &[1.0, 2.0], &[1.0, 2.0], 1e-6);
        c.close_all("length", &[1.0, 2.0], &[1.0], 1e-6);
        let r = c.finish();
        let oks: Vec<bool> = r.cases.iter().map(|c| c.ok).collect();
        assert_eq!(oks, [true, false, true, false]);
        assert_eq!(r.status, Status::Failed);
        assert!(r.html().contains("<table>"));
    }

    #[test]
    fn a_check_with_no_cases_does_not_pass() {
        assert_eq!(Checker::new("e", "h").finish().status, Status::Failed);
    }

    #[test]
    fn numbers_are_shown_stably() {
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(-1.2345678), "-1.234568");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(1e-9), "1.000e-9");
        assert_eq!(fmt_num(0.0), "0");
    }
}
