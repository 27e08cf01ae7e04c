//! Generating text: run the model, pick a next token, append, repeat.
//!
//! - **Greedy** (`temperature = 0`): always the most likely token. Deterministic, often loops.
//! - **Temperature** T > 0: sample from softmax(logits / T). T < 1 sharpens, T > 1 flattens.
//! - **Top-k**: before sampling, keep only the k most likely tokens (cuts the long tail of
//!   unlikely tokens that makes tiny models babble).
//!
//! Prompts are generated together in one padded batch: with right-padding and a causal mask,
//! each row's logits at its own last token are unaffected by the padding after it. There is no
//! KV cache — each step re-reads the (at most MAX_SEQ) context, which is cheap at this size.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::error::ModelError;
use super::lm::LanguageModel;

/// How to pick tokens, and how many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleConfig {
    /// 0 = greedy (argmax); otherwise the softmax temperature.
    pub temperature: f32,
    /// Keep only the k most likely tokens before sampling; `None` keeps all. Ignored by greedy.
    pub top_k: Option<usize>,
    /// Stop after this many new tokens even without an end-of-text token.
    pub max_new_tokens: usize,
    /// Seed of the random stream; prompt i draws from stream i of this seed, so a prompt's
    /// sample does not depend on the other prompts in the batch.
    pub seed: u64,
}

impl SampleConfig {
    /// Greedy decoding of at most `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            max_new_tokens,
            seed: 0,
        }
    }

    fn validate(&self) -> Result<(), ModelError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(ModelError::BadParameter {
                name: "temperature",
                value: self.temperature.to_string(),
                expected: "a finite number ≥ 0 (0 = greedy)",
            });
        }
        if self.top_k == Some(0) {
            return Err(ModelError::BadParameter {
                name: "top_k",
                value: "0".into(),
                expected: "at least 1, or None for no limit",
            });
        }
        Ok(())
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// Picks the next token from one position's logits according to `cfg`.
pub fn pick_token(logits: &[f32], cfg: &SampleConfig, rng: &mut impl Rng) -> usize {
    if cfg.temperature == 0.0 {
        return argmax(logits);
    }
    // Top-k: everything below the k-th largest logit is dropped (ties at the threshold stay).
    let threshold = match cfg.top_k {
        Some(k) if k < logits.len() => {
            let mut sorted = logits.to_vec();
            sorted.sort_by(|a, b| b.total_cmp(a));
            sorted[k - 1]
        }
        _ => f32::NEG_INFINITY,
    };
    let max = logits[argmax(logits)] as f64;
    let t = cfg.temperature as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&x| {
            if x >= threshold {
                ((x as f64 - max) / t).exp()
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    argmax(logits) // only reached through rounding at the very end
}

/// [`LanguageModel::generate`]: all prompts in one padded batch, one token per step.
pub(super) fn generate<D: Device<f32>, M: LanguageModel<D>, P: AsRef<[u32]>>(
    model: &M,
    prompts: &[P],
    eos_id: u32,
    cfg: &SampleConfig,
) -> Result<Vec<Vec<u32>>, ModelError> {
    cfg.validate()?;
    let (vocab, context) = (model.vocab(), model.max_seq());
    for &id in prompts.iter().flat_map(|p| p.as_ref()).chain([&eos_id]) {
        if id as usize >= vocab {
            return Err(ModelError::TokenOutOfRange {
                id: id as usize,
                vocab,
            });
        }
    }
    let mut seqs: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| match p.as_ref() {
            [] => vec![eos_id],
            p => p.to_vec(),
        })
        .collect();
    let mut rngs: Vec<ChaCha8Rng> = (0..seqs.len())
        .map(|i| {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            rng.set_stream(i as u64);
            rng
        })
        .collect();
    let mut out = vec![Vec::new(); seqs.len()];
    let mut done = vec![false; seqs.len()];
    let dev = model.device();

    for _ in 0..cfg.max_new_tokens {
        let active: Vec<usize> = (0..seqs.len()).filter(|&i| !done[i]).collect();
        if active.is_empty() {
            break;
        }
        // The last ≤ `context` tokens of each active row, right-padded to a common length.
        let contexts: Vec<&[u32]> = active
            .iter()
            .map(|&i| &seqs[i][seqs[i].len().saturating_sub(context)..])
            .collect();
        let lens: Vec<usize> = contexts.iter().map(|c| c.len()).collect();
        let s = lens.iter().copied().max().unwrap_or(1);
        let mut ids = vec![eos_id as usize; active.len() * s];
        for (j, c) in contexts.iter().enumerate() {
            for (t, &id) in c.iter().enumerate() {
                ids[j * s + t] = id as usize;
            }
        }
        // Only each row's last position needs logits.
        let last: Vec<usize> = (0..active.len()).map(|j| j * s + lens[j] - 1).collect();
        let logits = dev
            .try_tensor_from_vec(ids, (active.len(), s))
            .and_then(|ids| model.logits_at(ids, &last))
            .map_err(super::error::device_err)?;
        for (j, &i) in active.iter().enumerate() {
            let row = &logits[j * vocab..(j + 1) * vocab];
            let token = pick_token(row, cfg, &mut rngs[i]) as u32;
            if token == eos_id {
                done[i] = true;
            } else {
                out[i].push(token);
                seqs[i].push(token);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_never_picks_outside_the_k_best() {
        let logits = [0.0f32, 3.0, 1.0, 2.9, -1.0];
        let cfg = SampleConfig {
            temperature: 5.0,
            top_k: Some(2),
            max_new_tokens: 1,
            seed: 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut seen = [0usize; 5];
        for _ in 0..500 {
            seen[pick_token(&logits, &cfg, &mut rng)] += 1;
        }
        assert_eq!(seen[0] + seen[2] + seen[4], 0);
        assert!(seen[1] > 100 && seen[3] > 100, "{seen:?}");
        assert_eq!(argmax(&logits), 1);
        assert_eq!(pick_token(&logits, &SampleConfig::greedy(1), &mut rng), 1);
    }
}
