//! The loop's before/after table.

use serde::Serialize;
use std::fmt::{self, Write as _};

use super::Evaluation;
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

/// The loop's result table: one row per model, SFT first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoopReport {
    /// The judged feedback the runs trained on.
    pub feedback: Stats,
    /// The feedback left after dropping 90% of the thumbs up.
    pub imbalanced_feedback: Stats,
    /// DPO pairs built from the same samples.
    pub dpo_pairs: usize,
    /// Rows.
    pub rows: Vec<MethodRow>,
}

impl LoopReport {
    pub(super) fn new(
        feedback: &Stats,
        imbalanced: &Stats,
        dpo_pairs: usize,
        rows: [(&str, &str, KtoConfig, (Evaluation, Evaluation)); 4],
    ) -> Self {
        LoopReport {
            feedback: *feedback,
            imbalanced_feedback: *imbalanced,
            dpo_pairs,
            rows: rows
                .into_iter()
                .enumerate()
                .map(|(i, (method, data, w, (seen, held)))| MethodRow {
                    method: method.into(),
                    data: data.into(),
                    weights: (i == 1 || i == 3)
                        .then_some((w.desirable_weight, w.undesirable_weight)),
                    all_prompts: seen.combine(&held),
                    train_prompts: seen,
                    held_out: held,
                })
                .collect(),
        }
    }

    /// The table as Markdown (for `report.md` and the terminal).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| method | trained on | λD, λU | desirable rate: all prompts | training prompts | held-out prompts | KL to reference |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let pct = |e: &Evaluation| {
                e.judged
                    .desirable_rate
                    .map_or("—".to_string(), |x| format!("{:.1}%", 100.0 * x))
            };
            let w = r
                .weights
                .map_or("—".to_string(), |(d, u)| format!("{d:.2}, {u:.2}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {:.3} |",
                r.method,
                r.data,
                w,
                pct(&r.all_prompts),
                pct(&r.train_prompts),
                pct(&r.held_out),
                r.all_prompts.kl_to_reference
            );
        }
        s
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
