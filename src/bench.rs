//! A speed benchmark of lab 3's training steps, to set beside `bench/torch_bench.py` (the same
//! model, batch and steps in PyTorch eager).
//!
//! Both steps run through the real trainers, [`train_sft`] and [`train_kto`], on a synthetic
//! dataset of exactly one batch (so every step sees the same padded shapes). The trainers time
//! each step themselves — batch building, forwards, loss, backward, clipping and AdamW — and log
//! it as `tokens_per_s` = (completion tokens of the step) / seconds; since the bench knows those
//! token counts, it reads each step's wall time back from the log exactly.
//!
//! - **SFT step**: `token_nll` taped forward + backward + AdamW step.
//! - **KTO step**: policy `sequence_logprobs` taped on the batch, an untaped policy forward and an
//!   untaped reference forward on the mismatched (KL) pairs, [`crate::losses::kto()`], backward,
//!   AdamW. The reference log-probs of the matched pairs are computed once before the first
//!   step, as the trainer does (not timed).
//!
//! The synthetic data (shared with the PyTorch script, which builds the same shapes):
//! row i has a prompt of `prompt_len` random ids and a completion of
//! `completion_len − 2 + (i mod 5)` random ids (so completions average `completion_len`
//! tokens and rows carry some padding, as in lab 3's toy world). Every prompt has the same
//! length, so the padded length `seq_len = prompt_len + max completion − 1` is the same for the
//! batch and for its mismatched pairs, whatever order the sampler draws.
//!
//! ```no_run
//! use kto_lab::bench::{run_bench, BenchConfig};
//! let report = run_bench(&BenchConfig::default()).unwrap();
//! println!("{}", serde_json::to_string_pretty(&report).unwrap());
//! ```

use std::time::Instant;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::losses::KtoConfig;
use crate::model::{LanguageModel, Model, TokenBatch, MAX_SEQ, VOCAB};
use crate::train::{
    no_probe, train_kto, train_sft, AdamWConfig, Example, MetricsLog, Session, TrainConfig,
    TrainError,
};

/// Padding id of the synthetic batches (synthetic ids are drawn from `1..VOCAB`).
pub const PAD_ID: u32 = 0;

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Rows per step (B).
    pub batch: usize,
    /// Prompt tokens per row.
    pub prompt_len: usize,
    /// Mean completion tokens per row (rows get `completion_len − 2 ..= completion_len + 2`).
    pub completion_len: usize,
    /// Untimed steps first (allocation cache, page faults).
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Seed of the synthetic token ids and of the sampler.
    pub seed: u64,
    /// dfdx's allocation cache (`dev.enable_cache()`). Off by default, as in lab 3 (see
    /// [`crate::device::device`]): steps now run on two threads, where the cache can abort.
    pub cache: bool,
}

impl Default for BenchConfig {
    /// Lab 3's toy world: batch 32, prompts of 12 tokens, completions of ~8 (seq 21).
    fn default() -> Self {
        BenchConfig {
            batch: 32,
            prompt_len: 12,
            completion_len: 8,
            warmup: 3,
            steps: 20,
            seed: 0,
            cache: false,
        }
    }
}

impl BenchConfig {
    /// The longer setting: prompts of 16, completions of ~31 tokens (seq 48).
    pub fn long() -> Self {
        BenchConfig {
            prompt_len: 16,
            completion_len: 31,
            ..Self::default()
        }
    }

    /// Completion length of row `i`.
    pub fn completion_len_of(&self, i: usize) -> usize {
        self.completion_len - 2 + i % 5
    }

    /// The padded input length of the batch (and of its mismatched pairs).
    pub fn seq_len(&self) -> usize {
        let longest = (0..self.batch)
            .map(|i| self.completion_len_of(i))
            .max()
            .unwrap_or(0);
        self.prompt_len + longest - 1
    }

    /// Errors on a config that cannot run (batch < 2, completions < 3 tokens, no timed steps,
    /// rows longer than the context).
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |name, value: usize, expected| TrainError::BadConfig {
            name,
            value: value.to_string(),
            expected,
        };
        if self.batch < 2 {
            return Err(bad(
                "batch",
                self.batch,
                "at least 2 (KTO's mismatched pairs)",
            ));
        }
        if self.prompt_len == 0 {
            return Err(bad("prompt_len", self.prompt_len, "at least 1"));
        }
        if self.completion_len < 3 {
            return Err(bad("completion_len", self.completion_len, "at least 3"));
        }
        if self.steps == 0 {
            return Err(bad("steps", self.steps, "at least 1"));
        }
        if self.seq_len() > MAX_SEQ {
            return Err(bad(
                "prompt_len + completion_len",
                self.prompt_len + self.completion_len,
                "prompt + longest completion (completion_len + 2) must fit MAX_SEQ + 1 tokens",
            ));
        }
        Ok(())
    }

    /// The synthetic dataset: `batch` examples, alternately thumbs up and down.
    pub fn examples(&self) -> Vec<Example> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut ids =
            |n: usize| -> Vec<u32> { (0..n).map(|_| rng.gen_range(1..VOCAB as u32)).collect() };
        (0..self.batch)
            .map(|i| Example {
                prompt: ids(self.prompt_len),
                completion: ids(self.completion_len_of(i)),
                label: i % 2 == 0,
            })
            .collect()
    }
}

/// Timings of one kind of step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    /// Median wall time of a timed step, in milliseconds.
    pub median_ms: f64,
    /// Fastest timed step, in milliseconds.
    pub min_ms: f64,
    /// Token positions run through a forward pass per step, padding included (SFT: B·S;
    /// KTO: 3·B·S — policy taped, policy on the KL pairs, reference on the KL pairs).
    pub tokens_per_step: usize,
    /// Completion tokens scored per step (KTO: the batch's plus twice the KL pairs').
    pub completion_tokens_per_step: usize,
    /// `tokens_per_step` / median step time.
    pub tokens_per_s: f64,
    /// `completion_tokens_per_step` / median step time.
    pub completion_tokens_per_s: f64,
    /// Every timed step, in milliseconds, in order.
    pub step_ms: Vec<f64>,
}

impl StepTiming {
    /// Summarizes step times (ms) given the token counts of one step.
    pub fn from_steps(step_ms: Vec<f64>, tokens: usize, completion_tokens: usize) -> Self {
        let mut sorted = step_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median_ms = if n == 0 {
            f64::NAN
        } else if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let per_s = |count: usize| count as f64 / (median_ms / 1e3);
        StepTiming {
            median_ms,
            min_ms: sorted.first().copied().unwrap_or(f64::NAN),
            tokens_per_step: tokens,
            completion_tokens_per_step: completion_tokens,
            tokens_per_s: per_s(tokens),
            completion_tokens_per_s: per_s(completion_tokens),
            step_ms,
        }
    }
}

/// The bench's result; `bench/torch_bench.py` prints the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Which implementation ran (`dfdx 0.13 (cpu)`).
    pub implementation: String,
    /// The settings.
    pub config: BenchConfig,
    /// Padded input length S of every forward.
    pub seq_len: usize,
    /// Worker threads available (dfdx's GEMMs run on rayon's pool of this size).
    pub threads: usize,
    /// The SFT step.
    pub sft: StepTiming,
    /// The KTO step.
    pub kto: StepTiming,
}

fn train_config(cfg: &BenchConfig) -> TrainConfig {
    TrainConfig {
        steps: cfg.warmup + cfg.steps,
        batch_size: cfg.batch,
        lr: 1e-3,
        warmup: 0,
        adamw: AdamWConfig::default(),
        seed: cfg.seed,
    }
}

/// The timed steps' wall times (ms), read back from the trainer's log: each record's
/// `tokens_per_s` is `tokens / seconds` with the step's `tokens` known here.
fn step_ms(log: &MetricsLog, phase: &str, tokens: usize, warmup: usize) -> Vec<f64> {
    log.phase(phase)
        .skip(warmup)
        .map(|r| tokens as f64 / r.tokens_per_s * 1e3)
        .collect()
}

/// Times `warmup + steps` SFT steps, then as many KTO steps, at the default model config.
///
/// Errors on a config that cannot run (batch < 2, completions < 3 tokens, rows longer than the
/// context) or if a trainer fails.
pub fn run_bench(cfg: &BenchConfig) -> Result<BenchReport, TrainError> {
    cfg.validate()?;
    let dev = Cpu::default();
    if cfg.cache {
        dev.enable_cache();
    }
    let data = cfg.examples();
    let pairs: Vec<_> = data
        .iter()
        .map(|e| (e.prompt.clone(), e.completion.clone()))
        .collect();
    let batch = TokenBatch::new(&pairs, PAD_ID, MAX_SEQ)?;
    let positions = batch.rows * batch.seq_len;
    let completion = batch.completion_tokens();
    let train = train_config(cfg);

    let mut policy = Model::init(&dev, cfg.seed);
    let mut log = MetricsLog::quiet();
    train_sft(
        &mut policy,
        &data,
        &mut Session {
            phase: "sft",
            cfg: &train,
            pad_id: PAD_ID,
            log: &mut log,
        },
        &mut no_probe,
    )?;
    let sft = StepTiming::from_steps(
        step_ms(&log, "sft", completion, cfg.warmup),
        positions,
        completion,
    );

    // KTO from a fresh model against a frozen copy, as after SFT in lab 3.
    let mut policy = Model::init(&dev, cfg.seed);
    let reference = policy.clone();
    train_kto(
        &mut policy,
        &reference,
        &data,
        &KtoConfig::default(),
        &mut Session {
            phase: "kto",
            cfg: &train,
            pad_id: PAD_ID,
            log: &mut log,
        },
        &mut no_probe,
    )?;
    // The mismatched pairs hold the same completions, hence as many completion tokens, and the
    // same padded length (every prompt has the same length).
    let kto_completion = 3 * completion;
    let kto = StepTiming::from_steps(
        step_ms(&log, "kto", kto_completion, cfg.warmup),
        3 * positions,
        kto_completion,
    );

    Ok(BenchReport {
        implementation: "dfdx 0.13 (cpu)".into(),
        config: *cfg,
        seq_len: batch.seq_len,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sft,
        kto,
    })
}

/// Wall time of one untaped policy forward (`sequence_logprobs`) on the synthetic batch, median
/// of `steps` in ms: the cost of one reference (or KL) forward, for profiling.
pub fn time_forward(cfg: &BenchConfig) -> Result<f64, TrainError> {
    cfg.validate()?;
    let dev = Cpu::default();
    if cfg.cache {
        dev.enable_cache();
    }
    let pairs: Vec<_> = cfg
        .examples()
        .into_iter()
        .map(|e| (e.prompt, e.completion))
        .collect();
    let batch = TokenBatch::new(&pairs, PAD_ID, MAX_SEQ)?;
    let model = Model::init(&dev, cfg.seed);
    let mut ms = Vec::with_capacity(cfg.steps);
    for i in 0..cfg.warmup + cfg.steps {
        let t = Instant::now();
        let _ = model.sequence_logprobs(&batch, NoneTape)?.as_vec();
        if i >= cfg.warmup {
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(StepTiming::from_steps(ms, 0, 0).median_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_fixed_by_the_config() {
        let cfg = BenchConfig::default();
        assert_eq!(cfg.seq_len(), 21);
        assert_eq!(BenchConfig::long().seq_len(), 48);
        let data = cfg.examples();
        assert_eq!(data.len(), 32);
        let total: usize = data.iter().map(|e| e.completion.len()).sum();
        assert_eq!(total, 6 * 40 + 6 + 7); // lengths 6..=10 cycling: 6 full cycles, then 6, 7
        assert_eq!(data, cfg.examples(), "seeded");
        let pairs: Vec<_> = data
            .iter()
            .map(|e| (e.prompt.clone(), e.completion.clone()))
            .collect();
        let batch = TokenBatch::new(&pairs, PAD_ID, MAX_SEQ).unwrap();
        assert_eq!(batch.seq_len, cfg.seq_len());
    }

    #[test]
    fn a_tiny_run_reports_every_step() {
        let cfg = BenchConfig {
            batch: 4,
            warmup: 1,
            steps: 2,
            ..BenchConfig::default()
        };
        let report = run_bench(&cfg).unwrap();
        assert_eq!(report.sft.step_ms.len(), 2);
        assert_eq!(report.kto.step_ms.len(), 2);
        assert_eq!(report.sft.tokens_per_step, 4 * report.seq_len);
        assert_eq!(report.kto.tokens_per_step, 3 * 4 * report.seq_len);
        assert!(report.sft.min_ms > 0.0 && report.sft.min_ms <= report.sft.median_ms);
        assert!(serde_json::to_string(&report).unwrap().contains("\"kto\""));
    }

    #[test]
    fn impossible_configs_are_errors() {
        for cfg in [
            BenchConfig {
                batch: 1,
                ..BenchConfig::default()
            },
            BenchConfig {
                completion_len: 2,
                ..BenchConfig::default()
            },
            BenchConfig {
                prompt_len: 60,
                ..BenchConfig::default()
            },
        ] {
            assert!(run_bench(&cfg).is_err());
        }
    }
}
