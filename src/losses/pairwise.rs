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

answer_key! {
    /// DPO's sigmoid loss on `n` pairs, in TRL's concatenated layout: entries `0..n` of each input
    /// are the chosen completions, entries `n..2n` the rejected ones, pair i = (i, n + i). One
    /// tensor (one forward pass over 2n rows) carries the gradient tape for both sides.
    pub fn dpo<D: Device<f32>, T: Tape<f32, D>>(
        policy_logps: Batch<D, T>,
        reference_logps: &Batch<D>,
        beta: f32,
    ) -> Result<(Scalar<D, T>, DpoMetrics), LossError> {
        check_positive("beta", beta)?;
        let policy = host(&policy_logps);
        let reference = host(reference_logps);
        if policy.is_empty() {
            return Err(LossError::EmptyBatch {
                field: "policy_logps",
            });
        }
        if !policy.len().is_multiple_of(2) {
            return Err(LossError::LengthMismatch {
                field: "policy_logps",
                like: "2 × pairs (chosen then rejected)",
                expected: policy.len() + 1,
                got: policy.len(),
            });
        }
        let n = policy.len() / 2;
        check_finite("policy_logps", &policy, "policy_logps", 2 * n)?;
        check_finite("reference_logps", &reference, "policy_logps", 2 * n)?;
        let (pc, pr) = policy.split_at(n);
        let (rc, rr) = reference.split_at(n);

        // Row 0 of the (2, n) view holds the chosen log-ratios, row 1 the rejected ones:
        // weighting them +β and −β and summing over rows gives β[(πc − rc) − (πr − rr)] per pair.
        let dev = policy_logps.device().clone();
        let mut signed_beta = vec![beta; n];
        signed_beta.extend(std::iter::repeat_n(-beta, n));
        let signed_beta = dev.tensor_from_vec(signed_beta, (Const::<2>, n));
        let ratios = (policy_logps - reference_logps.clone()).reshape_like(&(Const::<2>, n));
        let logits = (ratios * signed_beta).sum::<(usize,), Axis<0>>();
        let loss = log_sigmoid(logits).negate().mean();

        let chosen: Vec<f32> = pc.iter().zip(rc).map(|(p, r)| beta * (p - r)).collect();
        let rejected: Vec<f32> = pr.iter().zip(rr).map(|(p, r)| beta * (p - r)).collect();
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
            logps_chosen: mean(pc),
            logps_rejected: mean(pr),
        };
        Ok((loss, metrics))
    }
}
