//! Lab 3's language model: a GPT-2-architecture decoder at toy size, in dfdx.
//!
//! | file | what it holds |
//! |---|---|
//! | [`config`] | the compile-time sizes (one default config, one tiny one for tests) |
//! | [`hidden`] | the residual stream's shape, `[batch·seq, width]` |
//! | [`init`] | seeded GPT-2 initialization |
//! | [`attention`] | causal multi-head self-attention and its mask |
//! | [`mlp`] | Linear → GELU → Linear |
//! | [`fused`] | CPU fast paths: linear layers, the attention core, LayerNorm, GELU, log-softmax + pick as single host loops with hand-written backward passes; a SIMD-friendly `exp` |
//! | [`block`] | a pre-LayerNorm transformer block |
//! | [`gpt`] | embeddings, blocks, tied LM head |
//! | `lm` | [`LanguageModel`]: the two views of a forward pass each model provides, and what is written once over them |
//! | [`checkpoint`] | a model's tensors in and out of a `.safetensors` file |
//! | [`export`] | a Hugging Face GPT-2 checkpoint (`config.json`, `model.safetensors`, tokenizer) |
//! | [`logprobs`] | padded prompt/completion batches; log π(y\|x) and the SFT loss |
//! | [`lora`] | low-rank adapters on a frozen model (LoRA), the reference model for free, merging |
//! | [`sample`] | greedy / temperature / top-k generation |
//!
//! dfdx's types live here, in [`crate::losses`], [`crate::train`] (the optimizer and the
//! trainers), [`crate::device`], and in the notebook-facing [`crate::classroom`] and
//! [`crate::checks`] (the exercises are written in dfdx). [`crate::pipeline`] only names dfdx's
//! `Device` trait in its bounds; the world, feedback, prospect, charts and tokenizer modules see
//! token ids, `f32`s and errors.

pub mod attention;
pub mod block;
pub mod checkpoint;
pub mod config;
mod error;
pub mod export;
pub mod fused;
pub mod gpt;
pub mod hidden;
pub mod init;
mod lm;
pub mod logprobs;
pub mod lora;
pub mod mlp;
pub mod sample;

pub use config::{LoraModel, Model, Sizes, D_FF, D_MODEL, MAX_SEQ, N_HEADS, N_LAYERS, VOCAB};
pub(crate) use error::device_err;
pub use error::ModelError;
pub use export::{export_hf, export_peft};
pub use gpt::{tape_from, Gpt, Logits};
pub use hidden::Hidden;
pub use lm::{Ids, LanguageModel};
pub use logprobs::{TokenBatch, Truncation};
pub use lora::{LoraConfig, LoraGpt};
pub use sample::SampleConfig;
