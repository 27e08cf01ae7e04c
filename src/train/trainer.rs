//! The three trainers of lab 3 — SFT, KTO, DPO — over one shared optimizer loop.
//!
//! Each step: build a padded batch, run the policy with a gradient tape, compute the loss,
//! backpropagate, clip and apply AdamW, log. KTO and DPO also need the frozen reference model;
//! its log-probs on the training examples never change, so they are computed once up front
//! (one untaped forward per example instead of one per step). Only KTO's mismatched pairs,
//! rebuilt in every batch, need a fresh reference forward.

use dfdx::nn::ZeroGrads;
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

use super::data::{mismatched, Batcher, Example, Pair};
use super::log::{MetricsLog, StepRecord};
use super::optim::{AdamW, AdamWConfig, LrSchedule};
use super::{both, Shareable, TrainError};
use crate::losses::{self, KtoConfig};
use crate::model::{tape_from, LanguageModel, ModelError, TokenBatch};

/// Settings shared by every trainer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Examples (KTO), pairs (DPO) or sequences (SFT) per step.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warmup steps (then cosine decay to 10% of the peak).
    pub warmup: usize,
    /// AdamW and clipping.
    pub adamw: AdamWConfig,
    /// Seed of the data order.
    pub seed: u64,
}

impl TrainConfig {
    fn validate(&self) -> Result<(), TrainError> {
        let bad = |name, value: String, expected| TrainError::BadConfig {
            name,
            value,
            expected,
        };
        if self.batch_size == 0 {
            return Err(bad("batch_size", "0".into(), "at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr.to_string(), "a finite number > 0"));
        }
        Ok(())
    }

    fn schedule(&self) -> LrSchedule {
        LrSchedule {
            peak: self.lr,
            warmup: self.warmup,
            total: self.steps,
            min_ratio: 0.1,
        }
    }
}

/// One training run's context: its name in the log, its settings, the padding id, the log.
pub struct Session<'a> {
    /// The phase name records carry (`sft`, `kto`, ...).
    pub phase: &'a str,
    /// Optimizer settings.
    pub cfg: &'a TrainConfig,
    /// Token id used to pad batches (the tokenizer's EOS).
    pub pad_id: u32,
    /// Where step records go.
    pub log: &'a mut MetricsLog,
}

/// What one step's loss function hands back to the loop.
struct StepOutput<D: Device<f32>> {
    loss: Tensor<(), f32, D, OwnedTape<f32, D>>,
    metrics: serde_json::Map<String, serde_json::Value>,
    tokens: usize,
}

/// The optimizer loop every trainer shares.
fn run<D: Device<f32>, M: LanguageModel<D>>(
    model: &mut M,
    session: &mut Session,
    mut step_fn: impl FnMut(&M, OwnedTape<f32, D>) -> Result<StepOutput<D>, TrainError>,
) -> Result<(), TrainError> {
    let (cfg, phase) = (session.cfg, session.phase);
    cfg.validate()?;
    let dev = model.device();
    let schedule = cfg.schedule();
    let mut opt = AdamW::new(cfg.adamw);
    let mut grads = model.alloc_grads();
    session.log.start_phase(phase, cfg.steps);
    for step in 0..cfg.steps {
        let start = Instant::now();
        model.zero_grads(&mut grads);
        let out = step_fn(model, tape_from(&dev, grads))?;
        let loss = out.loss.as_vec()[0];
        grads = out.loss.backward();
        let lr = schedule.lr(step);
        let info = opt.step(model, &grads, lr);
        let seconds = start.elapsed().as_secs_f64().max(1e-9);
        session.log.push(StepRecord {
            phase: phase.to_string(),
            step,
            lr,
            loss,
            grad_norm: info.grad_norm,
            clipped: info.clipped,
            tokens_per_s: out.tokens as f64 / seconds,
            metrics: out.metrics,
        })?;
    }
    session.log.finish_phase();
    Ok(())
}

fn to_map<T: Serialize>(metrics: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(metrics) {
        Ok(serde_json::Value::Object(mut m)) => {
            m.remove("loss");
            m
        }
        _ => serde_json::Map::new(),
    }
}

fn token_batch<D: Device<f32>, M: LanguageModel<D>>(
    model: &M,
    pairs: &[(Vec<u32>, Vec<u32>)],
    pad_id: u32,
) -> Result<TokenBatch, TrainError> {
    Ok(TokenBatch::new(pairs, pad_id, model.max_seq())?)
}

/// log π(completion | prompt) of every pair under `model`, without a tape, `batch_size` rows
/// at a time.
pub fn logprobs<D: Device<f32>, M: LanguageModel<D>>(
    model: &M,
    pairs: &[(Vec<u32>, Vec<u32>)],
    pad_id: u32,
    batch_size: usize,
) -> Result<Vec<f32>, TrainError> {
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(batch_size.max(1)) {
        let batch = token_batch(model, chunk, pad_id)?;
        out.extend(model.sequence_logprobs(&batch, NoneTape)?.as_vec());
    }
    Ok(out)
}

/// Supervised fine-tuning: minimize the NLL of the completions (labels are ignored: SFT imitates
/// whatever it is shown — which is why lab 3's SFT model answers badly half the time).
pub fn train_sft<D: Device<f32>, M: LanguageModel<D>>(
    model: &mut M,
    data: &[Example],
    session: &mut Session,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    if data.is_empty() {
        return Err(TrainError::Empty {
            what: "SFT examples",
        });
    }
    let mut batcher = Batcher::new(data.len(), cfg.seed);
    run(model, session, |m, tape| {
        let pairs: Vec<_> = batcher
            .next_batch(cfg.batch_size)
            .into_iter()
            .map(|i| (data[i].prompt.clone(), data[i].completion.clone()))
            .collect();
        let batch = token_batch(m, &pairs, pad_id)?;
        Ok(StepOutput {
            loss: m.token_nll(&batch, tape)?,
            metrics: serde_json::Map::new(),
            tokens: batch.completion_tokens(),
        })
    })
}

/// KTO against a frozen `reference` (usually the SFT model): TRL's `KTOTrainer` step with
/// [`losses::kto()`], the mismatched pairs rebuilt from each shuffled batch.
///
/// Errors on empty data; one-class data trains (the loss handles it) but is weak — check
/// [`crate::feedback::advise`] before.
pub fn train_kto<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    policy: &mut M,
    reference: &M,
    data: &[Example],
    kto: &KtoConfig,
    session: &mut Session,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    if data.is_empty() {
        return Err(TrainError::Empty {
            what: "KTO examples",
        });
    }
    kto.validate()?;
    if cfg.batch_size < 2 {
        return Err(TrainError::BadConfig {
            name: "batch_size",
            value: cfg.batch_size.to_string(),
            expected: "at least 2 for KTO (the mismatched pairs need a neighbour)",
        });
    }
    let dev = policy.device();
    let matched: Vec<_> = data
        .iter()
        .map(|e| (e.prompt.clone(), e.completion.clone()))
        .collect();
    let reference_logps = logprobs(reference, &matched, pad_id, cfg.batch_size)?;
    let mut batcher = Batcher::new(data.len(), cfg.seed);
    run(policy, session, |m, tape| {
        let mut idx = batcher.next_batch(cfg.batch_size);
        if idx.len() < 2 {
            // The last batch of an epoch can hold one example: borrow the next batch instead.
            idx = batcher.next_batch(cfg.batch_size);
        }
        let examples: Vec<&Example> = idx.iter().map(|&i| &data[i]).collect();
        let pairs: Vec<_> = idx.iter().map(|&i| matched[i].clone()).collect();
        let labels: Vec<bool> = examples.iter().map(|e| e.label).collect();
        let batch = token_batch(m, &pairs, pad_id)?;
        let kl_batch = token_batch(m, &mismatched(&examples), pad_id)?;

        // The two untaped forwards on the mismatched pairs do not depend on the taped one: they
        // run on a second thread meanwhile (one after the other with the `cuda` feature).
        let (kl, policy_logps) = both(
            || -> Result<_, ModelError> {
                Ok((
                    m.sequence_logprobs(&kl_batch, NoneTape)?,
                    reference.sequence_logprobs(&kl_batch, NoneTape)?,
                ))
            },
            || m.sequence_logprobs(&batch, tape),
        );
        let (kl_policy, kl_reference) = kl?;
        let policy_logps = policy_logps?;
        let ref_values: Vec<f32> = idx.iter().map(|&i| reference_logps[i]).collect();
        let reference_batch = dev.tensor_from_vec(ref_values, (idx.len(),));
        let (loss, metrics) = losses::kto(
            policy_logps,
            &reference_batch,
            &kl_policy,
            &kl_reference,
            &labels,
            kto,
        )?;
        Ok(StepOutput {
            loss,
            metrics: to_map(&metrics),
            tokens: batch.completion_tokens() + 2 * kl_batch.completion_tokens(),
        })
    })
}

/// DPO against a frozen `reference` on preference pairs, with [`losses::dpo()`].
pub fn train_dpo<D: Device<f32>, M: LanguageModel<D>>(
    policy: &mut M,
    reference: &M,
    data: &[Pair],
    beta: f32,
    session: &mut Session,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    if data.is_empty() {
        return Err(TrainError::Empty { what: "DPO pairs" });
    }
    let dev = policy.device();
    let rows = |p: &Pair| {
        [
            (p.prompt.clone(), p.chosen.clone()),
            (p.prompt.clone(), p.rejected.clone()),
        ]
    };
    let all: Vec<_> = data.iter().flat_map(rows).collect();
    // Entry 2i is pair i's chosen completion, 2i + 1 its rejected one.
    let reference_logps = logprobs(reference, &all, pad_id, 2 * cfg.batch_size)?;
    let mut batcher = Batcher::new(data.len(), cfg.seed);
    run(policy, session, |m, tape| {
        let idx = batcher.next_batch(cfg.batch_size);
        // TRL's concatenated layout: all chosen rows, then all rejected rows.
        let pairs: Vec<_> = idx
            .iter()
            .map(|&i| all[2 * i].clone())
            .chain(idx.iter().map(|&i| all[2 * i + 1].clone()))
            .collect();
        let refs: Vec<f32> = idx
            .iter()
            .map(|&i| reference_logps[2 * i])
            .chain(idx.iter().map(|&i| reference_logps[2 * i + 1]))
            .collect();
        let batch = token_batch(m, &pairs, pad_id)?;
        let policy_logps = m.sequence_logprobs(&batch, tape)?;
        let reference_batch = dev.tensor_from_vec(refs, (pairs.len(),));
        let (loss, metrics) = losses::dpo(policy_logps, &reference_batch, beta)?;
        Ok(StepOutput {
            loss,
            metrics: to_map(&metrics),
            tokens: batch.completion_tokens(),
        })
    })
}
