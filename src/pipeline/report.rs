//! The loop's before/after table.

use serde::Serialize;
use std::fmt;

use super::data::RunData;
use super::{Evaluation, LoopError};
use crate::feedback::Stats;
use crate::losses::KtoConfig;

/// One method's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodRow {
    /// The method.
    pub method: String,
    /// What it trained on.
    pub data: String,
    /// λD, λU used (KTO rows).
    pub weights: Option<(f32, f32)>,
    /// Sampled answers on every prompt.
    pub all_prompts: Evaluation,
    /// Sampled answers on the training prompts (the ones the feedback came from).
    pub train_prompts: Evaluation,
    /// Sampled answers on the held-out prompts only.
    pub held_out: Evaluation,
}

/// The loop's result table: one row per model: SFT, KTO, KTO's later rounds, DPO, imbalanced KTO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoopReport {
    /// The judged feedback the runs trained on.
    pub feedback: Stats,
    /// The feedback left after dropping 90% of the thumbs up.
    pub imbalanced_feedback: Stats,
    /// The judged samples of KTO's later feedback rounds (round 2 first).
    pub later_feedback: Vec<Stats>,
    /// DPO pairs built from the same samples.
    pub dpo_pairs: usize,
    /// Rows.
    pub rows: Vec<MethodRow>,
}

/// A row before the report adds up its evaluations.
pub(super) struct Row {
    method: String,
    data: String,
    weights: Option<KtoConfig>,
    seen: Evaluation,
    held_out: Evaluation,
}

impl Row {
    pub(super) fn new(
        method: impl Into<String>,
        data: impl Into<String>,
        weights: Option<KtoConfig>,
        (seen, held_out): (Evaluation, Evaluation),
    ) -> Self {
        Row {
            method: method.into(),
            data: data.into(),
            weights,
            seen,
            held_out,
        }
    }
}

/// The loop's table from the models' evaluations, in the loop's order: SFT, KTO, KTO's later
/// rounds (their feedback counts and class weights given), DPO, imbalanced KTO.
pub(super) fn loop_report(
    data: &RunData,
    later_feedback: &[Stats],
    later_weights: &[KtoConfig],
    evaluations: Vec<(Evaluation, Evaluation)>,
) -> Result<LoopReport, LoopError> {
    let mut evaluations = evaluations.into_iter();
    let mut next = || evaluations.next().ok_or_else(super::runs::lost);
    let mut rows = vec![
        Row::new("SFT (reference)", "—", None, next()?),
        Row::new("KTO", "thumbs up/down", Some(data.kto_weights), next()?),
    ];
    for (i, weights) in later_weights.iter().enumerate() {
        rows.push(Row::new(
            format!("KTO, round {}", i + 2),
            format!("+ thumbs on round {}'s own samples", i + 1),
            Some(*weights),
            next()?,
        ));
    }
    rows.push(Row::new(
        "DPO",
        "pairs from the same samples",
        None,
        next()?,
    ));
    rows.push(Row::new(
        "KTO, 90% of thumbs-up dropped",
        "imbalanced thumbs",
        Some(data.imbalanced_weights),
        next()?,
    ));
    Ok(LoopReport::new(
        &data.stats,
        &data.imbalanced_stats,
        later_feedback.to_vec(),
        data.pairs.len(),
        rows,
    ))
}

impl LoopReport {
    pub(super) fn new(
        feedback: &Stats,
        imbalanced: &Stats,
        later_feedback: Vec<Stats>,
        dpo_pairs: usize,
        rows: Vec<Row>,
    ) -> Self {
        LoopReport {
            feedback: *feedback,
            imbalanced_feedback: *imbalanced,
            later_feedback,
            dpo_pairs,
            rows: rows
                .into_iter()
                .map(|r| MethodRow {
                    method: r.method,
                    data: r.data,
                    weights: r
                        .weights
                        .map(|w| (w.desirable_weight, w.undesirable_weight)),
                    all_prompts: r.seen.combine(&r.held_out),
                    train_prompts: r.seen,
                    held_out: r.held_out,
                })
                .collect(),
        }
    }

    /// The table as Markdown (for `report.md` and the terminal).
    pub fn markdown(&self) -> String {
        let header = [
            "method",
            "trained on",
            "λD, λU",
            "desirable rate: all prompts",
            "training prompts",
            "held-out prompts",
            "KL to reference",
        ];
        let rows = self.rows.iter().map(|r| {
            vec![
                r.method.clone(),
                r.data.to_string(),
                r.weights
                    .map_or("—".to_string(), |(d, u)| format!("{d:.2}, {u:.2}")),
                r.all_prompts.desirable_percent(),
                r.train_prompts.desirable_percent(),
                r.held_out.desirable_percent(),
                format!("{:.3}", r.all_prompts.kl_to_reference),
            ]
        });
        crate::table::markdown(&header, rows)
    }
}

impl LoopReport {
    /// evcxr's display: the table as Markdown (rendered by Jupyter), and as plain text.
    pub fn evcxr_display(&self) {
        let md = self.markdown();
        println!("EVCXR_BEGIN_CONTENT text/plain\n{md}\nEVCXR_END_CONTENT");
        println!("EVCXR_BEGIN_CONTENT text/markdown\n{md}\nEVCXR_END_CONTENT");
    }
}

impl fmt::Display for LoopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.markdown())
    }
}
