//! The losses on plain slices: no dfdx types in, none out.
//!
//! For notebooks, the CLI and other programs that hold log-probs as numbers. Each function runs
//! the tensor version on the CPU (so there is one implementation of each loss) and returns the
//! loss, its metrics and the gradient of the loss with respect to the policy log-probs — the
//! direction each example is pushed: negative means "make this completion more likely".

use dfdx::prelude::*;
use serde::Serialize;

use super::{BatchMeanMetrics, DpoMetrics, KtoConfig, KtoMetrics, LossError};

/// An unpaired batch: one completion per example with a thumbs up (`true`) or down.
#[derive(Debug, Clone, Copy)]
pub struct UnpairedBatch<'a> {
    /// log πθ(y_i|x_i), summed over completion tokens.
    pub policy_logps: &'a [f32],
    /// log πref(y_i|x_i).
    pub reference_logps: &'a [f32],
    /// `true` = desirable.
    pub labels: &'a [bool],
    /// log πθ of the mismatched pairs (x_i, y_(i+1 mod n)); only KTO uses them.
    pub kl_policy_logps: &'a [f32],
    /// log πref of the mismatched pairs.
    pub kl_reference_logps: &'a [f32],
}

/// A loss value with its metrics and gradient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossOutput<M> {
    /// The metrics (they include the loss).
    pub metrics: M,
    /// ∂loss/∂(policy log-prob) per example.
    pub grad_policy_logps: Vec<f32>,
}

/// A DPO loss value with its metrics and the gradients for both sides of each pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpoOutput {
    /// The metrics (they include the loss).
    pub metrics: DpoMetrics,
    /// ∂loss/∂(policy log-prob of the chosen completion).
    pub grad_policy_chosen_logps: Vec<f32>,
    /// ∂loss/∂(policy log-prob of the rejected completion).
    pub grad_policy_rejected_logps: Vec<f32>,
}

fn batch(dev: &Cpu, values: &[f32]) -> Tensor<(usize,), f32, Cpu> {
    dev.tensor_from_vec(values.to_vec(), (values.len(),))
}

/// The gradient of `t`; an empty batch never reaches `backward` (the losses reject it first).
fn grad(grads: &Gradients<f32, Cpu>, t: &Tensor<(usize,), f32, Cpu>) -> Vec<f32> {
    grads.get(t).as_vec()
}

type Cpu1 = Tensor<(usize,), f32, Cpu>;
type Traced = Tensor<(usize,), f32, Cpu, OwnedTape<f32, Cpu>>;
type LossAndMetrics<M> = (Tensor<(), f32, Cpu, OwnedTape<f32, Cpu>>, M);

/// Runs an unpaired tensor loss on the batch's slices and reads back ∂loss/∂policy.
fn unpaired<M>(
    b: &UnpairedBatch,
    loss_fn: impl FnOnce(&Cpu, Traced, &Cpu1) -> Result<LossAndMetrics<M>, LossError>,
) -> Result<LossOutput<M>, LossError> {
    let dev = Cpu::default();
    let policy = batch(&dev, b.policy_logps);
    let reference = batch(&dev, b.reference_logps);
    let (loss, metrics) = loss_fn(&dev, policy.leaky_trace(), &reference)?;
    let grads = loss.backward();
    Ok(LossOutput {
        metrics,
        grad_policy_logps: grad(&grads, &policy),
    })
}

answer_key! {
    /// [`super::kto()`] on slices.
    pub fn kto(b: &UnpairedBatch, cfg: &KtoConfig) -> Result<LossOutput<KtoMetrics>, LossError> {
        unpaired(b, |dev, policy, reference| {
            let kl_policy = batch(dev, b.kl_policy_logps);
            let kl_reference = batch(dev, b.kl_reference_logps);
            super::kto(policy, reference, &kl_policy, &kl_reference, b.labels, cfg)
        })
    }
}

/// [`super::apo_zero_unpaired()`] on slices (the KL fields of `b` are ignored).
pub fn apo_zero_unpaired(
    b: &UnpairedBatch,
    cfg: &KtoConfig,
) -> Result<LossOutput<KtoMetrics>, LossError> {
    unpaired(b, |_, policy, reference| {
        super::apo_zero_unpaired(policy, reference, b.labels, cfg)
    })
}

answer_key! {
    /// [`super::kto_batch_mean()`] on slices (the KL fields of `b` are ignored).
    pub fn kto_batch_mean(
        b: &UnpairedBatch,
        cfg: &KtoConfig,
    ) -> Result<LossOutput<BatchMeanMetrics>, LossError> {
        unpaired(b, |_, policy, reference| {
            super::kto_batch_mean(policy, reference, b.labels, cfg)
        })
    }
}

answer_key! {
    /// [`super::dpo()`] on slices.
    pub fn dpo(
        policy_chosen_logps: &[f32],
        policy_rejected_logps: &[f32],
        reference_chosen_logps: &[f32],
        reference_rejected_logps: &[f32],
        beta: f32,
    ) -> Result<DpoOutput, LossError> {
        let dev = Cpu::default();
        let policy: Vec<f32> = [policy_chosen_logps, policy_rejected_logps].concat();
        let reference: Vec<f32> = [reference_chosen_logps, reference_rejected_logps].concat();
        if policy_chosen_logps.len() != policy_rejected_logps.len() {
            return Err(LossError::LengthMismatch {
                field: "policy_rejected_logps",
                like: "policy_chosen_logps",
                expected: policy_chosen_logps.len(),
                got: policy_rejected_logps.len(),
            });
        }
        if reference_chosen_logps.len() != reference_rejected_logps.len()
            || reference.len() != policy.len()
        {
            let (field, got) = if reference_chosen_logps.len() != policy_chosen_logps.len() {
                ("reference_chosen_logps", reference_chosen_logps.len())
            } else {
                ("reference_rejected_logps", reference_rejected_logps.len())
            };
            return Err(LossError::LengthMismatch {
                field,
                like: "policy_chosen_logps",
                expected: policy_chosen_logps.len(),
                got,
            });
        }
        let n = policy_chosen_logps.len();
        let traced = batch(&dev, &policy);
        let (loss, metrics) = super::dpo(traced.leaky_trace(), &batch(&dev, &reference), beta)
            .map_err(|e| name_side(e, n))?;
        let grad = if n == 0 {
            Vec::new()
        } else {
            loss.backward().get(&traced).as_vec()
        };
        let (chosen, rejected) = grad.split_at(n);
        Ok(DpoOutput {
            metrics,
            grad_policy_chosen_logps: chosen.to_vec(),
            grad_policy_rejected_logps: rejected.to_vec(),
        })
    }
}

/// Maps an error on the concatenated DPO input back to the slice the caller passed.
fn name_side(e: LossError, n: usize) -> LossError {
    match e {
        LossError::NonFinite {
            field,
            index,
            value,
        } => {
            let side = if index < n { "chosen" } else { "rejected" };
            let field = match (field, side) {
                ("policy_logps", "chosen") => "policy_chosen_logps",
                ("policy_logps", _) => "policy_rejected_logps",
                (_, "chosen") => "reference_chosen_logps",
                _ => "reference_rejected_logps",
            };
            LossError::NonFinite {
                field,
                index: index % n.max(1),
                value,
            }
        }
        LossError::EmptyBatch { .. } => LossError::EmptyBatch {
            field: "policy_chosen_logps",
        },
        other => other,
    }
}
