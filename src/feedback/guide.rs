//! Lab 5: KTO or DPO? A printable guide, and [`analyze`], which reads a dataset and recommends one.
//!
//! * DPO learns from **pairs**: for one prompt, a chosen and a rejected completion.
//! * KTO learns from **single** completions marked desirable or undesirable — the thumbs up /
//!   thumbs down a product collects anyway.
//!
//! Paired data can always be turned into KTO data ([`unpair()`](super::unpair())); unpaired data
//! only pairs up where one prompt received both a thumbs up and a thumbs down.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::error::FeedbackError;
use super::imbalance::{advise, ImbalanceAdvice};
use super::jsonl::{parse_lines, read_file, TornTail};
use super::record::{describe, PairedRecord, Record};
use super::store::{one_class_warning, Stats};

/// The KTO-vs-DPO decision guide, ready to print, followed by one example line of each data
/// format.
pub const DECISION_GUIDE: &str = "\
╔══════════════════════════════════════════════════════════════════════╗
║                                                                      ║
║  KTO or DPO?  Choose from the feedback you have                      ║
╠══════════════════════════════════════════════════════════════════════╣
║                                                                      ║
║  Is your feedback PAIRED?                                            ║
║  (one prompt, two completions, one marked better)                    ║
║                                                                      ║
║    YES -----------------------> DPO                                  ║
║      learns from each comparison directly.                           ║
║      KTO works too after unpairing: each pair                        ║
║      becomes one thumbs-up and one thumbs-down row.                  ║
║                                                                      ║
║    NO, a thumbs up or down on ONE completion                         ║
║        -----------------------> KTO                                  ║
║      learns from each row on its own.                                ║
║                                                                      ║
║    SOME prompts got both a thumbs up and a                           ║
║    thumbs down ---------------> still KTO                            ║
║      those prompts could be paired for DPO, but                      ║
║      KTO keeps every row, paired or not.                             ║
║                                                                      ║
╠══════════════════════════════════════════════════════════════════════╣
║                                                                      ║
║  KTO fits when                                                       ║
║    + the signal is binary: good / bad                                ║
║    + feedback comes from real use, not a curated study               ║
║    + completions cannot be paired per prompt                         ║
║    + classes are imbalanced: weight them so that                     ║
║      λD·nD / (λU·nU) lies in [1, 4/3]                                ║
║                                                                      ║
║  DPO fits when                                                       ║
║    + you have A/B comparisons for the same prompt                    ║
║    + annotators ranked several completions per prompt                ║
║    + you want the sharpest preference signal per example             ║
║                                                                      ║
║  DPO needs BOTH signals, for the same prompt. KTO trains on          ║
║  either one alone, but one class alone is a weak signal:             ║
║  collect both if you can.                                            ║
║                                                                      ║
╚══════════════════════════════════════════════════════════════════════╝

Data formats: one JSON object per line (JSON Lines).

DPO, paired:
{\"prompt\": \"What is AI?\", \"chosen\": \"AI is the study of programs that learn and reason.\", \"rejected\": \"dunno\"}

KTO, unpaired (label true = thumbs up, false = thumbs down):
{\"prompt\": \"What is AI?\", \"completion\": \"AI is the study of programs that learn and reason.\", \"label\": true}
{\"prompt\": \"What is AI?\", \"completion\": \"dunno\", \"label\": false}

Both formats also take conversations instead of strings:
{\"prompt\": [{\"role\": \"user\", \"content\": \"What is AI?\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"dunno\"}], \"label\": false}
";

/// A preference-optimization method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    /// Direct Preference Optimization: learns from (chosen, rejected) pairs.
    #[serde(rename = "DPO")]
    Dpo,
    /// Kahneman–Tversky Optimization: learns from single thumbs-up / thumbs-down examples.
    #[serde(rename = "KTO")]
    Kto,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Dpo => "DPO",
            Method::Kto => "KTO",
        })
    }
}

/// The two row formats a dataset file can use (one per file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetFormat {
    /// `{"prompt", "chosen", "rejected"}` — DPO's format.
    Paired,
    /// `{"prompt", "completion", "label"}` — KTO's format.
    Unpaired,
}

impl DatasetFormat {
    fn article(self) -> &'static str {
        match self {
            DatasetFormat::Paired => "a paired (DPO) row {prompt, chosen, rejected}",
            DatasetFormat::Unpaired => "an unpaired (KTO) row {prompt, completion, label}",
        }
    }
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatasetFormat::Paired => "paired (prompt, chosen, rejected)",
            DatasetFormat::Unpaired => "unpaired (prompt, completion, label)",
        })
    }
}

/// What [`analyze`] found in a dataset, and what it recommends. `Display` prints a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuideReport {
    /// The file analysed, as given.
    pub path: PathBuf,
    /// Its row format.
    pub format: DatasetFormat,
    /// Rows read.
    pub rows: usize,
    /// Distinct prompts.
    pub prompts: usize,
    /// Desirable examples: rows labelled `true`, or for paired data the chosen completions.
    pub desirable: usize,
    /// Undesirable examples: rows labelled `false`, or for paired data the rejected completions.
    pub undesirable: usize,
    /// Unpaired data: prompts that received both a thumbs up and a thumbs down.
    pub prompts_with_both: usize,
    /// Unpaired data: the (chosen, rejected) pairs those prompts could form
    /// (every desirable completion against every undesirable one of the same prompt).
    pub possible_pairs: usize,
    /// The method to use.
    pub recommendation: Method,
    /// Why, in sentences.
    pub reasons: Vec<String>,
    /// Things to fix or keep in mind.
    pub warnings: Vec<String>,
    /// Unpaired data with both classes: the imbalance rule checked with TRL's default weights
    /// (λD = λU = 1).
    pub imbalance: Option<ImbalanceAdvice>,
    /// A torn last line that was skipped (the file is being written, or a write crashed).
    pub torn_tail: Option<TornTail>,
}

impl fmt::Display for GuideReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Dataset: {}", self.path.display())?;
        writeln!(
            f,
            "Format: {}, {} rows, {} distinct prompts",
            self.format, self.rows, self.prompts
        )?;
        match self.format {
            DatasetFormat::Unpaired => writeln!(
                f,
                "Feedback: {} desirable (thumbs up), {} undesirable (thumbs down)",
                self.desirable, self.undesirable
            )?,
            DatasetFormat::Paired => writeln!(
                f,
                "Feedback: {} chosen and {} rejected completions",
                self.desirable, self.undesirable
            )?,
        }
        writeln!(f, "Recommendation: {}", self.recommendation)?;
        writeln!(f, "Why:")?;
        for r in &self.reasons {
            writeln!(f, "  - {r}")?;
        }
        if !self.warnings.is_empty() {
            writeln!(f, "Warnings:")?;
            for w in &self.warnings {
                writeln!(f, "  - {w}")?;
            }
        }
        if let Some(a) = &self.imbalance {
            writeln!(f, "Imbalance, with TRL's default weights λD = λU = 1:")?;
            writeln!(f, "  {a}")?;
        }
        Ok(())
    }
}

/// Read a dataset (JSON Lines, all rows paired or all unpaired) and recommend DPO or KTO.
///
/// * paired rows → DPO (and KTO after unpairing);
/// * unpaired rows → KTO, noting how many prompts could be paired for DPO and whether the
///   classes need weighting ([`advise`]);
/// * one-class data → KTO with a warning: it trains, weakly; DPO cannot.
///
/// Errors name the file (and line): an empty file, a bad row, or a file mixing both formats.
/// A torn last line is skipped and reported, as in [`FeedbackStore::load`](super::FeedbackStore::load).
pub fn analyze(path: impl AsRef<Path>) -> Result<GuideReport, FeedbackError> {
    let path = path.as_ref();
    let data = read_file(path)?;
    let lines = parse_lines(path, &data, true)?;
    let Some((first_line, first_value)) = lines.rows.first() else {
        return Err(FeedbackError::EmptyFile {
            path: path.to_path_buf(),
        });
    };
    let format = detect(first_value, path, *first_line)?;
    let mut paired = Vec::new();
    let mut unpaired = Vec::new();
    for (line, value) in &lines.rows {
        let this = detect(value, path, *line)?;
        if this != format {
            return Err(FeedbackError::MixedFormats {
                path: path.to_path_buf(),
                line: *line,
                field: None,
                first_line: *first_line,
                expected: format.article().to_string(),
                found: this.article().to_string(),
            });
        }
        match format {
            DatasetFormat::Paired => {
                paired.push(PairedRecord::from_value(value).map_err(|p| p.at(path, *line))?)
            }
            DatasetFormat::Unpaired => {
                unpaired.push(Record::from_value(value).map_err(|p| p.at(path, *line))?)
            }
        }
    }
    let mut report = match format {
        DatasetFormat::Paired => analyze_paired(path, &paired),
        DatasetFormat::Unpaired => analyze_unpaired(path, &unpaired),
    };
    if let Some(t) = &lines.torn_tail {
        report.warnings.push(format!(
            "line {} is torn (no newline, not valid JSON: {} bytes) and was skipped",
            t.line, t.bytes
        ));
    }
    report.torn_tail = lines.torn_tail;
    Ok(report)
}

/// Which format a row is in, from its keys.
fn detect(value: &Value, path: &Path, line: usize) -> Result<DatasetFormat, FeedbackError> {
    let Some(obj) = value.as_object() else {
        return Err(FeedbackError::WrongType {
            path: path.to_path_buf(),
            line,
            field: None,
            expected: "a JSON object (an unpaired or a paired row)".into(),
            found: describe(value),
        });
    };
    let unpaired = obj.contains_key("completion") || obj.contains_key("label");
    let paired = obj.contains_key("chosen") || obj.contains_key("rejected");
    let message = match (unpaired, paired) {
        (true, false) => return Ok(DatasetFormat::Unpaired),
        (false, true) => return Ok(DatasetFormat::Paired),
        (true, true) => "mixes unpaired fields (completion, label) with paired fields (chosen, rejected) in one row",
        (false, false) => "neither an unpaired row {prompt, completion, label} nor a paired row {prompt, chosen, rejected}",
    };
    Err(FeedbackError::UnrecognizedRow {
        path: path.to_path_buf(),
        line,
        field: None,
        message: message.to_string(),
    })
}

fn analyze_paired(path: &Path, rows: &[PairedRecord]) -> GuideReport {
    let n = rows.len();
    let mut prompts = BTreeMap::<String, usize>::new();
    for r in rows {
        *prompts.entry(r.prompt.key()).or_default() += 1;
    }
    let mut reasons = vec![
        format!(
            "{n} paired rows (prompt, chosen, rejected): DPO learns from each comparison directly."
        ),
        format!(
            "KTO works too after unpairing (unpair_file): {} rows, {n} desirable and {n} undesirable, \
             balanced, so the default weights fit. Worth it if unpaired thumbs up/down feedback \
             will be added later.",
            2 * n
        ),
    ];
    if prompts.len() < n {
        reasons.push(format!(
            "{} distinct prompts for {n} pairs: several comparisons per prompt, which DPO uses well.",
            prompts.len()
        ));
    }
    let mut warnings = Vec::new();
    let same = rows.iter().filter(|r| r.chosen == r.rejected).count();
    if same > 0 {
        warnings.push(format!(
            "{same} rows have the same chosen and rejected completion: they teach nothing."
        ));
    }
    GuideReport {
        path: path.to_path_buf(),
        format: DatasetFormat::Paired,
        rows: n,
        prompts: prompts.len(),
        desirable: n,
        undesirable: n,
        prompts_with_both: 0,
        possible_pairs: 0,
        recommendation: Method::Dpo,
        reasons,
        warnings,
        imbalance: None,
        torn_tail: None,
    }
}

fn analyze_unpaired(path: &Path, rows: &[Record]) -> GuideReport {
    let n = rows.len();
    let stats = Stats::of(rows);
    // Per prompt: (desirable, undesirable) counts.
    let mut by_prompt = BTreeMap::<String, (usize, usize)>::new();
    // Per (prompt, completion): which labels it received.
    let mut by_answer = BTreeMap::<(String, String), (bool, bool)>::new();
    for r in rows {
        let counts = by_prompt.entry(r.prompt.key()).or_default();
        let seen = by_answer
            .entry((r.prompt.key(), r.completion.key()))
            .or_default();
        if r.label {
            counts.0 += 1;
            seen.0 = true;
        } else {
            counts.1 += 1;
            seen.1 = true;
        }
    }
    let both: Vec<(usize, usize)> = by_prompt
        .values()
        .copied()
        .filter(|&(d, u)| d > 0 && u > 0)
        .collect();
    let prompts_with_both = both.len();
    let possible_pairs: usize = both.iter().map(|&(d, u)| d * u).sum();
    let rows_in_pairs: usize = both.iter().map(|&(d, u)| d + u).sum();

    let mut reasons = vec![format!(
        "{n} unpaired rows, each a thumbs up or down on one completion: KTO learns from each \
         row on its own, while DPO needs a chosen and a rejected completion for the same prompt."
    )];
    let mut warnings = Vec::new();
    let mut imbalance = None;

    if let Some(w) = one_class_warning(&stats) {
        let class = if stats.undesirable == 0 {
            "thumbs up"
        } else {
            "thumbs down"
        };
        reasons.push(format!(
            "Every row is a {class}, so no pair can be formed: DPO cannot train; KTO can, \
             though one class is a weak signal."
        ));
        warnings.push(w);
    } else {
        if prompts_with_both > 0 {
            let several = if possible_pairs > prompts_with_both {
                " (some prompts have several completions, so more pairs than prompts)"
            } else {
                ""
            };
            let left_out = n - rows_in_pairs;
            let coverage = if left_out == 0 {
                format!("Every row could be paired, but KTO needs no pairing to use all {n}.")
            } else {
                format!("DPO would leave out the other {left_out} rows; KTO uses all {n}.")
            };
            reasons.push(format!(
                "{prompts_with_both} of {} prompts got both a thumbs up and a thumbs down: they \
                 could form up to {possible_pairs} (chosen, rejected) pairs for DPO{several}. \
                 {coverage}",
                by_prompt.len(),
            ));
        } else {
            reasons.push(
                "No prompt got both a thumbs up and a thumbs down, so no (chosen, rejected) \
                 pair can be formed: DPO is not an option without new data."
                    .to_string(),
            );
        }
        // Both counts are positive and the weights are valid, so advice exists.
        if let Ok(advice) = advise(stats.desirable, stats.undesirable, 1.0, 1.0) {
            if advice.in_range {
                reasons
                    .push("The classes are balanced enough for KTO's default weights.".to_string());
            } else {
                reasons.push(format!(
                    "The classes are imbalanced ({} desirable vs {} undesirable): KTO \
                     compensates with desirable_weight / undesirable_weight (see below); DPO \
                     has no such knob.",
                    stats.desirable, stats.undesirable
                ));
            }
            imbalance = Some(advice);
        }
    }
    let conflicting = by_answer.values().filter(|&&(up, down)| up && down).count();
    if conflicting > 0 {
        let noun = if conflicting == 1 {
            "completion"
        } else {
            "completions"
        };
        warnings.push(format!(
            "{conflicting} {noun} got both a thumbs up and a thumbs down for the same prompt: \
             conflicting feedback, check it."
        ));
    }

    GuideReport {
        path: path.to_path_buf(),
        format: DatasetFormat::Unpaired,
        rows: n,
        prompts: by_prompt.len(),
        desirable: stats.desirable,
        undesirable: stats.undesirable,
        prompts_with_both,
        possible_pairs,
        recommendation: Method::Kto,
        reasons,
        warnings,
        imbalance,
        torn_tail: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_box_lines_have_equal_width() {
        let widths: Vec<usize> = DECISION_GUIDE
            .lines()
            .filter(|l| l.starts_with(['║', '╔', '╠', '╚']))
            .map(|l| l.chars().count())
            .collect();
        assert!(widths.len() > 10);
        assert!(widths.iter().all(|&w| w == widths[0]), "{widths:?}");
    }

    #[test]
    fn guide_examples_parse() {
        let p = Path::new("DECISION_GUIDE");
        let examples: Vec<&str> = DECISION_GUIDE
            .lines()
            .filter(|l| l.starts_with('{'))
            .collect();
        assert_eq!(examples.len(), 4);
        assert!(PairedRecord::parse_line(examples[0], p, 1).is_ok());
        for (i, e) in examples[1..].iter().enumerate() {
            Record::parse_line(e, p, i + 2).unwrap();
        }
    }
}
