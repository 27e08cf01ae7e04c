//! The simplified KTO of the seed notebook (lab 1, exercise 1) — learn this one first.
//!
//! ```text
//! r  = log πθ(y|x) − log πref(y|x)
//! b  = mean of r over the batch, no gradient     (a rough "how far have we drifted")
//! L_D = mean over desirable   of −log σ( β (r − b))
//! L_U = mean over undesirable of −log σ(−β (r − b))
//! loss = λD · L_D + λU · L_U                      (an absent class contributes 0)
//! ```
//!
//! How it differs from [`super::kto()`]: the baseline comes from the matched examples themselves
//! (so good and bad answers pull it around), it is not clamped at 0, each class is averaged on
//! its own before weighting, and −log σ never saturates — a confidently right example keeps
//! pulling. Lab 1 measures those differences.

use dfdx::prelude::*;
use serde::Serialize;

use super::error::LossError;
use super::kto::KtoConfig;
use super::ops::{log_sigmoid, masked_mean, per_label, unpaired_inputs};
use super::{Batch, Scalar};

/// The seed notebook's metrics for [`kto_batch_mean()`]. `None` (JSON `null`) for an absent class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchMeanMetrics {
    /// λD·L_D + λU·L_U.
    pub loss: f32,
    /// L_D: mean −log σ(β(r − b)) over desirable examples.
    pub desirable_loss: Option<f32>,
    /// L_U: mean −log σ(−β(r − b)) over undesirable examples.
    pub undesirable_loss: Option<f32>,
    /// b: the batch mean of the log-ratios (may be negative).
    pub kl_baseline: f32,
    /// Fraction of desirable examples with r > b.
    pub desirable_accuracy: Option<f32>,
    /// Fraction of undesirable examples with r < b.
    pub undesirable_accuracy: Option<f32>,
}

answer_key! {
    /// The seed's simplified KTO loss. Same inputs and errors as [`super::kto()`], minus the
    /// mismatched pairs.
    pub fn kto_batch_mean<D: Device<f32>, T: Tape<f32, D>>(
        policy_logps: Batch<D, T>,
        reference_logps: &Batch<D>,
        labels: &[bool],
        cfg: &KtoConfig,
    ) -> Result<(Scalar<D, T>, BatchMeanMetrics), LossError> {
        let (policy, reference) = unpaired_inputs(&policy_logps, reference_logps, labels, cfg)?;
        let n = labels.len();

        let r: Vec<f32> = policy.iter().zip(&reference).map(|(p, q)| p - q).collect();
        let baseline = (r.iter().map(|&x| x as f64).sum::<f64>() / n as f64) as f32;
        let n_good = labels.iter().filter(|&&l| l).count();
        let n_bad = n - n_good;

        // Each example's weight folds in its class mean: λD/nD or λU/nU, so a plain sum gives
        // λD·L_D + λU·L_U in one expression.
        let dev = policy_logps.device().clone();
        let signed_beta = per_label(&dev, labels, cfg.beta, -cfg.beta);
        let weight = per_label(
            &dev,
            labels,
            cfg.desirable_weight / n_good as f32,
            cfg.undesirable_weight / n_bad as f32,
        );

        let logits = ((policy_logps - reference_logps.clone()) - baseline) * signed_beta;
        let per_example = log_sigmoid(logits).negate();
        let per_values = per_example.retaped::<NoneTape>().as_vec();
        let loss = (per_example * weight).sum();

        // "Right side of the baseline": r > b for a thumbs up, r < b for a thumbs down.
        let accuracy = |good: bool| {
            let right: Vec<f32> = r
                .iter()
                .map(|&x| f32::from(u8::from(if good { x > baseline } else { x < baseline })))
                .collect();
            masked_mean(&right, |i| labels[i] == good)
        };
        let metrics = BatchMeanMetrics {
            loss: loss.as_vec()[0],
            desirable_loss: masked_mean(&per_values, |i| labels[i]),
            undesirable_loss: masked_mean(&per_values, |i| !labels[i]),
            kl_baseline: baseline,
            desirable_accuracy: accuracy(true),
            undesirable_accuracy: accuracy(false),
        };
        Ok((loss, metrics))
    }
}
