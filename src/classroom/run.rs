//! Lab 3's closed loop with the classroom model, in one call, with plain-data results.

use std::fmt;
use std::time::Instant;

use crate::charts::LineChart;
use crate::feedback::{Record, Stats};
use crate::pipeline::{
    self, sample_and_judge, Codec, LoopConfig, LoopError, LoopOutcome, LoopReport, Sample,
};
use crate::tokenizer::Tokenizer;
use crate::train::{MetricsLog, StepRecord};
use crate::world::{self, Split};

use super::{new_model, ClassroomModel};

/// One of the loop's four models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The SFT model, the reference of every preference run.
    Sft,
    /// KTO on the judged feedback.
    Kto,
    /// DPO on pairs built from the same samples.
    Dpo,
    /// KTO with 90% of the thumbs up dropped (λD raised by the paper's imbalance rule).
    KtoImbalanced,
}

/// The outcome of [`train`]: the models (kept inside), the feedback, the metrics log, the
/// before/after report and how long it took.
pub struct ClassroomRun {
    outcome: LoopOutcome<ClassroomModel>,
    records: Vec<StepRecord>,
    config: LoopConfig,
    seconds: f64,
}

/// Runs lab 3's loop — SFT → sample → judge → feedback → KTO (and DPO, imbalanced KTO) →
/// evaluate — with [`LoopConfig::classroom`] on [`ClassroomModel`]. Nothing is written to disk.
/// About 10–20 s on a 2-core CPU.
pub fn train() -> Result<ClassroomRun, LoopError> {
    train_with(LoopConfig::classroom())
}

/// [`train`] with another configuration (same model).
pub fn train_with(config: LoopConfig) -> Result<ClassroomRun, LoopError> {
    let mut log = MetricsLog::quiet();
    let started = Instant::now();
    let outcome = pipeline::run_loop(new_model, &config, None, &mut log)?;
    Ok(ClassroomRun {
        outcome,
        records: log.records().to_vec(),
        config,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl ClassroomRun {
    /// The before/after table: desirable rate and KL to the reference, per model.
    pub fn report(&self) -> &LoopReport {
        &self.outcome.report
    }

    /// The judged feedback KTO trained on (TRL's unpaired format, with metadata).
    pub fn feedback(&self) -> &[Record] {
        &self.outcome.feedback
    }

    /// Counts of the feedback.
    pub fn feedback_stats(&self) -> Stats {
        Stats::of(&self.outcome.feedback)
    }

    /// Every training step's record (phases `sft`, `kto`, `dpo`, `kto-imbalanced`).
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// The configuration the run used.
    pub fn config(&self) -> &LoopConfig {
        &self.config
    }

    /// Wall-clock seconds of the whole loop.
    pub fn seconds(&self) -> f64 {
        self.seconds
    }

    /// The tokenizer the run trained.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.outcome.tokenizer
    }

    /// One of the trained models.
    pub fn model(&self, which: Which) -> &ClassroomModel {
        match which {
            Which::Sft => &self.outcome.reference,
            Which::Kto => &self.outcome.kto,
            Which::Dpo => &self.outcome.dpo,
            Which::KtoImbalanced => &self.outcome.kto_imbalanced,
        }
    }

    /// KTO's training curves (loss, rewards of each class, z0).
    pub fn kto_curves(&self) -> LineChart {
        pipeline::kto_curves(&self.records)
    }

    /// The loss of every phase.
    pub fn loss_curves(&self) -> LineChart {
        pipeline::loss_curves(&self.records)
    }

    /// Desirable rate before → after, per method.
    pub fn desirable_rates(&self) -> LineChart {
        pipeline::desirable_rates(&self.outcome.report)
    }

    /// The desirable rate during training, per method (the probe's looks every few steps).
    pub fn desirable_rate_curves(&self) -> LineChart {
        pipeline::desirable_rate_curves(&self.records)
    }

    /// log π(answer | question) under one of the models (the answer encoded as a completion,
    /// ending with `<|endoftext|>`).
    pub fn score(&self, which: Which, question: &str, answer: &str) -> Result<f32, LoopError> {
        let codec = Codec {
            tokenizer: &self.outcome.tokenizer,
        };
        let pair = [(codec.prompt(question)?, codec.completion(answer)?)];
        let batch =
            crate::model::TokenBatch::new(&pair, self.outcome.tokenizer.eos_id(), super::MAX_SEQ)?;
        Ok(super::sequence_logprobs(self.model(which), &batch)?[0])
    }

    /// `per_prompt` fresh answers of one model to each of the first `n_prompts` held-out
    /// prompts of the run's templates, judged. The same `seed` gives every model the same
    /// random stream, so the models can be compared answer by answer.
    pub fn samples(
        &self,
        which: Which,
        n_prompts: usize,
        per_prompt: usize,
        seed: u64,
    ) -> Result<Samples, LoopError> {
        let prompts: Vec<_> = world::prompts()
            .iter()
            .filter(|p| self.config.templates.contains(&p.template) && p.split == Split::Eval)
            .take(n_prompts)
            .collect();
        let codec = Codec {
            tokenizer: &self.outcome.tokenizer,
        };
        let samples = sample_and_judge(
            self.model(which),
            &codec,
            &prompts,
            per_prompt,
            &self.config.sampling,
            seed,
        )?;
        Ok(Samples { which, samples })
    }
}

impl fmt::Display for ClassroomRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Lab 3 loop (classroom config) in {:.1} s", self.seconds)?;
        writeln!(f, "Feedback: {}", self.feedback_stats())?;
        writeln!(f, "DPO pairs: {}\n", self.outcome.report.dpo_pairs)?;
        f.write_str(&self.outcome.report.markdown())
    }
}

impl ClassroomRun {
    /// evcxr's display: the summary and the before/after table.
    pub fn evcxr_display(&self) {
        super::text_display(self);
    }
}

/// Judged answers of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// The model.
    pub which: Which,
    /// The answers with the judge's verdicts.
    pub samples: Vec<Sample>,
}

impl Samples {
    /// Share of thumbs up.
    pub fn desirable_rate(&self) -> Option<f64> {
        world::desirable_rate(
            &self
                .samples
                .iter()
                .map(|s| s.verdict.clone())
                .collect::<Vec<_>>(),
        )
    }

    /// evcxr's display: one line per answer.
    pub fn evcxr_display(&self) {
        super::text_display(self);
    }
}

impl fmt::Display for Samples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self
            .desirable_rate()
            .map_or("—".to_string(), |r| format!("{:.0}%", 100.0 * r));
        writeln!(f, "{:?}: {rate} thumbs up", self.which)?;
        for s in &self.samples {
            let thumb = if s.verdict.label { "👍" } else { "👎" };
            writeln!(
                f,
                "{thumb} {} → {:?}  ({})",
                s.question, s.answer, s.verdict.reason
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short loop — just enough SFT that some answers are right, so DPO gets pairs: only the
    /// plumbing is under test here (tests/pipeline.rs checks that the classroom configuration
    /// learns).
    fn tiny_run() -> ClassroomRun {
        let mut cfg = LoopConfig::classroom();
        cfg.sft.steps = 150;
        cfg.kto.steps = 2;
        cfg.dpo.steps = 1;
        cfg.feedback_samples = 8;
        cfg.eval_samples = 1;
        train_with(cfg).unwrap()
    }

    #[test]
    fn a_run_hands_back_plain_data() {
        let run = tiny_run();
        assert_eq!(run.report().rows.len(), 4);
        assert_eq!(run.feedback().len(), run.feedback_stats().total);
        assert_eq!(
            run.records().iter().filter(|r| r.phase == "sft").count(),
            150
        );
        assert!(run.seconds() > 0.0);
        assert!(run.to_string().contains("| KTO |"), "{run}");
        let samples = run.samples(Which::Kto, 2, 2, 1).unwrap();
        assert_eq!(samples.samples.len(), 4);
        assert!(samples.to_string().starts_with("Kto: "), "{samples}");
        // The same seed gives the same answers.
        assert_eq!(samples, run.samples(Which::Kto, 2, 2, 1).unwrap());
        let lp = run
            .score(Which::Sft, "What color is the sky?", "The sky is blue.")
            .unwrap();
        assert!(lp.is_finite() && lp < 0.0);
        for chart in [
            run.kto_curves(),
            run.loss_curves(),
            run.desirable_rates(),
            run.desirable_rate_curves(),
        ] {
            assert!(!chart.series.is_empty());
        }
        assert_eq!(run.tokenizer().vocab_size(), crate::model::VOCAB);
        assert_eq!(run.config().sft.steps, 150);
        let _ = run.model(Which::Dpo);
        let _ = run.model(Which::KtoImbalanced);
    }
}
