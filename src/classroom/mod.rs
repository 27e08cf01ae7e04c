//! What the lab notebooks call: concrete, non-generic entry points into the library.
//!
//! A notebook cell is compiled by evcxr each time it runs, so cells must stay cheap to compile:
//! every generic dfdx model function a cell touches would be monomorphized (and optimized) again
//! inside that cell. This module does that work once, in the library, for one concrete model —
//! [`ClassroomModel`] — and hands back plain data (token ids, `f32`s, reports, charts):
//!
//! | item | what it gives a notebook | lab |
//! |---|---|---|
//! | [`ClassroomModel`], [`new_model`], [`model_card`] | the lab 3 model (one layer, width 32), its parameter count by part | 3 |
//! | [`tokenizer`], [`encode`] | the BPE tokenizer trained on the toy world, a prompt + completion as tokens | 3 |
//! | [`token_logprobs`], [`masked_sequence_sum`], [`sequence_logprobs`] | per-token log-probs (unmasked), the masked per-sequence sum, log π(y\|x) | 3 |
//! | [`Policy`], [`KtoBatch`], [`kto_step`], [`kto_loss`] | one KTO step by hand: a policy with its optimizer, a batch with its reference log-probs | 3 |
//! | [`train`], [`ClassroomRun`] | the closed loop (SFT → sample → judge → feedback → KTO) with [`LoopConfig::classroom`](crate::pipeline::LoopConfig::classroom) | 3 |
//! | [`rating_model`], [`RatingSession`], [`VotesRun`] | the answers a student rates, KTO on their votes, the move toward their taste | 4 |
//! | [`scratch_dir`] | a fresh folder for the files a notebook writes | 3, 4 |
//!
//! ```
//! use kto_lab::classroom;
//! let card = classroom::model_card();
//! assert_eq!(card.total, classroom::CLASSROOM_PARAMS);
//! ```

mod policy;
mod rating;
mod run;

pub use policy::{demo_examples, kto_demo, kto_demo_chart, KtoBatch, Policy, TracedLogps};
// Exercise 3.3's answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use policy::{kto_loss, kto_step};
#[cfg(feature = "exam")]
pub(crate) use policy::{kto_loss, kto_step};
pub use rating::{
    rated_votes, rating_model, start_rating_page, unattended, RatedVotes, RatingPage,
    RatingSession, VotesRun, CLASSROOM_DESCRIPTION, RECORDED_VOTES,
};
pub use run::{train, train_with, ClassroomRun, Samples, Which};

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use dfdx::prelude::*;
use serde::Serialize;

use crate::device::Dev;
use crate::model::{Gpt, LanguageModel, ModelError, TokenBatch, VOCAB};
use crate::pipeline::Codec;
use crate::tokenizer::Tokenizer;
use crate::world;

/// Width of the classroom model's residual stream.
pub const D_MODEL: usize = 32;
/// Attention heads (head size 16).
pub const N_HEADS: usize = 2;
/// MLP width, 4 × [`D_MODEL`].
pub const D_FF: usize = 4 * D_MODEL;
/// Transformer blocks.
pub const N_LAYERS: usize = 1;
/// Context length: the toy world's prompt + answer fit in 48 tokens.
pub const MAX_SEQ: usize = 48;

/// Lab 3's classroom model: GPT-2's architecture and the default vocabulary ([`VOCAB`] = 512),
/// but one layer of width 32 — small enough that the whole loop trains in seconds on a laptop.
pub type ClassroomModel = Gpt<VOCAB, D_MODEL, N_HEADS, D_FF, N_LAYERS, MAX_SEQ, f32, Dev>;

/// Trainable parameters of [`ClassroomModel`] (the tied LM head counted once):
/// 512·32 + 48·32 + (2·2·32 + 4·(32·32 + 32) + 32·128 + 128 + 128·32 + 32) + 2·32 = 30,688.
pub const CLASSROOM_PARAMS: usize = 30_688;

/// A freshly initialized classroom model (GPT-2 init; the same seed gives the same weights).
pub fn new_model(seed: u64) -> ClassroomModel {
    ClassroomModel::init(&crate::device::device(), seed)
}

/// The byte-level BPE tokenizer trained on the toy world's corpus ([`world::tokenizer_corpus`]),
/// with the model's vocabulary size. Deterministic: the same tokenizer every time.
pub fn tokenizer() -> Result<Tokenizer, ModelError> {
    Ok(Tokenizer::train(&world::tokenizer_corpus(), VOCAB)?)
}

/// A prompt and its completion as the model sees them (see [`Codec`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Encoded {
    /// The prompt text, `"Q: {question}\nA:"`.
    pub prompt_text: String,
    /// The completion text, `" {answer}"` (then `<|endoftext|>`).
    pub completion_text: String,
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Completion token ids, ending with the EOS id.
    pub completion: Vec<u32>,
    /// The prompt's tokens as strings (byte-level: `Ġ` is a space, `Ċ` a newline).
    pub prompt_tokens: Vec<String>,
    /// The completion's tokens as strings.
    pub completion_tokens: Vec<String>,
}

/// Encodes `question` and `answer` the way lab 3 trains and samples.
pub fn encode(tokenizer: &Tokenizer, question: &str, answer: &str) -> Result<Encoded, ModelError> {
    let codec = Codec { tokenizer };
    let prompt = codec.prompt(question)?;
    let completion = codec.completion(answer)?;
    Ok(Encoded {
        prompt_text: world::lm_text(question, None),
        completion_text: format!(" {answer}"),
        prompt_tokens: tokenizer.tokens(&prompt),
        completion_tokens: tokenizer.tokens(&completion),
        prompt,
        completion,
    })
}

impl fmt::Display for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "prompt     {:?} → {} tokens",
            self.prompt_text,
            self.prompt.len()
        )?;
        writeln!(f, "  tokens   {}", self.prompt_tokens.join(" | "))?;
        writeln!(f, "  ids      {:?}", self.prompt)?;
        writeln!(
            f,
            "completion {:?} + <|endoftext|> → {} tokens",
            self.completion_text,
            self.completion.len()
        )?;
        writeln!(f, "  tokens   {}", self.completion_tokens.join(" | "))?;
        writeln!(f, "  ids      {:?}", self.completion)
    }
}

impl Encoded {
    /// evcxr's display: the text above.
    pub fn evcxr_display(&self) {
        text_display(self);
    }
}

/// The classroom model's sizes and parameter count, part by part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCard {
    /// `(part, shape, parameters)` rows.
    pub parts: Vec<(String, String, usize)>,
    /// All trainable parameters (the tied LM head counted once).
    pub total: usize,
}

/// Counts the classroom model's parameters with dfdx, part by part.
pub fn model_card() -> ModelCard {
    let m = new_model(0);
    let block = &m.h.modules[0];
    let mut parts = vec![
        (
            "token embedding wte (also the LM head)".to_string(),
            format!("[{VOCAB}, {D_MODEL}]"),
            m.wte.num_trainable_params(),
        ),
        (
            "position embedding wpe".to_string(),
            format!("[{MAX_SEQ}, {D_MODEL}]"),
            m.wpe.num_trainable_params(),
        ),
    ];
    for i in 0..N_LAYERS {
        parts.push((
            format!("block {i}: 2 LayerNorms, attention q/k/v/out, MLP"),
            format!("{N_HEADS} heads, MLP {D_MODEL}→{D_FF}→{D_MODEL}"),
            block.num_trainable_params(),
        ));
    }
    parts.push((
        "final LayerNorm ln_f".to_string(),
        format!("[{D_MODEL}] × 2"),
        m.ln_f.num_trainable_params(),
    ));
    ModelCard {
        total: m.num_trainable_params(),
        parts,
    }
}

impl fmt::Display for ModelCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.parts.iter().map(|p| p.0.len()).max().unwrap_or(0);
        for (part, shape, n) in &self.parts {
            writeln!(f, "{part:<width$}  {shape:<28} {n:>7}")?;
        }
        writeln!(f, "{:<width$}  {:<28} {:>7}", "total", "", self.total)
    }
}

impl ModelCard {
    /// evcxr's display: the table above.
    pub fn evcxr_display(&self) {
        text_display(self);
    }
}

/// Per-token log-probs of a batch *before* masking, as plain data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenLogprobs {
    /// Rows (B).
    pub rows: usize,
    /// Positions per row (S).
    pub seq_len: usize,
    /// `[B, S]` row-major: log π(targets[r, t] | inputs[r, ..=t]) at every position — prompt
    /// and padding included.
    pub logps: Vec<f32>,
    /// `[B, S]`: 1 where the target is a completion token, else 0 (the batch's mask).
    pub mask: Vec<f32>,
}

impl TokenLogprobs {
    /// Row `r`'s log-probs.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.logps[r * self.seq_len..(r + 1) * self.seq_len]
    }

    /// Row `r`'s mask.
    pub fn mask_row(&self, r: usize) -> &[f32] {
        &self.mask[r * self.seq_len..(r + 1) * self.seq_len]
    }
}

/// Every position's log-prob of its target under `model`, prompt and padding *not* masked
/// (what exercise 3.2 starts from). No gradient.
pub fn token_logprobs(
    model: &ClassroomModel,
    batch: &TokenBatch,
) -> Result<TokenLogprobs, ModelError> {
    let mut unmasked = batch.clone();
    unmasked.mask.fill(1.0);
    let logps = model.token_logprobs(&unmasked, NoneTape)?;
    Ok(TokenLogprobs {
        rows: batch.rows,
        seq_len: batch.seq_len,
        logps: if batch.rows * batch.seq_len == 0 {
            Vec::new()
        } else {
            logps.as_vec()
        },
        mask: batch.mask.clone(),
    })
}

/// log π(completion | prompt) per row of `batch` under `model` (prompt and padding masked, as
/// every preference loss uses it). No gradient.
pub fn sequence_logprobs(
    model: &ClassroomModel,
    batch: &TokenBatch,
) -> Result<Vec<f32>, ModelError> {
    Ok(model.sequence_logprobs(batch, NoneTape)?.as_vec())
}

answer_key! {
    /// The reference of exercise 3.2: log π(y|x) per row = Σ_t mask[r, t] · logps[r, t], `(B,)`.
    /// The gradient tape, if any, flows through.
    pub fn masked_sequence_sum<T: Tape<f32, Dev>>(
        token_logps: Tensor<(usize, usize), f32, Dev, T>,
        mask: Tensor<(usize, usize), f32, Dev>,
    ) -> Tensor<(usize,), f32, Dev, T> {
        (token_logps * mask).sum::<(usize,), Axis<1>>()
    }
}

/// A new, empty folder for the files a notebook writes, under the system's temp folder:
/// `<tmp>/kto-lab-<name>-<pid>-<n>`. Never an existing folder, so nothing is overwritten.
pub fn scratch_dir(name: &str) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("kto-lab-{name}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Prints `value` as evcxr's plain-text rich output.
pub(crate) fn text_display(value: &impl fmt::Display) {
    println!("EVCXR_BEGIN_CONTENT text/plain\n{value}\nEVCXR_END_CONTENT");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_adds_up() {
        let card = model_card();
        assert_eq!(card.total, CLASSROOM_PARAMS);
        assert_eq!(card.parts.iter().map(|p| p.2).sum::<usize>(), card.total);
        assert!(card.to_string().contains("30688"));
    }

    #[test]
    fn scratch_dirs_are_fresh() {
        let a = scratch_dir("test").unwrap();
        let b = scratch_dir("test").unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        std::fs::remove_dir(a).unwrap();
        std::fs::remove_dir(b).unwrap();
    }
}
