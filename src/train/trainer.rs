//! The three trainers of lab 3 — SFT, KTO, DPO — over one shared optimizer loop.
//!
//! Each step: draw a batch, build its [`Step`] (what the loss needs), compute the loss with a
//! gradient tape and backpropagate (split over two threads on the CPU: [`super::parallel`]),
//! clip and apply AdamW, log. KTO and DPO also need the frozen reference model; its log-probs
//! on the training examples never change, so they are computed once up front (one untaped
//! forward per example instead of one per step). Only KTO's mismatched pairs, rebuilt in every
//! batch, need a fresh reference forward.

use dfdx::nn::ZeroGrads;
use dfdx::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

use super::data::{mismatched, Batcher, Example, Pair};
use super::log::{MetricsLog, StepRecord};
use super::optim::{AdamW, AdamWConfig, LrSchedule};
use super::parallel;
use super::step::{
    backward, token_batch, DpoPair, DpoStep, KtoRows, KtoStep, Metrics, Outcome, SftStep, Step,
};
use super::TrainError;
use crate::device::{on_host, Shareable};
use crate::losses::KtoConfig;
use crate::model::LanguageModel;

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

/// A look at the model during training: called after every optimizer step with the model
/// and the number of steps done so far, it returns metrics to add to that step's record
/// (none, most steps). Lab 3's loop samples and judges answers every few steps with it, so
/// the desirable rate becomes a curve in `metrics.jsonl`.
pub type Probe<'p, M> = dyn FnMut(&M, usize) -> Result<Metrics, TrainError> + 'p;

/// The optimizer loop every trainer shares: `next_step` builds each step's batch.
fn run<D, M, S>(
    model: &mut M,
    session: &mut Session,
    probe: &mut Probe<'_, M>,
    mut next_step: impl FnMut(&M) -> Result<S, TrainError>,
) -> Result<(), TrainError>
where
    D: Device<f32> + Shareable,
    M: LanguageModel<D> + Shareable,
    S: Step<D, M> + Shareable,
{
    let (cfg, phase) = (session.cfg, session.phase);
    cfg.validate()?;
    let schedule = cfg.schedule();
    let mut opt = AdamW::new(cfg.adamw);
    let mut grads = model.alloc_grads();
    // The second gradient store of a step split over two threads (on the CPU).
    let mut spare = on_host::<D>().then(|| model.alloc_grads());
    session.log.start_phase(phase, cfg.steps);
    for step_index in 0..cfg.steps {
        let start = Instant::now();
        model.zero_grads(&mut grads);
        let step = next_step(model)?;
        let outcome = match spare.take() {
            Some(mut second) => {
                model.zero_grads(&mut second);
                let (outcome, second) = parallel::backward_split(model, &step, [grads, second])?;
                spare = Some(second);
                outcome
            }
            None => backward(model, &step, grads)?,
        };
        let Outcome {
            loss,
            mut metrics,
            grads: used,
        } = outcome;
        grads = used;
        let lr = schedule.lr(step_index);
        let info = opt.step(model, &grads, lr);
        let seconds = start.elapsed().as_secs_f64().max(1e-9);
        // After the timing: a probe's sampling is not the step's work.
        metrics.extend(probe(model, step_index + 1)?);
        session.log.push(StepRecord {
            phase: phase.to_string(),
            step: step_index,
            lr,
            loss,
            grad_norm: info.grad_norm,
            clipped: info.clipped,
            tokens_per_s: step.size().tokens as f64 / seconds,
            metrics,
        })?;
    }
    session.log.finish_phase();
    Ok(())
}

/// The probe that looks at nothing.
pub fn no_probe<M>(_: &M, _: usize) -> Result<Metrics, TrainError> {
    Ok(Metrics::new())
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

/// [`TrainError::Empty`] naming `what` when there is nothing to train on.
fn nonempty<T>(data: &[T], what: &'static str) -> Result<(), TrainError> {
    match data {
        [] => Err(TrainError::Empty { what }),
        _ => Ok(()),
    }
}

/// Supervised fine-tuning ([`SftStep`]): minimize the NLL of the completions, whatever their
/// label. `probe` looks at the model after every step ([`no_probe`] for none).
pub fn train_sft<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    model: &mut M,
    data: &[Example],
    session: &mut Session,
    probe: &mut Probe<'_, M>,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    nonempty(data, "SFT examples")?;
    let mut batcher = Batcher::new(data.len(), cfg.seed);
    run(model, session, probe, |m| {
        let rows = batcher
            .next_batch(cfg.batch_size)
            .into_iter()
            .map(|i| (data[i].prompt.clone(), data[i].completion.clone()))
            .collect();
        SftStep::new(m, rows, pad_id)
    })
}

/// KTO ([`KtoStep`]) against a frozen `reference` (usually the SFT model): TRL's `KTOTrainer`
/// with [`crate::losses::kto()`], the mismatched pairs rebuilt from each shuffled batch. `probe` looks
/// at the model after every step ([`no_probe`] for none).
///
/// Errors on empty data; one-class data trains (the loss handles it) but is weak — check
/// [`crate::feedback::advise`] before.
pub fn train_kto<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    policy: &mut M,
    reference: &M,
    data: &[Example],
    kto: &KtoConfig,
    session: &mut Session,
    probe: &mut Probe<'_, M>,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    nonempty(data, "KTO examples")?;
    kto.validate()?;
    if cfg.batch_size < 2 {
        return Err(TrainError::BadConfig {
            name: "batch_size",
            value: cfg.batch_size.to_string(),
            expected: "at least 2 for KTO (the mismatched pairs need a neighbour)",
        });
    }
    let matched: Vec<_> = data
        .iter()
        .map(|e| (e.prompt.clone(), e.completion.clone()))
        .collect();
    // The reference's log-probs of the examples never change: computed once, not every step.
    let reference_logps = logprobs(reference, &matched, pad_id, cfg.batch_size)?;
    let mut batcher = Batcher::new(data.len(), cfg.seed);
    run(policy, session, probe, |m| {
        let mut idx = batcher.next_batch(cfg.batch_size);
        if idx.len() < 2 {
            // The last batch of an epoch can hold one example: borrow the next batch instead.
            idx = batcher.next_batch(cfg.batch_size);
        }
        let examples: Vec<&Example> = idx.iter().map(|&i| &data[i]).collect();
        let batch = KtoRows {
            rows: idx.iter().map(|&i| matched[i].clone()).collect(),
            labels: examples.iter().map(|e| e.label).collect(),
            reference: idx.iter().map(|&i| reference_logps[i]).collect(),
            mismatched: mismatched(&examples),
        };
        KtoStep::new(m, reference, batch, *kto, pad_id)
    })
}

/// DPO ([`DpoStep`]) against a frozen `reference` on preference pairs, with [`crate::losses::dpo()`].
/// `probe` looks at the model after every step ([`no_probe`] for none).
pub fn train_dpo<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    policy: &mut M,
    reference: &M,
    data: &[Pair],
    beta: f32,
    session: &mut Session,
    probe: &mut Probe<'_, M>,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    nonempty(data, "DPO pairs")?;
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
    run(policy, session, probe, |m| {
        let idx = batcher.next_batch(cfg.batch_size);
        let pairs = idx
            .iter()
            .map(|&i| DpoPair {
                chosen: all[2 * i].clone(),
                rejected: all[2 * i + 1].clone(),
                reference: [reference_logps[2 * i], reference_logps[2 * i + 1]],
            })
            .collect();
        DpoStep::new(m, pairs, beta, pad_id)
    })
}
