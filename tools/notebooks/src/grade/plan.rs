//! What runs: the graded notebook's cells, built from the solution with the student's answers
//! in place (by id, metadata or position), the `:dep` line with the `exam` feature, and no
//! demonstration cell that nothing graded needs.

use super::*;

/// What a cell of the graded notebook is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    /// The `:dep` cell: no time limit (the first build takes minutes).
    Dep,
    /// A cell of the solution's: runs again after a kernel restart.
    Setup,
    /// The student's cell of an exercise.
    Answer(String),
    /// The check cell of an exercise: the judge runs its check while it serves.
    Check(String),
}

pub(super) struct PlanCell {
    pub(super) at: CellRef,
    pub(super) role: Role,
    pub(super) source: String,
}

/// `kto_lab::` and `checks::` at the start of a path become `::kto_lab::` and
/// `::kto_lab::checks::`, so that nothing the student defined can stand in for them.
pub(super) fn absolute_paths(source: &str) -> String {
    let re = regex::Regex::new(r"(^|[^\w:])(kto_lab::|checks::)").expect("valid regex");
    re.replace_all(source, |c: &regex::Captures| {
        let to = if &c[2] == "checks::" {
            "::kto_lab::checks::"
        } else {
            "::kto_lab::"
        };
        format!("{}{to}", &c[1])
    })
    .into_owned()
}

/// Relative `path = "…"` in a `:dep` line made absolute, relative to `dir`.
pub(super) fn absolute_dep(source: &str, dir: &Path) -> String {
    let re = regex::Regex::new(r#"path\s*=\s*"([^"]*)""#).expect("valid regex");
    re.replace_all(source, |c: &regex::Captures| {
        let p = Path::new(&c[1]);
        let abs = if p.is_absolute() {
            p.to_owned()
        } else {
            dir.join(p).canonicalize().unwrap_or_else(|_| dir.join(p))
        };
        format!("path = {:?}", abs.display().to_string())
    })
    .into_owned()
}

/// The cells to run, the exercises whose cell the submission lacks, and notes on how the
/// student's cells were found.
pub(super) type Plan = (Vec<PlanCell>, Vec<String>, Vec<String>);

pub(super) fn plan(
    solution: &Notebook,
    solution_path: &Path,
    submission: &Notebook,
) -> Result<Plan, GradeError> {
    let dir = solution_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()
        .map_err(|source| crate::Error::Io {
            path: solution_path.to_owned(),
            source,
        })?;
    let student = submission.code_cells();
    let solution_cells = solution.code_cells();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    let mut cells = Vec::new();
    for cell in solution.code_cells() {
        let meta = &cell.json()["metadata"]["kto_lab"];
        let source = cell.source();
        let (role, source) = if let Some(id) = meta["exercise"].as_str() {
            let theirs = students_cell(&student, &solution_cells, &cell, id, &mut notes);
            let source = match theirs {
                // A Rust statement first: evcxr takes `:command` and `!shell` lines only at the
                // start of a cell, so a student's `:dep` or `!rm` is a compile error, not a
                // command run by the grader (same line, so error positions stay the student's).
                Some(c) => format!("let _ = (); {}", c.source()),
                None => {
                    missing.push(id.to_owned());
                    strip_solutions(&source).map_err(|e| GradeError::Metadata {
                        path: solution_path.to_owned(),
                        message: format!("{}: {e:?}", cell.at()),
                    })?
                }
            };
            (Role::Answer(id.to_owned()), source)
        } else if let Some(id) = meta["check"].as_str() {
            // In the exam build the check call answers the judge's questions; its hidden-test
            // region is the judge's business (it runs the hidden cases itself).
            let shown = strip_hidden_tests(&source).unwrap_or(source);
            // A statement first: a cell starting with `:` (as `::kto_lab::…` does) would be
            // taken for a kernel command.
            let code = format!("let _ = (); {}", absolute_paths(shown.trim_end()));
            (Role::Check(id.to_owned()), code)
        } else if source.trim_start().starts_with(":dep") {
            (Role::Dep, exam_dep(&absolute_dep(&source, &dir)))
        } else if uses_answer_key(&source) {
            // A demonstration of the library's own answers (lab 1's loss table, lab 4's
            // advice): it cannot compile against the exam build, and nothing graded needs it.
            continue;
        } else {
            let shown = strip_hidden_tests(&source).unwrap_or(source);
            (Role::Setup, shown)
        };
        cells.push(PlanCell {
            at: cell.at().clone(),
            role,
            source,
        });
    }
    Ok((without_demo_cells(cells), missing, notes))
}

/// The student's cell for exercise `id` (the solution's cell `cell`): the last code cell with the
/// same id (a duplicated id is noted), else the last with the same `kto_lab.exercise` metadata,
/// else — when the submission has exactly the lab's code cells, as a notebook saved without
/// ids does — the one at the same position.
pub(super) fn students_cell<'a>(
    student: &'a [crate::notebook::Cell<'a>],
    solution_cells: &[crate::notebook::Cell<'_>],
    cell: &crate::notebook::Cell<'_>,
    id: &str,
    notes: &mut Vec<String>,
) -> Option<&'a crate::notebook::Cell<'a>> {
    if let Some(cell_id) = &cell.at().id {
        let same: Vec<_> = student
            .iter()
            .filter(|c| c.at().id.as_ref() == Some(cell_id))
            .collect();
        if same.len() > 1 {
            notes.push(format!(
                "exercise {id}: the cell id `{cell_id}` appears {} times; graded the last copy \
                 ({}), which the student's kernel ran last in notebook order",
                same.len(),
                same[same.len() - 1].at()
            ));
        }
        if let Some(last) = same.last() {
            return Some(last);
        }
    }
    let by_meta: Vec<_> = student
        .iter()
        .filter(|c| c.json()["metadata"]["kto_lab"]["exercise"].as_str() == Some(id))
        .collect();
    if let Some(last) = by_meta.last() {
        return Some(last);
    }
    let position = solution_cells.iter().position(|c| c.at() == cell.at())?;
    if student.len() == solution_cells.len() {
        notes.push(format!(
            "exercise {id}: no cell with its id or metadata; graded code cell {} by position \
             (the submission has the lab's cells)",
            position + 1
        ));
        return student.get(position);
    }
    None
}

/// Whether a solution cell calls one of the graded references, which the exam build hides
/// (`prospect::value(…)`, `record.to_training_line()`, `final_votes(…)` …).
pub(super) fn uses_answer_key(source: &str) -> bool {
    exam::ANSWER_KEY.iter().any(|key| {
        let parts: Vec<&str> = key.split("::").collect();
        let last = parts[parts.len() - 1];
        let qualified = parts[parts.len().saturating_sub(2)..].join("::");
        let method = format!(".{last}(");
        let distinctive =
            last.contains('_') && !["kto_loss", "kto_step", "parse_line"].contains(&last);
        source.contains(&qualified)
            || source.contains(&method)
            || (distinctive && source.contains(&format!("{last}(")))
    })
}

/// The `:dep` line of the library with the `exam` feature on: the graded references are
/// crate-private, and the check cells answer the judge (see the module's docs).
pub(super) fn exam_dep(source: &str) -> String {
    let re = regex::Regex::new(r"(?m)^(:dep\s+kto-lab\s*=\s*\{)(.*)\}\s*$").expect("valid regex");
    re.replace(source, |c: &regex::Captures| {
        format!(
            "{} {}, features = [\"exam\"] }}",
            &c[1],
            c[2].trim().trim_end_matches(',')
        )
    })
    .into_owned()
}

/// The plan without the solution's demonstration cells that nothing graded depends on.
///
/// Most of a lab's cells show something (a table, a chart, a training run) and define nothing
/// an exercise or a check uses; each costs a compile. Kept: the `:dep` cell, every cell that
/// declares an item (`use`, `fn`, `const`, `struct` …) or is a kernel command, every exercise
/// and check cell, and every cell that binds (`let`) a name a kept cell after it mentions,
/// the student's own code included — so an answer that reads a variable of the notebook's gets
/// the cells that make it. (A demo cell that only *changes* such a variable, without `let`, is
/// not kept; no check cell of ours reads a notebook variable.)
pub(super) fn without_demo_cells(cells: Vec<PlanCell>) -> Vec<PlanCell> {
    let item = regex::Regex::new(
        r"(?m)^\s*(?:pub(?:\([^)]*\))?\s+)?(?:use|fn|const|static|struct|enum|trait|type|impl|mod|macro_rules!|extern|#\[)",
    )
    .expect("valid regex");
    // The names a `let` binds: its pattern, up to a type annotation or the `=`.
    let binding = regex::Regex::new(r"\blet\s+([^=;:]*)").expect("valid regex");
    let word = regex::Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("valid regex");
    let words = |text: &str| -> std::collections::HashSet<String> {
        word.find_iter(text)
            .map(|m| m.as_str().to_owned())
            .collect()
    };
    let mut mentioned = std::collections::HashSet::new();
    let mut keep = vec![false; cells.len()];
    for (i, cell) in cells.iter().enumerate().rev() {
        let kept = match cell.role {
            Role::Setup => {
                item.is_match(&cell.source)
                    || cell.source.trim_start().starts_with(':')
                    || binding
                        .captures_iter(&cell.source)
                        .flat_map(|c| words(&c[1]))
                        .any(|w| w != "mut" && w != "ref" && mentioned.contains(&w))
            }
            _ => true,
        };
        if kept {
            mentioned.extend(words(&cell.source));
            keep[i] = true;
        }
    }
    cells
        .into_iter()
        .zip(keep)
        .filter_map(|(cell, kept)| kept.then_some(cell))
        .collect()
}
