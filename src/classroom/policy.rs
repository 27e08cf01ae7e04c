//! One KTO step by hand (exercise 3.3): a policy with its optimizer, a batch with everything
//! the loss needs from the frozen reference, and the library's step to compare with.

use dfdx::nn::ZeroGrads;
use dfdx::prelude::*;

use super::ClassroomModel;
use crate::losses::{self, Dev, KtoConfig, KtoMetrics};
use crate::model::{tape_from, LanguageModel, ModelError, TokenBatch};
use crate::train::{data::mismatched, AdamW, AdamWConfig, Example, StepInfo, TrainError};

/// Log-probs that carry the policy's gradient tape, `(B,)`: call `.backward()` on a loss made
/// from them.
pub type TracedLogps = Tensor<(usize,), f32, Dev, OwnedTape<f32, Dev>>;

/// The model being trained, with its AdamW optimizer and learning rate.
///
/// The three calls of a training step:
///
/// 1. [`Policy::logprobs`] — log πθ(y|x) *with* a gradient tape (gradients zeroed first);
/// 2. build a scalar loss from them with dfdx ops, call `loss.backward()`;
/// 3. [`Policy::step`] — AdamW (with gradient clipping) applies those gradients.
///
/// [`Policy::logprobs_no_grad`] scores without a tape: no gradient flows back through it.
#[derive(Debug, Clone)]
pub struct Policy {
    model: ClassroomModel,
    opt: AdamW<Dev>,
    grads: Option<Gradients<f32, Dev>>,
    /// The learning rate of every [`Policy::step`].
    pub lr: f64,
}

impl Policy {
    /// `model` with a fresh AdamW (the library's defaults: clipping at norm 1) at rate `lr`.
    pub fn new(model: ClassroomModel, lr: f64) -> Self {
        Policy {
            model,
            opt: AdamW::new(AdamWConfig::default()),
            grads: None,
            lr,
        }
    }

    /// The model as it is now.
    pub fn model(&self) -> &ClassroomModel {
        &self.model
    }

    /// Optimizer steps taken so far.
    pub fn steps(&self) -> i32 {
        self.opt.steps()
    }

    /// log πθ(completion | prompt) per row of `batch`, carrying a fresh gradient tape.
    pub fn logprobs(&mut self, batch: &TokenBatch) -> Result<TracedLogps, ModelError> {
        let mut grads = match self.grads.take() {
            Some(g) => g,
            None => self.model.alloc_grads(),
        };
        self.model.zero_grads(&mut grads);
        let dev = self.model.wte.weight.device().clone();
        self.model.sequence_logprobs(batch, tape_from(&dev, grads))
    }

    /// log πθ(completion | prompt) per row of `batch`, without a tape (no gradient flows).
    pub fn logprobs_no_grad(&self, batch: &TokenBatch) -> Result<Vec<f32>, ModelError> {
        Ok(self.model.sequence_logprobs(batch, NoneTape)?.as_vec())
    }

    /// The gradients of the last [`Policy::step`] (the checks compare them), if any.
    pub(crate) fn last_grads(&self) -> Option<&Gradients<f32, Dev>> {
        self.grads.as_ref().filter(|_| self.opt.steps() > 0)
    }

    /// One AdamW update from `grads` (what `loss.backward()` returned) at [`Policy::lr`].
    pub fn step(&mut self, grads: Gradients<f32, Dev>) -> StepInfo {
        let info = self.opt.step(&mut self.model, &grads, self.lr);
        self.grads = Some(grads);
        info
    }
}

/// A KTO batch with everything that does not change during training precomputed: token
/// batches of the examples and of their mismatched pairs (x_i, y_(i+1 mod n)), the labels, and
/// both under the frozen reference model.
#[derive(Debug, Clone, PartialEq)]
pub struct KtoBatch {
    /// The examples (x_i, y_i).
    pub tokens: TokenBatch,
    /// The mismatched pairs (x_i, y_(i+1 mod n)), for the reference point z0.
    pub kl_tokens: TokenBatch,
    /// `true` = thumbs up.
    pub labels: Vec<bool>,
    /// log πref(y_i|x_i).
    pub reference_logps: Vec<f32>,
    /// log πref(y_(i+1)|x_i).
    pub kl_reference_logps: Vec<f32>,
}

impl KtoBatch {
    /// Builds the batch from at least two examples (the mismatched pairs need a neighbour),
    /// scoring them under `reference`; `pad_id` pads the rows.
    pub fn new(
        reference: &ClassroomModel,
        examples: &[Example],
        pad_id: u32,
    ) -> Result<Self, TrainError> {
        if examples.len() < 2 {
            return Err(TrainError::BadConfig {
                name: "examples",
                value: examples.len().to_string(),
                expected: "at least 2 (the mismatched pairs need a neighbour)",
            });
        }
        let max_seq = super::MAX_SEQ;
        let pairs: Vec<_> = examples
            .iter()
            .map(|e| (e.prompt.clone(), e.completion.clone()))
            .collect();
        let refs: Vec<&Example> = examples.iter().collect();
        let tokens = TokenBatch::new(&pairs, pad_id, max_seq)?;
        let kl_tokens = TokenBatch::new(&mismatched(&refs), pad_id, max_seq)?;
        Ok(KtoBatch {
            reference_logps: reference.sequence_logprobs(&tokens, NoneTape)?.as_vec(),
            kl_reference_logps: reference.sequence_logprobs(&kl_tokens, NoneTape)?.as_vec(),
            labels: examples.iter().map(|e| e.label).collect(),
            tokens,
            kl_tokens,
        })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples (never, for a batch built by [`KtoBatch::new`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A scalar loss carrying tape `T`.
type Scalar<T> = Tensor<(), f32, Dev, T>;

/// The KTO loss of `batch` from the policy's log-probs `logps` (taped or not): z0 from the
/// mismatched pairs, scored without a tape (a constant of the step, as in TRL).
fn kto_of<T: Tape<f32, Dev>>(
    policy: &Policy,
    logps: Tensor<(usize,), f32, Dev, T>,
    batch: &KtoBatch,
    cfg: &KtoConfig,
) -> Result<(Scalar<T>, KtoMetrics), TrainError> {
    let dev = policy.model.wte.weight.device().clone();
    let n = batch.len();
    let kl_policy = policy.model.sequence_logprobs(&batch.kl_tokens, NoneTape)?;
    Ok(losses::kto(
        logps,
        &dev.tensor_from_vec(batch.reference_logps.clone(), (n,)),
        &kl_policy,
        &dev.tensor_from_vec(batch.kl_reference_logps.clone(), (n,)),
        &batch.labels,
        cfg,
    )?)
}

answer_key! {
    /// The loss and metrics of `batch` under `policy` now, without changing anything.
    pub fn kto_loss(
        policy: &Policy,
        batch: &KtoBatch,
        cfg: &KtoConfig,
    ) -> Result<KtoMetrics, TrainError> {
        let logps = policy.model.sequence_logprobs(&batch.tokens, NoneTape)?;
        Ok(kto_of(policy, logps, batch, cfg)?.1)
    }
}

answer_key! {
    /// The reference of exercise 3.3: one KTO step (the paper's loss, TRL's `KTOTrainer`) on `batch`.
    /// Returns the loss *before* the update.
    pub fn kto_step(policy: &mut Policy, batch: &KtoBatch, cfg: &KtoConfig) -> Result<f32, TrainError> {
        let logps = policy.logprobs(&batch.tokens)?;
        let (loss, metrics) = kto_of(policy, logps, batch, cfg)?;
        policy.step(loss.backward());
        Ok(metrics.loss)
    }
}

/// A small real batch from the toy world: for each of the first `n_prompts` training prompts
/// of the colour template, its good answer (thumbs up) and a wrong one (thumbs down).
pub fn demo_examples(
    tokenizer: &crate::tokenizer::Tokenizer,
    n_prompts: usize,
) -> Result<Vec<Example>, ModelError> {
    use crate::world::{self, Split, Template, UndesirableKind};
    let codec = crate::pipeline::Codec { tokenizer };
    let mut out = Vec::new();
    let prompts = world::prompts()
        .iter()
        .filter(|p| p.template == Template::Color && p.split == Split::Train)
        .take(n_prompts);
    for p in prompts {
        let good = world::good_answer(p);
        let bad = world::all_bad_answers(p, UndesirableKind::Wrong)
            .into_iter()
            .next()
            .unwrap_or_else(|| world::EVASIVE_ANSWERS[0].to_string());
        out.push(codec.example(p.question(), &good, true)?);
        out.push(codec.example(p.question(), &bad, false)?);
    }
    Ok(out)
}

/// `steps` reference KTO steps on [`demo_examples`] (4 prompts, 8 examples), from a fresh
/// classroom model that is also the frozen reference: the metrics of every step, as TRL logs
/// them. Thumbs-up rewards climb, thumbs-down rewards fall.
pub fn kto_demo(steps: usize, cfg: &KtoConfig, lr: f64) -> Result<Vec<KtoMetrics>, TrainError> {
    let tokenizer = super::tokenizer()?;
    let reference = super::new_model(7);
    let batch = KtoBatch::new(
        &reference,
        &demo_examples(&tokenizer, 4)?,
        tokenizer.eos_id(),
    )?;
    let mut policy = Policy::new(reference, lr);
    let mut out = Vec::with_capacity(steps + 1);
    for _ in 0..steps {
        out.push(kto_loss(&policy, &batch, cfg)?);
        kto_step(&mut policy, &batch, cfg)?;
    }
    out.push(kto_loss(&policy, &batch, cfg)?);
    Ok(out)
}

/// The chart of [`kto_demo`]'s metrics: loss, rewards of each class, z0.
pub fn kto_demo_chart(metrics: &[KtoMetrics]) -> crate::charts::LineChart {
    use crate::charts::{LegendPosition, LineChart, LineStyle, Rgb, Series};
    let pick = |f: &dyn Fn(&KtoMetrics) -> Option<f32>| -> Vec<(f64, f64)> {
        metrics
            .iter()
            .enumerate()
            .filter_map(|(i, m)| f(m).map(|y| (i as f64, y as f64)))
            .collect()
    };
    LineChart::new(
        "KTO steps by hand: thumbs-up rewards rise, thumbs-down rewards fall",
        "step",
        "value",
    )
    .with_series(Series::line("loss", pick(&|m| Some(m.loss)), Rgb::DARK))
    .with_series(Series::line(
        "rewards/chosen (β·r, thumbs up)",
        pick(&|m| m.rewards_chosen),
        Rgb::GREEN,
    ))
    .with_series(Series::line(
        "rewards/rejected (β·r, thumbs down)",
        pick(&|m| m.rewards_rejected),
        Rgb::RED,
    ))
    .with_series(Series::line("kl (z0)", pick(&|m| Some(m.kl)), Rgb::BLUE).dashed())
    .with_hline(0.0, Rgb::GRAY, LineStyle::Solid)
    .with_legend(LegendPosition::LowerLeft)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                prompt: vec![1 + i as u32, 2, 3],
                completion: vec![4, 5 + i as u32, 0],
                label: i % 2 == 0,
            })
            .collect()
    }

    #[test]
    fn a_batch_needs_two_examples_and_scores_them_under_the_reference() {
        let reference = super::super::new_model(1);
        assert!(matches!(
            KtoBatch::new(&reference, &examples(1), 0),
            Err(TrainError::BadConfig { .. })
        ));
        let b = KtoBatch::new(&reference, &examples(4), 0).unwrap();
        assert_eq!((b.len(), b.is_empty()), (4, false));
        assert_eq!(b.labels, vec![true, false, true, false]);
        assert_eq!(b.reference_logps.len(), 4);
        // The mismatched pairs: prompt i with completion i + 1.
        assert_eq!(b.kl_tokens.inputs[..4], [1, 2, 3, 4]);
        assert_eq!(b.kl_tokens.targets[..4], [2, 3, 4, 6]);
        assert!(b.reference_logps.iter().all(|x| x.is_finite() && *x < 0.0));
    }

    #[test]
    fn the_reference_step_lowers_the_loss_and_counts_steps() {
        let reference = super::super::new_model(2);
        let batch = KtoBatch::new(&reference, &examples(6), 0).unwrap();
        let cfg = KtoConfig::default();
        let mut policy = Policy::new(reference, 1e-2);
        let before = kto_loss(&policy, &batch, &cfg).unwrap().loss;
        assert!((before - 0.5).abs() < 1e-6, "πθ = πref gives λ/2: {before}");
        let returned = kto_step(&mut policy, &batch, &cfg).unwrap();
        assert_eq!(returned, before);
        assert_eq!(policy.steps(), 1);
        for _ in 0..4 {
            kto_step(&mut policy, &batch, &cfg).unwrap();
        }
        let after = kto_loss(&policy, &batch, &cfg).unwrap();
        assert!(after.loss < before, "{} → {}", before, after.loss);
        assert!(after.rewards_chosen.unwrap() > 0.0);
        assert!(after.rewards_rejected.unwrap() < 0.0);
    }

    #[test]
    fn the_demo_separates_the_rewards() {
        let m = kto_demo(5, &KtoConfig::default(), 1e-3).unwrap();
        assert_eq!(m.len(), 6);
        let last = &m[5];
        assert!(last.loss < m[0].loss);
        assert!(last.rewards_chosen.unwrap() > 0.0 && last.rewards_rejected.unwrap() < 0.0);
        let chart = kto_demo_chart(&m);
        assert_eq!(chart.series.len(), 4);
        assert_eq!(chart.series[0].points.len(), 6);
    }
}
