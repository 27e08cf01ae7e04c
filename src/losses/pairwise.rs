//! DPO's sigmoid loss on preference *pairs* — what KTO is compared against in lab 5.
//!
//! ```text
//! logits = β [(log πθ(y_w|x) − log πref(y_w|x)) − (log πθ(y_l|x) − log πref(y_l|x))]
//! loss   = mean −log σ(logits)
//! ```
//!
//! DPO needs, for every prompt, a chosen completion y_w *and* a rejected one y_l; KTO needs only
//! one completion and a thumbs up or down. This is TRL's `DPOTrainer` with `loss_type="sigmoid"`
//! and no label smoothing.

use dfdx::prelude::*;
use serde::Serialize;

use super::error::{check_finite, check_positive, LossError};
use super::ops::{host, log_sigmoid, masked_mean};
use super::{Batch, Scalar};

/// What TRL's `DPOTrainer` logs, under the same names when serialized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpoMetrics {
    /// The loss value.
    pub loss: f32,
    /// Mean β·(log πθ − log πref) of the chosen completions.
    #[serde(rename = "rewards/chosen")]
    pub rewards_chosen: f32,
    /// Mean β·(log πθ − log πref) of the rejected completions.
    #[serde(rename = "rewards/rejected")]
    pub rewards_rejected: f32,
    /// Fraction of pairs whose chosen reward beats the rejected one.
    #[serde(rename = "rewards/accuracies")]
    pub rewards_accuracies: f32,
    /// Mean of chosen reward − rejected reward.
    #[serde(rename = "rewards/margins")]
    pub rewards_margins: f32,
    /// Mean policy log-prob of the chosen completions.
    #[serde(rename = "logps/chosen")]
    pub logps_chosen: f32,
    /// Mean policy log-prob of the rejected completions.
    #[serde(rename = "logps/rejected")]
    pub logps_rejected: f32,
}

/// DPO's sigmoid loss. `policy_chosen_logps[i]` and `policy_rejected_logps[i]` belong to the same
/// prompt; both carry the gradient tape.
pub fn dpo<D: Device<f32>, T: Tape<f32, D> + Merge<T>>(
    policy_chosen_logps: Batch<D, T>,
    policy_rejected_logps: Batch<D, T>,
    reference_chosen_logps: &Batch<D>,
    reference_rejected_logps: &Batch<D>,
    beta: f32,
) -> Result<(Scalar<D, T>, DpoMetrics), LossError> {
    check_positive("beta", beta)?;
    let pc = host(&policy_chosen_logps);
    let n = pc.len();
    if n == 0 {
        return Err(LossError::EmptyBatch {
            field: "policy_chosen_logps",
        });
    }
    let pr = host(&policy_rejected_logps);
    let rc = host(reference_chosen_logps);
    let rr = host(reference_rejected_logps);
    check_finite("policy_chosen_logps", &pc, "policy_chosen_logps", n)?;
    check_finite("policy_rejected_logps", &pr, "policy_chosen_logps", n)?;
    check_finite("reference_chosen_logps", &rc, "policy_chosen_logps", n)?;
    check_finite("reference_rejected_logps", &rr, "policy_chosen_logps", n)?;

    let chosen_ratio = policy_chosen_logps - reference_chosen_logps.clone();
    let rejected_ratio = policy_rejected_logps - reference_rejected_logps.clone();
    let logits = (chosen_ratio - rejected_ratio) * beta;
    let loss = log_sigmoid(logits).negate().mean();

    let chosen: Vec<f32> = pc.iter().zip(&rc).map(|(p, r)| beta * (p - r)).collect();
    let rejected: Vec<f32> = pr.iter().zip(&rr).map(|(p, r)| beta * (p - r)).collect();
    let mean = |v: &[f32]| masked_mean(v, |_| true).unwrap_or(0.0);
    let margins: Vec<f32> = chosen.iter().zip(&rejected).map(|(c, r)| c - r).collect();
    let wins: Vec<f32> = margins
        .iter()
        .map(|&m| f32::from(u8::from(m > 0.0)))
        .collect();
    let metrics = DpoMetrics {
        loss: loss.as_vec()[0],
        rewards_chosen: mean(&chosen),
        rewards_rejected: mean(&rejected),
        rewards_accuracies: mean(&wins),
        rewards_margins: mean(&margins),
        logps_chosen: mean(&pc),
        logps_rejected: mean(&pr),
    };
    Ok((loss, metrics))
}
