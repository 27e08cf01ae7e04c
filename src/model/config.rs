//! The model's size, fixed at compile time.
//!
//! dfdx checks tensor widths in the type system (`Const<128>`), so the widths are `const`s, not a
//! runtime config: a shape mistake is a compile error, not a crash in the middle of training.
//! Batch size and sequence length stay runtime (`usize`).
//!
//! The default config is chosen to train on a 2-core laptop CPU in about a minute:
//!
//! | constant | value | why |
//! |---|---|---|
//! | [`VOCAB`] | 512 | 256 bytes + `<|endoftext|>` + 255 BPE merges: enough for a small English corpus |
//! | [`D_MODEL`] | 128 | width of the residual stream |
//! | [`N_HEADS`] | 4 | head size 32 |
//! | [`N_LAYERS`] | 2 | depth: enough to memorize the toy world's 75 facts; each layer costs ~40% of a step |
//! | [`MAX_SEQ`] | 64 | the block size: prompt + completion must fit (longer prompts are cut from the left) |
//! | [`D_FF`] | 512 | 4 × D_MODEL, as in GPT-2 |
//!
//! Parameter count ([`DEFAULT_PARAMS`] = **470,528**, tied LM head counted once):
//!
//! ```text
//! token embedding   VOCAB·D_MODEL              = 512·128          =  65,536
//! position emb.     MAX_SEQ·D_MODEL            =  64·128          =   8,192
//! per block         2 LayerNorms               = 2·2·128          =     512
//!                   q, k, v, out projections   = 4·(128·128+128)  =  66,048
//!                   MLP up + down              = 128·512+512 + 512·128+128 = 131,712
//!                                                                   ─────────
//!                                                                   198,272  × 2 layers = 396,544
//! final LayerNorm   2·128                                          =     256
//! LM head           tied to the token embedding                    =       0
//! ```

use super::gpt::Gpt;
use super::lora::LoraGpt;
use crate::device::Dev;

/// Vocabulary size: the number of rows of the token embedding (and of logits per position).
pub const VOCAB: usize = 512;
/// Width of the residual stream (embedding size).
pub const D_MODEL: usize = 128;
/// Number of attention heads; each head has `D_MODEL / N_HEADS` dimensions.
pub const N_HEADS: usize = 4;
/// Number of transformer blocks.
pub const N_LAYERS: usize = 2;
/// Context length (block size): the most tokens the model reads at once.
pub const MAX_SEQ: usize = 64;
/// Hidden width of the MLP: 4 × D_MODEL, as in GPT-2 (a separate constant because stable Rust
/// cannot compute `4 * D_MODEL` inside a type).
pub const D_FF: usize = 4 * D_MODEL;
/// Number of trainable parameters of the default model (see the table above).
pub const DEFAULT_PARAMS: usize = 470_528;

/// A model's compile-time sizes as plain numbers ([`Gpt::SIZES`]), for what reads them at run
/// time (the export's `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Vocabulary size (`V`).
    pub vocab: usize,
    /// Residual-stream width (`M`).
    pub width: usize,
    /// Attention heads (`H`).
    pub heads: usize,
    /// MLP hidden width (`F`).
    pub mlp: usize,
    /// Blocks (`L`).
    pub layers: usize,
    /// Context length (`S`).
    pub context: usize,
}

/// The default lab-3 model on the default device.
pub type Model<D = Dev> = Gpt<VOCAB, D_MODEL, N_HEADS, D_FF, N_LAYERS, MAX_SEQ, f32, D>;

/// The default model with rank-`R` LoRA adapters ([`crate::model::lora`]).
pub type LoraModel<const R: usize, D = Dev> =
    LoraGpt<VOCAB, D_MODEL, N_HEADS, D_FF, N_LAYERS, MAX_SEQ, R, D>;

/// A tiny instantiation of the same architecture, for fast tests and gradient checks
/// (vocab 300 still fits a byte-level tokenizer: 256 bytes + EOS + 43 merges).
pub mod tiny {
    use super::*;

    /// Tiny vocabulary.
    pub const VOCAB: usize = 300;
    /// Tiny width.
    pub const D_MODEL: usize = 16;
    /// Two heads of 8.
    pub const N_HEADS: usize = 2;
    /// Two blocks, so residual scaling and block stacking are exercised.
    pub const N_LAYERS: usize = 2;
    /// Short context.
    pub const MAX_SEQ: usize = 16;
    /// 4 × D_MODEL.
    pub const D_FF: usize = 4 * D_MODEL;

    /// The tiny model.
    pub type TinyModel<D = Dev> = Gpt<VOCAB, D_MODEL, N_HEADS, D_FF, N_LAYERS, MAX_SEQ, f32, D>;

    /// The tiny model with rank-`R` LoRA adapters.
    pub type TinyLora<const R: usize, D = Dev> =
        LoraGpt<VOCAB, D_MODEL, N_HEADS, D_FF, N_LAYERS, MAX_SEQ, R, D>;
}
