//! What one optimizer step computes, trainer by trainer: a batch in, its loss (with a gradient
//! tape) and its metrics out. Read [`KtoStep`] as the KTO step of TRL's `KTOTrainer`.
//!
//! A step can compute the loss of *some* of its rows ([`Step::part`]), as their share of the
//! batch-mean loss: the parts' losses add up to the batch's loss and their gradients to its
//! gradient. [`backward`] runs the whole batch as one part on one thread; the trainer's loop
//! uses [`super::parallel`] instead on the CPU, which runs two halves on two threads.

use dfdx::prelude::*;
use serde::Serialize;
use std::ops::Range;

use super::TrainError;
use crate::losses::{self, KtoConfig};
use crate::model::{device_err, tape_from, LanguageModel, TokenBatch};

/// A step's metrics, by TRL's names.
pub type Metrics = serde_json::Map<String, serde_json::Value>;

/// A (prompt, completion) row of token ids.
pub type Row = (Vec<u32>, Vec<u32>);

/// A scalar loss carrying the model's gradient tape.
pub type Loss<D> = Tensor<(), f32, D, OwnedTape<f32, D>>;

/// The loss of some of a step's rows.
pub struct Part<D: Device<f32>> {
    /// The rows' share of the batch-mean loss.
    pub loss: Loss<D>,
    /// One number per row (its log-prob), from which [`Step::metrics`] computes the metrics of
    /// the whole batch when it was split.
    pub values: Vec<f32>,
    /// The metrics of these rows (KTO: at the whole batch's z0): the step's metrics when the
    /// part is the whole batch.
    pub metrics: Metrics,
}

/// How much a step holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Rows in the batch (sequences, examples or pairs).
    pub rows: usize,
    /// Completion tokens the step scores (for tokens/s).
    pub tokens: usize,
}

/// One optimizer step of a trainer, its batch built.
pub trait Step<D: Device<f32>, M> {
    /// Its rows and the completion tokens it scores.
    fn size(&self) -> Size;
    /// The loss of rows `rows` under `model`, on `tape`.
    fn part(
        &self,
        model: &M,
        rows: Range<usize>,
        tape: OwnedTape<f32, D>,
    ) -> Result<Part<D>, TrainError>;
    /// The step's metrics from every row's [`Part::values`], in row order.
    fn metrics(&self, model: &M, values: &[f32]) -> Result<Metrics, TrainError>;
}

/// What a step hands the optimizer: the loss, the metrics and the gradients.
pub struct Outcome<D: Device<f32>> {
    /// The batch's loss.
    pub loss: f32,
    /// The batch's metrics.
    pub metrics: Metrics,
    /// The batch's gradient.
    pub grads: Gradients<f32, D>,
}

/// One step, plainly: the whole batch's loss with a tape on `grads` (zeroed), backpropagated.
pub fn backward<D: Device<f32>, M: LanguageModel<D>, S: Step<D, M>>(
    model: &M,
    step: &S,
    grads: Gradients<f32, D>,
) -> Result<Outcome<D>, TrainError> {
    let whole = step.part(
        model,
        0..step.size().rows,
        tape_from(&model.device(), grads),
    )?;
    Ok(Outcome {
        loss: whole.loss.as_vec()[0],
        metrics: whole.metrics,
        grads: whole.loss.backward(),
    })
}

pub(super) fn token_batch<D: Device<f32>, M: LanguageModel<D>>(
    model: &M,
    rows: &[Row],
    pad_id: u32,
) -> Result<TokenBatch, TrainError> {
    Ok(TokenBatch::new(rows, pad_id, model.max_seq())?)
}

/// A loss's metrics struct as a map, less the loss (the step record has its own field).
fn to_map<T: Serialize>(metrics: &T) -> Metrics {
    match serde_json::to_value(metrics) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("loss");
            m
        }
        _ => Metrics::new(),
    }
}

fn vector<D: Device<f32>>(
    dev: &D,
    values: Vec<f32>,
) -> Result<Tensor<(usize,), f32, D>, TrainError> {
    let n = values.len();
    dev.try_tensor_from_vec(values, (n,))
        .map_err(|e| device_err(e).into())
}

/// An SFT step: the mean NLL of the completion tokens (labels are ignored: SFT imitates
/// whatever it is shown — which is why lab 3's SFT model answers badly half the time).
pub struct SftStep {
    rows: Vec<Row>,
    pad_id: u32,
    size: Size,
}

impl SftStep {
    /// The step on `rows`, padded with `pad_id` to `model`'s length.
    pub fn new<D: Device<f32>, M: LanguageModel<D>>(
        model: &M,
        rows: Vec<Row>,
        pad_id: u32,
    ) -> Result<Self, TrainError> {
        let size = Size {
            rows: rows.len(),
            tokens: token_batch(model, &rows, pad_id)?.completion_tokens(),
        };
        Ok(SftStep { rows, pad_id, size })
    }
}

impl<D: Device<f32>, M: LanguageModel<D>> Step<D, M> for SftStep {
    fn size(&self) -> Size {
        self.size
    }

    /// The rows' mean NLL per token, weighted by their share of the batch's tokens.
    fn part(
        &self,
        model: &M,
        rows: Range<usize>,
        tape: OwnedTape<f32, D>,
    ) -> Result<Part<D>, TrainError> {
        let batch = token_batch(model, &self.rows[rows], self.pad_id)?;
        let share = batch.completion_tokens() as f32 / self.size.tokens as f32;
        let nll = model.token_nll(&batch, tape)?;
        Ok(Part {
            loss: nll.try_mul(share).map_err(device_err)?,
            values: Vec::new(),
            metrics: Metrics::new(),
        })
    }

    fn metrics(&self, _: &M, _: &[f32]) -> Result<Metrics, TrainError> {
        Ok(Metrics::new())
    }
}

/// A KTO batch as the trainer draws it.
pub struct KtoRows {
    /// The examples (x_i, y_i).
    pub rows: Vec<Row>,
    /// `true` = thumbs up.
    pub labels: Vec<bool>,
    /// log πref(y_i|x_i), computed once before training.
    pub reference: Vec<f32>,
    /// The mismatched pairs (x_i, y_(i+1 mod n)), for the reference point z0.
    pub mismatched: Vec<Row>,
}

/// A KTO step ([`losses::kto()`]) against a frozen reference, as TRL's `KTOTrainer` takes it.
pub struct KtoStep<D: Device<f32>> {
    batch: KtoRows,
    /// log π(y_(i+1)|x_i) under the policy and the reference: z0's inputs, scored without a
    /// tape when the step is built (z0 is a constant of the step, as in TRL).
    kl_policy: Tensor<(usize,), f32, D>,
    kl_reference: Tensor<(usize,), f32, D>,
    kto: KtoConfig,
    pad_id: u32,
    size: Size,
}

impl<D: Device<f32>> KtoStep<D> {
    /// The step on `batch`: scores its mismatched pairs under `policy` and `reference`, one
    /// thread each.
    pub fn new<M: LanguageModel<D> + crate::device::Shareable>(
        policy: &M,
        reference: &M,
        batch: KtoRows,
        kto: KtoConfig,
        pad_id: u32,
    ) -> Result<Self, TrainError>
    where
        D: crate::device::Shareable,
    {
        let kl_batch = token_batch(policy, &batch.mismatched, pad_id)?;
        let size = Size {
            rows: batch.rows.len(),
            tokens: token_batch(policy, &batch.rows, pad_id)?.completion_tokens()
                + 2 * kl_batch.completion_tokens(),
        };
        let untaped = |m: &M| {
            crate::model::fused::with_serial_gemm(|| m.sequence_logprobs(&kl_batch, NoneTape))
        };
        let (kl_policy, kl_reference) =
            crate::device::both(|| untaped(policy), || untaped(reference));
        Ok(KtoStep {
            batch,
            kl_policy: kl_policy?,
            kl_reference: kl_reference?,
            kto,
            pad_id,
            size,
        })
    }
}

impl<D: Device<f32>, M: LanguageModel<D>> Step<D, M> for KtoStep<D> {
    fn size(&self) -> Size {
        self.size
    }

    /// The rows' KTO loss at the batch's z0, weighted by their share of the batch.
    fn part(
        &self,
        model: &M,
        rows: Range<usize>,
        tape: OwnedTape<f32, D>,
    ) -> Result<Part<D>, TrainError> {
        let b = &self.batch;
        let tokens = token_batch(model, &b.rows[rows.clone()], self.pad_id)?;
        let logps = model.sequence_logprobs(&tokens, tape)?;
        let values = logps.as_vec();
        let reference = vector(&model.device(), b.reference[rows.clone()].to_vec())?;
        let (loss, metrics) = losses::kto(
            logps,
            &reference,
            &self.kl_policy,
            &self.kl_reference,
            &b.labels[rows.clone()],
            &self.kto,
        )?;
        let share = rows.len() as f32 / b.rows.len() as f32;
        Ok(Part {
            loss: loss.try_mul(share).map_err(device_err)?,
            values,
            metrics: to_map(&metrics),
        })
    }

    /// The loss's metrics over all rows (untaped: nothing to backpropagate).
    fn metrics(&self, model: &M, values: &[f32]) -> Result<Metrics, TrainError> {
        let dev = model.device();
        let (_, metrics) = losses::kto(
            vector(&dev, values.to_vec())?,
            &vector(&dev, self.batch.reference.clone())?,
            &self.kl_policy,
            &self.kl_reference,
            &self.batch.labels,
            &self.kto,
        )?;
        Ok(to_map(&metrics))
    }
}

/// One preference pair as a DPO step uses it: two (prompt, completion) rows and their
/// reference log-probs (chosen, rejected).
pub struct DpoPair {
    /// (x, y_chosen).
    pub chosen: Row,
    /// (x, y_rejected).
    pub rejected: Row,
    /// log πref of the chosen and the rejected completion, computed once before training.
    pub reference: [f32; 2],
}

/// TRL's concatenated layout of some pairs: all chosen rows, then all rejected rows.
fn dpo_rows(pairs: &[DpoPair]) -> (Vec<Row>, Vec<f32>) {
    let rows = pairs
        .iter()
        .map(|p| p.chosen.clone())
        .chain(pairs.iter().map(|p| p.rejected.clone()))
        .collect();
    let refs = pairs
        .iter()
        .map(|p| p.reference[0])
        .chain(pairs.iter().map(|p| p.reference[1]))
        .collect();
    (rows, refs)
}

/// A DPO step ([`losses::dpo()`]) against a frozen reference; its rows are pairs.
pub struct DpoStep {
    pairs: Vec<DpoPair>,
    beta: f32,
    pad_id: u32,
    size: Size,
}

impl DpoStep {
    /// The step on `pairs` at temperature `beta`.
    pub fn new<D: Device<f32>, M: LanguageModel<D>>(
        model: &M,
        pairs: Vec<DpoPair>,
        beta: f32,
        pad_id: u32,
    ) -> Result<Self, TrainError> {
        let size = Size {
            rows: pairs.len(),
            tokens: token_batch(model, &dpo_rows(&pairs).0, pad_id)?.completion_tokens(),
        };
        Ok(DpoStep {
            pairs,
            beta,
            pad_id,
            size,
        })
    }
}

impl<D: Device<f32>, M: LanguageModel<D>> Step<D, M> for DpoStep {
    fn size(&self) -> Size {
        self.size
    }

    /// The pairs' DPO loss, weighted by their share of the batch. The values are their
    /// (chosen, rejected) log-probs pair by pair.
    fn part(
        &self,
        model: &M,
        rows: Range<usize>,
        tape: OwnedTape<f32, D>,
    ) -> Result<Part<D>, TrainError> {
        let half = rows.len();
        let (rows, refs) = dpo_rows(&self.pairs[rows]);
        let batch = token_batch(model, &rows, self.pad_id)?;
        let policy = model.sequence_logprobs(&batch, tape)?;
        let flat = policy.as_vec();
        let values = (0..half).flat_map(|i| [flat[i], flat[half + i]]).collect();
        let (loss, metrics) = losses::dpo(policy, &vector(&model.device(), refs)?, self.beta)?;
        let share = half as f32 / self.pairs.len() as f32;
        Ok(Part {
            loss: loss.try_mul(share).map_err(device_err)?,
            values,
            metrics: to_map(&metrics),
        })
    }

    /// The loss's metrics over all pairs, from the (chosen, rejected) values in pair order.
    fn metrics(&self, model: &M, values: &[f32]) -> Result<Metrics, TrainError> {
        let n = self.pairs.len();
        let policy: Vec<f32> = (0..n)
            .map(|i| values[2 * i])
            .chain((0..n).map(|i| values[2 * i + 1]))
            .collect();
        let dev = model.device();
        let (_, metrics) = losses::dpo(
            vector(&dev, policy)?,
            &vector(&dev, dpo_rows(&self.pairs).1)?,
            self.beta,
        )?;
        Ok(to_map(&metrics))
    }
}
