//! KTO as the paper (Ethayarajh et al. 2024) and TRL's `KTOTrainer` compute it.
//!
//! For a prompt x and completion y with label desirable/undesirable:
//!
//! ```text
//! r   = log πθ(y|x) − log πref(y|x)                  the implicit reward
//! z0  = max(0, mean_j [log πθ(y_j'|x_j) − log πref(y_j'|x_j)])
//!                                                    reference point, from mismatched pairs,
//!                                                    no gradient
//! loss(desirable)   = λD · (1 − σ(β (r − z0)))
//! loss(undesirable) = λU · (1 − σ(β (z0 − r)))
//! loss = mean over the batch of the weighted per-example losses
//! ```
//!
//! Why mismatched pairs? z0 estimates KL(πθ‖πref): how far the policy has drifted *in general*.
//! Pairing each prompt with another example's completion (x_i, y_(i+1 mod n)) gives completions
//! that are neither good nor bad answers *to that prompt*, so their log-ratio measures drift, not
//! quality. Why clamp? A KL divergence is never negative; a negative batch estimate is noise.
//! Why 1 − σ instead of −log σ? It saturates: an example the model already gets right stops
//! pulling on it, which is the "diminishing sensitivity" of prospect theory.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use super::error::{check_finite, check_positive, LossError};
use super::ops::{host, masked_mean, per_label, unpaired_inputs};
use super::{Batch, Scalar};

/// KTO's hyper-parameters, named as in TRL's `KTOConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KtoConfig {
    /// β: how sharply the loss reacts to the reward; also scales the logged rewards. TRL's default 0.1.
    pub beta: f32,
    /// λD: weight of each desirable (thumbs-up) example's loss.
    pub desirable_weight: f32,
    /// λU: weight of each undesirable (thumbs-down) example's loss.
    pub undesirable_weight: f32,
}

impl Default for KtoConfig {
    fn default() -> Self {
        Self {
            beta: 0.1,
            desirable_weight: 1.0,
            undesirable_weight: 1.0,
        }
    }
}

impl KtoConfig {
    /// Checks β and the weights are finite and positive.
    pub fn validate(&self) -> Result<(), LossError> {
        check_positive("beta", self.beta)?;
        check_positive("desirable_weight", self.desirable_weight)?;
        check_positive("undesirable_weight", self.undesirable_weight)
    }
}

/// What TRL's `KTOTrainer` logs for a batch, under the same names when serialized.
///
/// A class absent from the batch has `None` (JSON `null`) for its means, as TRL logs NaN.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KtoMetrics {
    /// The loss value.
    pub loss: f32,
    /// The reference point z0 as used: the clamped KL estimate (always 0 for APO-zero).
    pub kl: f32,
    /// Mean β·r over desirable examples.
    #[serde(rename = "rewards/chosen")]
    pub rewards_chosen: Option<f32>,
    /// Mean β·r over undesirable examples.
    #[serde(rename = "rewards/rejected")]
    pub rewards_rejected: Option<f32>,
    /// `rewards/chosen − rewards/rejected`, when both classes are present.
    #[serde(rename = "rewards/margins")]
    pub rewards_margins: Option<f32>,
    /// Mean policy log-prob of desirable completions.
    #[serde(rename = "logps/chosen")]
    pub logps_chosen: Option<f32>,
    /// Mean policy log-prob of undesirable completions.
    #[serde(rename = "logps/rejected")]
    pub logps_rejected: Option<f32>,
    /// Number of desirable examples in the batch.
    #[serde(rename = "count/chosen")]
    pub count_chosen: usize,
    /// Number of undesirable examples in the batch.
    #[serde(rename = "count/rejected")]
    pub count_rejected: usize,
}

answer_key! {
    /// The reference point z0 = max(0, mean(policy − reference)) over the mismatched (KL) pairs.
    ///
    /// The two slices are log-probs of the *same* mismatched pairs under the policy and the reference.
    pub fn reference_point(
        kl_policy_logps: &[f32],
        kl_reference_logps: &[f32],
    ) -> Result<f32, LossError> {
        if kl_policy_logps.is_empty() {
            return Err(LossError::EmptyBatch {
                field: "kl_policy_logps",
            });
        }
        check_finite(
            "kl_policy_logps",
            kl_policy_logps,
            "kl_policy_logps",
            kl_policy_logps.len(),
        )?;
        check_finite(
            "kl_reference_logps",
            kl_reference_logps,
            "kl_policy_logps",
            kl_policy_logps.len(),
        )?;
        let sum: f64 = kl_policy_logps
            .iter()
            .zip(kl_reference_logps)
            .map(|(p, r)| (p - r) as f64)
            .sum();
        Ok(((sum / kl_policy_logps.len() as f64) as f32).max(0.0))
    }
}

answer_key! {
    /// The KTO loss (as in the paper, TRL's `loss_type="kto"`).
    ///
    /// - `policy_logps`: log πθ(y_i|x_i), carrying the gradient tape.
    /// - `reference_logps`: log πref(y_i|x_i).
    /// - `kl_policy_logps`, `kl_reference_logps`: log-probs of the mismatched pairs (x_i, y_(i+1 mod n))
    ///   under policy and reference; used without gradient, only to estimate z0.
    /// - `labels[i]`: `true` for thumbs up.
    ///
    /// A batch with one class only uses that class. An empty batch, lengths that don't line up,
    /// NaN/inf log-probs or a non-positive β/weight are errors.
    pub fn kto<D: Device<f32>, T: Tape<f32, D>>(
        policy_logps: Batch<D, T>,
        reference_logps: &Batch<D>,
        kl_policy_logps: &Batch<D>,
        kl_reference_logps: &Batch<D>,
        labels: &[bool],
        cfg: &KtoConfig,
    ) -> Result<(Scalar<D, T>, KtoMetrics), LossError> {
        let z0 = reference_point(&host(kl_policy_logps), &host(kl_reference_logps))?;
        unpaired_loss(policy_logps, reference_logps, labels, z0, cfg)
    }
}

/// TRL's `loss_type="apo_zero_unpaired"`: KTO with the reference point fixed at z0 = 0.
///
/// Desirable: 1 − σ(β r) (push the likelihood up); undesirable: σ(β r) = 1 − σ(−β r) (push it down).
/// No mismatched pairs are needed, so a step costs one reference forward less.
pub fn apo_zero_unpaired<D: Device<f32>, T: Tape<f32, D>>(
    policy_logps: Batch<D, T>,
    reference_logps: &Batch<D>,
    labels: &[bool],
    cfg: &KtoConfig,
) -> Result<(Scalar<D, T>, KtoMetrics), LossError> {
    unpaired_loss(policy_logps, reference_logps, labels, 0.0, cfg)
}

/// The shared body of KTO and APO-zero: `mean_i λ_i (1 − σ(s_i β (r_i − z0)))`, s_i = ±1 by label.
fn unpaired_loss<D: Device<f32>, T: Tape<f32, D>>(
    policy_logps: Batch<D, T>,
    reference_logps: &Batch<D>,
    labels: &[bool],
    z0: f32,
    cfg: &KtoConfig,
) -> Result<(Scalar<D, T>, KtoMetrics), LossError> {
    let (policy, reference) = unpaired_inputs(&policy_logps, reference_logps, labels, cfg)?;

    // Per-example sign and weight: desirable examples want r above z0, undesirable below.
    let dev = policy_logps.device().clone();
    let signed_beta = per_label(&dev, labels, cfg.beta, -cfg.beta);
    let weight = per_label(&dev, labels, cfg.desirable_weight, cfg.undesirable_weight);

    // β(r − z0) for desirable, β(z0 − r) for undesirable.
    let logits = ((policy_logps - reference_logps.clone()) - z0) * signed_beta;
    // 1 − σ(logits), weighted; the mean over all n is TRL's mean over cat(chosen, rejected).
    let per_example = (logits.sigmoid().negate() + 1.0) * weight;
    let loss = per_example.mean();

    let r: Vec<f32> = policy.iter().zip(&reference).map(|(p, q)| p - q).collect();
    let beta_r: Vec<f32> = r.iter().map(|x| cfg.beta * x).collect();
    let rewards_chosen = masked_mean(&beta_r, |i| labels[i]);
    let rewards_rejected = masked_mean(&beta_r, |i| !labels[i]);
    let metrics = KtoMetrics {
        loss: loss.as_vec()[0],
        kl: z0,
        rewards_chosen,
        rewards_rejected,
        rewards_margins: rewards_chosen.zip(rewards_rejected).map(|(c, r)| c - r),
        logps_chosen: masked_mean(&policy, |i| labels[i]),
        logps_rejected: masked_mean(&policy, |i| !labels[i]),
        count_chosen: labels.iter().filter(|&&l| l).count(),
        count_rejected: labels.iter().filter(|&&l| !l).count(),
    };
    Ok((loss, metrics))
}
