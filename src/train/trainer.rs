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
use super::optim::{add_grads, AdamW, AdamWConfig, LrSchedule};
use super::TrainError;
use crate::device::{both, on_host, Shareable};
use crate::losses::{self, KtoConfig};
use crate::model::{device_err, fused, tape_from, LanguageModel, TokenBatch};
use std::ops::Range;

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

/// A part of a step's rows turned into a partial loss: the parts' losses add up to the batch
/// loss (each is its rows' share of the batch mean), so their gradients add up to the batch
/// gradient.
struct Part<D: Device<f32>> {
    loss: Tensor<(), f32, D, OwnedTape<f32, D>>,
    /// One number per row of the part (its log-prob), for the step's metrics.
    values: Vec<f32>,
}

/// `part(model, rows, tape)`: the partial loss of a range of the step's rows (shared by the two
/// threads of a split step).
#[cfg(not(feature = "cuda"))]
type PartFn<'a, D, M> =
    dyn Fn(&M, Range<usize>, OwnedTape<f32, D>) -> Result<Part<D>, TrainError> + Sync + 'a;
/// `part(model, rows, tape)`: the partial loss of a range of the step's rows (CUDA build: one
/// thread, see [`both`]).
#[cfg(feature = "cuda")]
type PartFn<'a, D, M> =
    dyn Fn(&M, Range<usize>, OwnedTape<f32, D>) -> Result<Part<D>, TrainError> + 'a;

/// One step, as a trainer plans it; the loop runs it.
struct StepPlan<'a, D: Device<f32>, M> {
    /// Rows in the batch (examples, sequences, or pairs).
    rows: usize,
    part: Box<PartFn<'a, D, M>>,
    /// The step's metrics from every row's value (in row order).
    metrics: Box<MetricsFn<'a>>,
    tokens: usize,
}

/// A step's metrics, by TRL's names.
pub type Metrics = serde_json::Map<String, serde_json::Value>;

/// A step's metrics from every row's value.
type MetricsFn<'a> = dyn FnOnce(&[f32]) -> Result<Metrics, TrainError> + 'a;

/// A (prompt, completion) row of token ids.
type Row = (Vec<u32>, Vec<u32>);

/// What [`backward_parts`] hands back: the loss, every row's value, both gradient stores (the
/// first holds the batch's gradient).
type Outcome<D> = (f32, Vec<f32>, [Gradients<f32, D>; 2]);

/// Runs a step's parts and backward passes: on the CPU the rows are split in two halves, one
/// per thread (each thread's GEMMs stay on it), and the second half's gradients are added into
/// the first's. The split is the same on every machine, whatever its core count, so a seed
/// gives the same model everywhere. Returns the loss, every row's value, and the gradients.
fn backward_parts<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    model: &M,
    rows: usize,
    part: &PartFn<'_, D, M>,
    [first, second]: [Gradients<f32, D>; 2],
) -> Result<Outcome<D>, TrainError> {
    let dev = model.device();
    let run = |range: Range<usize>, grads: Gradients<f32, D>| {
        fused::with_serial_gemm(|| -> Result<_, TrainError> {
            let p = part(model, range, tape_from(&dev, grads))?;
            let loss = p.loss.as_vec()[0];
            Ok((loss, p.values, p.loss.backward()))
        })
    };
    if rows < 2 || !on_host::<D>() {
        let (loss, values, grads) = run(0..rows, first)?;
        return Ok((loss, values, [grads, second]));
    }
    let half = rows.div_ceil(2);
    let (b, a) = both(|| run(half..rows, second), || run(0..half, first));
    let ((loss_a, mut values, mut grads_a), (loss_b, values_b, mut grads_b)) = (a?, b?);
    if !add_grads(model, &mut grads_a, &mut grads_b) {
        return Err(TrainError::BadConfig {
            name: "device",
            value: "not the CPU".into(),
            expected: "the CPU for a batch split over two threads",
        });
    }
    values.extend(values_b);
    Ok((loss_a + loss_b, values, [grads_a, grads_b]))
}

/// A look at the model during training: called after every optimizer step with the model
/// and the number of steps done so far, it returns metrics to add to that step's record
/// (none, most steps). Lab 3's loop samples and judges answers every few steps with it, so
/// the desirable rate becomes a curve in `metrics.jsonl`.
pub type Probe<'p, M> = dyn FnMut(&M, usize) -> Result<Metrics, TrainError> + 'p;

/// The optimizer loop every trainer shares.
fn run<'a, D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    model: &mut M,
    session: &mut Session,
    probe: &mut Probe<'_, M>,
    mut step_fn: impl FnMut(&M) -> Result<StepPlan<'a, D, M>, TrainError>,
) -> Result<(), TrainError> {
    let (cfg, phase) = (session.cfg, session.phase);
    cfg.validate()?;
    let schedule = cfg.schedule();
    let mut opt = AdamW::new(cfg.adamw);
    let mut grads = [model.alloc_grads(), model.alloc_grads()];
    session.log.start_phase(phase, cfg.steps);
    for step in 0..cfg.steps {
        let start = Instant::now();
        for g in &mut grads {
            model.zero_grads(g);
        }
        let plan = step_fn(model)?;
        let (loss, values, used) = backward_parts(model, plan.rows, &*plan.part, grads)?;
        grads = used;
        let mut metrics = (plan.metrics)(&values)?;
        let lr = schedule.lr(step);
        let info = opt.step(model, &grads[0], lr);
        let seconds = start.elapsed().as_secs_f64().max(1e-9);
        // After the timing: a probe's sampling is not the step's work.
        metrics.extend(probe(model, step + 1)?);
        session.log.push(StepRecord {
            phase: phase.to_string(),
            step,
            lr,
            loss,
            grad_norm: info.grad_norm,
            clipped: info.clipped,
            tokens_per_s: plan.tokens as f64 / seconds,
            metrics,
        })?;
    }
    session.log.finish_phase();
    Ok(())
}

/// The probe that looks at nothing.
fn no_probe<M>(_: &M, _: usize) -> Result<Metrics, TrainError> {
    Ok(Metrics::new())
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
pub fn train_sft<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    model: &mut M,
    data: &[Example],
    session: &mut Session,
) -> Result<(), TrainError> {
    train_sft_probed(model, data, session, &mut no_probe)
}

/// [`train_sft`] with a [`Probe`] after every step.
pub fn train_sft_probed<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    model: &mut M,
    data: &[Example],
    session: &mut Session,
    probe: &mut Probe<'_, M>,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    if data.is_empty() {
        return Err(TrainError::Empty {
            what: "SFT examples",
        });
    }
    let mut batcher = Batcher::new(data.len(), cfg.seed);
    run(model, session, probe, |m| {
        let pairs: Vec<_> = batcher
            .next_batch(cfg.batch_size)
            .into_iter()
            .map(|i| (data[i].prompt.clone(), data[i].completion.clone()))
            .collect();
        sft_plan(m, pairs, pad_id)
    })
}

/// An SFT step: each part's mean NLL, weighted by its share of the batch's completion tokens.
fn sft_plan<'a, D: Device<f32> + Shareable, M: LanguageModel<D>>(
    model: &M,
    pairs: Vec<(Vec<u32>, Vec<u32>)>,
    pad_id: u32,
) -> Result<StepPlan<'a, D, M>, TrainError> {
    let tokens = token_batch(model, &pairs, pad_id)?.completion_tokens();
    Ok(StepPlan {
        rows: pairs.len(),
        part: Box::new(move |m: &M, rows, tape| {
            let batch = token_batch(m, &pairs[rows], pad_id)?;
            let share = batch.completion_tokens() as f32 / tokens as f32;
            Ok(Part {
                loss: m
                    .token_nll(&batch, tape)?
                    .try_mul(share)
                    .map_err(device_err)?,
                values: Vec::new(),
            })
        }),
        metrics: Box::new(|_| Ok(Metrics::new())),
        tokens,
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
    train_kto_probed(policy, reference, data, kto, session, &mut no_probe)
}

/// [`train_kto`] with a [`Probe`] after every step.
pub fn train_kto_probed<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    policy: &mut M,
    reference: &M,
    data: &[Example],
    kto: &KtoConfig,
    session: &mut Session,
    probe: &mut Probe<'_, M>,
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
    let matched: Vec<_> = data
        .iter()
        .map(|e| (e.prompt.clone(), e.completion.clone()))
        .collect();
    let reference_logps = logprobs(reference, &matched, pad_id, cfg.batch_size)?;
    let mut batcher = Batcher::new(data.len(), cfg.seed);
    run(policy, session, probe, |m| {
        let mut idx = batcher.next_batch(cfg.batch_size);
        if idx.len() < 2 {
            // The last batch of an epoch can hold one example: borrow the next batch instead.
            idx = batcher.next_batch(cfg.batch_size);
        }
        let examples: Vec<&Example> = idx.iter().map(|&i| &data[i]).collect();
        let batch = KtoBatch {
            pairs: idx.iter().map(|&i| matched[i].clone()).collect(),
            labels: examples.iter().map(|e| e.label).collect(),
            reference: idx.iter().map(|&i| reference_logps[i]).collect(),
            mismatched: mismatched(&examples),
        };
        kto_plan(m, reference, batch, *kto, pad_id)
    })
}

/// One KTO batch: the examples, their labels and reference log-probs, and the mismatched pairs.
struct KtoBatch {
    pairs: Vec<(Vec<u32>, Vec<u32>)>,
    labels: Vec<bool>,
    reference: Vec<f32>,
    mismatched: Vec<(Vec<u32>, Vec<u32>)>,
}

/// A KTO step. The mismatched pairs are scored first, without a tape (z0 is a constant of the
/// step, as in TRL), policy and reference on one thread each; each part is then its examples'
/// share of the batch-mean KTO loss at that z0.
fn kto_plan<'a, D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    model: &M,
    reference: &M,
    batch: KtoBatch,
    kto: KtoConfig,
    pad_id: u32,
) -> Result<StepPlan<'a, D, M>, TrainError> {
    let kl_batch = token_batch(model, &batch.mismatched, pad_id)?;
    let tokens = token_batch(model, &batch.pairs, pad_id)?.completion_tokens()
        + 2 * kl_batch.completion_tokens();
    let untaped = |m: &M| fused::with_serial_gemm(|| m.sequence_logprobs(&kl_batch, NoneTape));
    let (kl_policy, kl_reference) = both(|| untaped(model), || untaped(reference));
    let (kl_policy, kl_reference) = (kl_policy?, kl_reference?);
    let dev = model.device();
    let n = batch.pairs.len();
    // Everything a part needs, shared by both parts (and the metrics).
    let shared = std::sync::Arc::new((batch, kl_policy, kl_reference));
    let for_metrics = shared.clone();
    let metrics_dev = dev.clone();
    Ok(StepPlan {
        rows: n,
        part: Box::new(move |m: &M, rows, tape| {
            let (batch, kl_policy, kl_reference) = &*shared;
            let tokens = token_batch(m, &batch.pairs[rows.clone()], pad_id)?;
            let logps = m.sequence_logprobs(&tokens, tape)?;
            let values = logps.as_vec();
            let reference = dev
                .try_tensor_from_vec(batch.reference[rows.clone()].to_vec(), (rows.len(),))
                .map_err(device_err)?;
            let labels = &batch.labels[rows.clone()];
            let (loss, _) = losses::kto(logps, &reference, kl_policy, kl_reference, labels, &kto)?;
            Ok(Part {
                loss: loss
                    .try_mul(rows.len() as f32 / n as f32)
                    .map_err(device_err)?,
                values,
            })
        }),
        // The step's metrics from all rows at once (untaped: nothing to backpropagate).
        metrics: Box::new(move |values| {
            let (batch, kl_policy, kl_reference) = &*for_metrics;
            let policy = metrics_dev
                .try_tensor_from_vec(values.to_vec(), (n,))
                .map_err(device_err)?;
            let reference = metrics_dev
                .try_tensor_from_vec(batch.reference.clone(), (n,))
                .map_err(device_err)?;
            let (_, metrics) = losses::kto(
                policy,
                &reference,
                kl_policy,
                kl_reference,
                &batch.labels,
                &kto,
            )?;
            Ok(to_map(&metrics))
        }),
        tokens,
    })
}

/// DPO against a frozen `reference` on preference pairs, with [`losses::dpo()`].
pub fn train_dpo<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    policy: &mut M,
    reference: &M,
    data: &[Pair],
    beta: f32,
    session: &mut Session,
) -> Result<(), TrainError> {
    train_dpo_probed(policy, reference, data, beta, session, &mut no_probe)
}

/// [`train_dpo`] with a [`Probe`] after every step.
pub fn train_dpo_probed<D: Device<f32> + Shareable, M: LanguageModel<D> + Shareable>(
    policy: &mut M,
    reference: &M,
    data: &[Pair],
    beta: f32,
    session: &mut Session,
    probe: &mut Probe<'_, M>,
) -> Result<(), TrainError> {
    let (cfg, pad_id) = (*session.cfg, session.pad_id);
    if data.is_empty() {
        return Err(TrainError::Empty { what: "DPO pairs" });
    }
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
        dpo_plan(m, pairs, beta, pad_id)
    })
}

/// One preference pair as a DPO step uses it: two (prompt, completion) rows and their
/// reference log-probs (chosen, rejected).
struct DpoPair {
    chosen: (Vec<u32>, Vec<u32>),
    rejected: (Vec<u32>, Vec<u32>),
    reference: [f32; 2],
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

/// A DPO step: each part is its pairs' share of the batch-mean DPO loss. A part's values are
/// its (chosen, rejected) log-probs pair by pair.
fn dpo_plan<'a, D: Device<f32> + Shareable, M: LanguageModel<D>>(
    model: &M,
    pairs: Vec<DpoPair>,
    beta: f32,
    pad_id: u32,
) -> Result<StepPlan<'a, D, M>, TrainError> {
    let n = pairs.len();
    let tokens = token_batch(model, &dpo_rows(&pairs).0, pad_id)?.completion_tokens();
    let dev = model.device();
    let metrics_dev = dev.clone();
    let pairs = std::sync::Arc::new(pairs);
    let for_metrics = pairs.clone();
    Ok(StepPlan {
        rows: n,
        part: Box::new(move |m: &M, rows, tape| {
            let half = rows.len();
            let (rows, refs) = dpo_rows(&pairs[rows]);
            let batch = token_batch(m, &rows, pad_id)?;
            let policy_logps = m.sequence_logprobs(&batch, tape)?;
            let flat = policy_logps.as_vec();
            let values = (0..half).flat_map(|i| [flat[i], flat[half + i]]).collect();
            let reference = dev
                .try_tensor_from_vec(refs, (2 * half,))
                .map_err(device_err)?;
            let (loss, _) = losses::dpo(policy_logps, &reference, beta)?;
            Ok(Part {
                loss: loss.try_mul(half as f32 / n as f32).map_err(device_err)?,
                values,
            })
        }),
        // Metrics over the whole batch, from the (chosen, rejected) values in pair order.
        metrics: Box::new(move |values| {
            let policy: Vec<f32> = (0..n)
                .map(|i| values[2 * i])
                .chain((0..n).map(|i| values[2 * i + 1]))
                .collect();
            let refs = dpo_rows(&for_metrics).1;
            let policy = metrics_dev
                .try_tensor_from_vec(policy, (2 * n,))
                .map_err(device_err)?;
            let reference = metrics_dev
                .try_tensor_from_vec(refs, (2 * n,))
                .map_err(device_err)?;
            let (_, metrics) = losses::dpo(policy, &reference, beta)?;
            Ok(to_map(&metrics))
        }),
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::tiny::TinyModel;

    fn ids(seed: usize, n: usize) -> Vec<u32> {
        (0..n)
            .map(|i| ((seed * 31 + i * 17) % 250 + 3) as u32)
            .collect()
    }

    /// Every parameter's gradient, flattened, in visiting order.
    fn all_grads(model: &TinyModel<Cpu>, grads: &Gradients<f32, Cpu>) -> Vec<f32> {
        let mut out = Vec::new();
        crate::train::optim::for_each_param(model, |t| out.extend(grads.get(t).as_vec()));
        out
    }

    /// The plan's loss, values and gradients with the batch in one piece, then split over two
    /// threads: the same up to float rounding.
    fn split_equals_whole(model: &TinyModel<Cpu>, plan: StepPlan<'_, Cpu, TinyModel<Cpu>>) {
        let dev = model.device();
        let whole =
            plan.part.as_ref()(model, 0..plan.rows, tape_from(&dev, model.alloc_grads())).unwrap();
        let (loss, values) = (whole.loss.as_vec()[0], whole.values.clone());
        let grads = whole.loss.backward();
        let (split_loss, split_values, [split_grads, _]) = backward_parts(
            model,
            plan.rows,
            &*plan.part,
            [model.alloc_grads(), model.alloc_grads()],
        )
        .unwrap();
        assert!(
            (loss - split_loss).abs() <= 1e-6 * (1.0 + loss.abs()),
            "{loss} vs {split_loss}"
        );
        assert_eq!(values.len(), split_values.len());
        for (a, b) in values.iter().zip(&split_values) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
        }
        let (a, b) = (all_grads(model, &grads), all_grads(model, &split_grads));
        assert_eq!(a.len(), b.len());
        let scale = a.iter().map(|g| g.abs()).fold(0.0f32, f32::max);
        assert!(scale > 0.0);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-5 * scale, "{x} vs {y}");
        }
        assert!((plan.metrics)(&split_values).is_ok());
    }

    fn pairs(n: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
        (0..n)
            .map(|i| (ids(i, 3 + i % 3), ids(i + 50, 2 + i % 4)))
            .collect()
    }

    #[test]
    fn split_sft_step_gives_the_whole_batch_gradient() {
        let model = TinyModel::<Cpu>::init(&Cpu::default(), 3);
        split_equals_whole(&model, sft_plan(&model, pairs(5), 0).unwrap());
    }

    #[test]
    fn split_kto_step_gives_the_whole_batch_gradient() {
        let model = TinyModel::<Cpu>::init(&Cpu::default(), 4);
        let reference = TinyModel::<Cpu>::init(&Cpu::default(), 5);
        let p = pairs(6);
        let mismatched = (0..6)
            .map(|i| (p[i].0.clone(), p[(i + 1) % 6].1.clone()))
            .collect();
        let batch = KtoBatch {
            pairs: p,
            labels: vec![true, false, false, true, true, false],
            reference: vec![-9.0, -7.5, -8.0, -10.0, -6.0, -9.5],
            mismatched,
        };
        split_equals_whole(
            &model,
            kto_plan(&model, &reference, batch, KtoConfig::default(), 0).unwrap(),
        );
    }

    #[test]
    fn split_dpo_step_gives_the_whole_batch_gradient() {
        let model = TinyModel::<Cpu>::init(&Cpu::default(), 6);
        let p = pairs(10);
        let dpo = (0..5)
            .map(|i| DpoPair {
                chosen: p[2 * i].clone(),
                rejected: p[2 * i + 1].clone(),
                reference: [-8.0 - i as f32, -7.0],
            })
            .collect();
        split_equals_whole(&model, dpo_plan(&model, dpo, 0.1, 0).unwrap());
    }
}
