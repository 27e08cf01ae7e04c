//! Where a student stands in a lab: each exercise's latest check result in this kernel.
//!
//! Every [`CheckResult`] a check returns is recorded here (the last one per exercise wins), for as
//! long as the process lives — in a notebook, until the kernel restarts (in the process's
//! environment, see `RESULTS_VAR`). A lab's last cell calls
//! its `progress()` (`checks::lab1::progress()`), which lists the lab's exercises with how each
//! came out, the ones whose check has not run yet included.
//!
//! The table deliberately does not use the results' markers (`✅ passed` …), so a notebook
//! runner counting check results does not count it.

use std::fmt;
use std::sync::Mutex;

use super::{CheckResult, Status};

/// Where the results live: an environment variable of the process, one `<P|F|N>\t<title>`
/// line per exercise. Not a `static`: evcxr links the library into every cell it compiles, each
/// copy with statics of its own, so a static set by one check cell is not seen by the next
/// cell; the process's environment is shared by all of them.
const RESULTS_VAR: &str = "KTO_LAB_CHECK_RESULTS";

/// Serializes the read-modify-write of the variable between threads (tests run in parallel).
static LOCK: Mutex<()> = Mutex::new(());

fn code(status: Status) -> char {
    match status {
        Status::Passed => 'P',
        Status::Failed => 'F',
        Status::NotDone => 'N',
    }
}

/// The results recorded so far in this process: (title, status), in the order first seen.
fn recorded() -> Vec<(String, Status)> {
    std::env::var(RESULTS_VAR)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (c, title) = line.split_once('\t')?;
            let status = match c {
                "P" => Status::Passed,
                "F" => Status::Failed,
                "N" => Status::NotDone,
                _ => return None,
            };
            Some((title.to_owned(), status))
        })
        .collect()
}

/// Remembers `result`'s outcome (called by every check).
pub(crate) fn record(result: &CheckResult) {
    let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut seen = recorded();
    let title = result.exercise.replace(['\n', '\t'], " ");
    match seen.iter_mut().find(|(t, _)| *t == title) {
        Some(entry) => entry.1 = result.status,
        None => seen.push((title, result.status)),
    }
    let text: Vec<String> = seen
        .iter()
        .map(|(t, s)| format!("{}\t{t}", code(*s)))
        .collect();
    std::env::set_var(RESULTS_VAR, text.join("\n"));
}

/// One exercise's row: its id, its title when its check has run, and how it came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The exercise's number (`1.2`).
    pub id: String,
    /// Its title as its check names it; `None` while the check has not run.
    pub title: Option<String>,
    /// The latest result; `None` while the check has not run.
    pub status: Option<Status>,
}

/// A lab's exercises and where each stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The lab, as a reader names it ("Lab 1").
    pub lab: String,
    /// Its exercises in order.
    pub rows: Vec<Row>,
}

impl Progress {
    /// The exercises `ids` of `lab` with the results recorded so far (a check titled
    /// `Exercise <id> — …` belongs to exercise `<id>`).
    pub fn of(lab: &str, ids: &[&str]) -> Progress {
        let seen = {
            let _lock = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            recorded()
        };
        let rows = ids
            .iter()
            .map(|id| {
                let hit = seen.iter().find(|(title, _)| {
                    let rest = title.strip_prefix("Exercise ").unwrap_or("");
                    rest.strip_prefix(id)
                        .is_some_and(|r| r.is_empty() || r.starts_with([' ', ':']))
                });
                Row {
                    id: (*id).to_owned(),
                    title: hit.map(|(t, _)| t.clone()),
                    status: hit.map(|(_, s)| *s),
                }
            })
            .collect();
        Progress {
            lab: lab.to_owned(),
            rows,
        }
    }

    /// How many exercises passed.
    pub fn passed(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.status == Some(Status::Passed))
            .count()
    }

    fn label(status: Option<Status>) -> &'static str {
        match status {
            Some(Status::Passed) => "✅ done",
            Some(Status::Failed) => "❌ not passing yet — see its check's table and hint",
            Some(Status::NotDone) => "⏳ still a todo!()",
            None => "· its check has not run in this kernel",
        }
    }

    /// The headline: `Lab 1: 2 of 3 exercises done`.
    pub fn headline(&self) -> String {
        let n = self.rows.len();
        let done = self.passed();
        let end = if done == n {
            " — all done".to_owned()
        } else {
            String::new()
        };
        format!("{}: {done} of {n} exercises done{end}", self.lab)
    }

    /// evcxr's rich display: an HTML table, plus the plain text.
    pub fn evcxr_display(&self) {
        let mut html = format!(
            "<div><p><b>{}</b></p><table>",
            super::escape(&self.headline())
        );
        for r in &self.rows {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                super::escape(&r.id),
                super::escape(r.title.as_deref().unwrap_or("")),
                super::escape(Self::label(r.status))
            ));
        }
        html.push_str("</table></div>");
        super::show_in_notebook(&self.to_string(), &html);
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        for r in &self.rows {
            let name = r
                .title
                .as_deref()
                .map_or_else(|| format!("Exercise {}", r.id), str::to_owned);
            writeln!(f, "  {name}: {}", Self::label(r.status))?;
        }
        if self.rows.iter().any(|r| r.status.is_none()) {
            writeln!(
                f,
                "  (a kernel restart forgets every result: run the check cells again)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Checker;

    #[test]
    fn progress_lists_every_exercise_with_its_latest_result() {
        let mut c = Checker::new("Exercise 9.1 — one", "");
        c.case("a", 1, 1, true);
        c.finish();
        let mut c = Checker::new("Exercise 9.2 — two", "");
        c.case("a", 1, 2, false);
        c.finish();
        let p = Progress::of("Lab 9", &["9.1", "9.2", "9.3"]);
        assert_eq!(p.passed(), 1);
        let text = p.to_string();
        assert!(text.starts_with("Lab 9: 1 of 3 exercises done\n"), "{text}");
        assert!(text.contains("Exercise 9.1 — one: ✅ done"), "{text}");
        assert!(
            text.contains("Exercise 9.2 — two: ❌ not passing yet"),
            "{text}"
        );
        assert!(
            text.contains("Exercise 9.3: · its check has not run"),
            "{text}"
        );
        // The same exercise checked again: the latest result counts.
        let mut c = Checker::new("Exercise 9.2 — two", "");
        c.case("a", 2, 2, true);
        c.finish();
        assert_eq!(Progress::of("Lab 9", &["9.1", "9.2", "9.3"]).passed(), 2);
        // 9.1 is not 9.10.
        let mut c = Checker::new("Exercise 9.10 — ten", "");
        c.case("a", 1, 1, true);
        c.finish();
        assert_eq!(
            Progress::of("Lab 9", &["9.1"]).rows[0].title.as_deref(),
            Some("Exercise 9.1 — one")
        );
        // No result marker in the table: a notebook runner counting checks must not count it.
        for status in [Status::Passed, Status::Failed, Status::NotDone] {
            assert!(!text.contains(status.marker()), "{text}");
        }
    }
}
