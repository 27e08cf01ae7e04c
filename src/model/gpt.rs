//! The whole language model: GPT-2's architecture at toy size (nanoGPT's `model.py`).
//!
//! ```text
//! ids [b, s] ─► token embedding + position embedding ─► N_LAYERS blocks ─► LayerNorm
//!            ─► h · Wteᵀ = logits [b, s, VOCAB]     (row t scores the token at t + 1)
//! ```
//!
//! The LM head is *tied* to the token embedding: the same matrix Wte turns ids into vectors on
//! the way in and vectors into scores on the way out. It saves VOCAB·D_MODEL parameters and
//! makes "which token is this vector closest to" the prediction rule, as in GPT-2.

use std::path::Path;

use dfdx::nn::modules::{Embedding, LayerNorm1D, Repeated};
use dfdx::prelude::*;

use super::attention::causal_mask;
use super::block::Block;
use super::config::Sizes;
use super::error::{device_err, ModelError};
use super::fused::Weights;
use super::init::{Init, INIT_STD};
use super::lm::{Ids, LanguageModel};
use super::lora::Adapters;

/// Logits for every position: `[batch, seq, V]`, carrying the input's tape.
pub type Logits<const V: usize, D, T = NoneTape> = Tensor<(usize, usize, Const<V>), f32, D, T>;

/// Logits for some positions only, one row each: `[n, V]`.
pub type RowLogits<const V: usize, D, T = NoneTape> = Tensor<(usize, Const<V>), f32, D, T>;

/// A GPT-2-style decoder-only language model.
///
/// Const parameters: vocabulary `V`, width `M`, heads `H`, MLP width `F`, layers `L`, context
/// `S`. Use the [`Model`](super::Model) alias for the default config.
#[derive(Debug, Clone)]
pub struct Gpt<
    const V: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    const L: usize,
    const S: usize,
    E: Dtype,
    D: Storage<E>,
> {
    /// Token embedding Wte `[V, M]`, also the LM head (tied).
    pub wte: Embedding<V, M, E, D>,
    /// Learned position embedding Wpe `[S, M]`.
    pub wpe: Embedding<S, M, E, D>,
    /// The transformer blocks (`h.0`, `h.1`, … in the weight file, as in GPT-2).
    pub h: Repeated<Block<M, H, F, E, D>, L>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm1D<M, E, D>,
}

impl<
        const V: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        const L: usize,
        const S: usize,
        D: Device<f32>,
    > Gpt<V, M, H, F, L, S, f32, D>
{
    /// Vocabulary size (number of logits per position).
    pub const VOCAB: usize = V;
    /// Context length: the most tokens one forward pass reads.
    pub const MAX_SEQ: usize = S;
    /// All the sizes, as plain numbers.
    pub const SIZES: Sizes = Sizes {
        vocab: V,
        width: M,
        heads: H,
        mlp: F,
        layers: L,
        context: S,
    };

    /// A freshly initialized model (GPT-2 init, see [`super::init`]); the same seed always gives
    /// the same weights.
    pub fn init(dev: &D, seed: u64) -> Self {
        let mut init = Init::new(dev, seed);
        let proj_std = INIT_STD / ((2 * L) as f32).sqrt();
        Self {
            wte: init.embedding(),
            wpe: init.embedding(),
            h: Repeated {
                modules: (0..L).map(|_| Block::init(&mut init, proj_std)).collect(),
            },
            ln_f: init.layer_norm(),
        }
    }

    /// Logits for a batch of token ids `[batch, seq]`.
    ///
    /// Put a tape on `ids` to train (`ids.traced(grads)`), leave it off to evaluate. Errors on an
    /// empty batch, `seq` > `S`, or an id ≥ `V` (checked on the host before any tensor work).
    pub fn try_forward<T: Tape<f32, D>>(
        &self,
        ids: Ids<D, T>,
    ) -> Result<Logits<V, D, T>, ModelError> {
        let (b, s) = *ids.shape();
        self.check_ids(b, s, &ids.as_vec())?;
        self.forward_checked(ids).map_err(device_err)
    }

    fn forward_checked<T: Tape<f32, D>>(&self, ids: Ids<D, T>) -> Result<Logits<V, D, T>, D::Err> {
        let (b, s) = *ids.shape();
        self.head::<0, T>(self.hidden::<0, T>(ids, None)?, None)?
            .try_reshape_like(&(b, s, Const::<V>))
    }

    /// The final hidden states `[batch·seq, M]` (after `ln_f`): everything but the LM head.
    /// `ids` must have been checked (non-empty, `seq` ≤ `S`, ids < `V`).
    ///
    /// With `adapters` (LoRA), every block adds its adapters' corrections and the model's own
    /// weights are frozen: the embeddings are looked up without a tape (nothing to learn there)
    /// and the tape joins the residual stream after them.
    pub(crate) fn hidden<const R: usize, T: Tape<f32, D>>(
        &self,
        ids: Ids<D, T>,
        adapters: Option<Adapters<'_, M, R, D>>,
    ) -> Result<super::Hidden<M, D, T>, D::Err> {
        let mask = causal_mask(ids.device(), ids.shape().1);
        let mut x = match adapters {
            None => self.embed(ids)?,
            Some(_) => {
                let (ids, tape) = ids.split_tape();
                self.embed(ids)?.put_tape(tape)
            }
        };
        for (i, block) in self.h.modules.iter().enumerate() {
            let lora = adapters.map(|a| (&a.blocks[i], a.scale));
            x = block.try_forward(x, &mask, lora)?;
        }
        super::fused::layer_norm(&self.ln_f, x)
    }

    /// Token plus position embeddings of `ids`: the residual stream `[batch·seq, M]` that
    /// enters the first block.
    fn embed<T: Tape<f32, D>>(&self, ids: Ids<D, T>) -> Result<super::Hidden<M, D, T>, D::Err> {
        let (b, s) = *ids.shape();
        let dev = ids.device().clone();

        // Token vectors [b, s, M] (the tape moves from `ids` onto them) plus position vectors
        // [s, M], the same for every row, broadcast over the batch.
        let tok = self.wte.try_forward(ids)?;
        let positions = dev.try_tensor_from_vec((0..s).collect(), (s,))?;
        let pos = self
            .wpe
            .weight
            .retaped::<T>()
            .try_gather(positions)?
            .try_broadcast_like::<_, Axis<0>>(&(b, s, Const::<M>))?;
        tok.try_add(pos)?.try_reshape_like(&(b * s, Const::<M>))
    }

    /// The tied LM head: hidden states `[n, M]` → logits `[n, V]` (`x · Wteᵀ`). The gradient of
    /// Wte collects both of its uses. Any rows of [`Gpt::hidden`] may be passed — the log-prob
    /// and sampling paths pass only the positions they score.
    /// With `adapters` (LoRA) Wte is frozen: no gradient for it.
    pub(crate) fn head<const R: usize, T: Tape<f32, D>>(
        &self,
        x: super::Hidden<M, D, T>,
        adapters: Option<Adapters<'_, M, R, D>>,
    ) -> Result<RowLogits<V, D, T>, D::Err> {
        let weights = match adapters {
            None => Weights::Train,
            Some(_) => Weights::Frozen,
        };
        super::fused::matmul_transposed(x, &self.wte.weight, weights)
    }

    /// The logits at flat positions of `ids` (row `i / seq`, column `i % seq`): the hidden
    /// states there, through the LM head. `ids` must have been checked.
    pub(crate) fn logits_rows<const R: usize, T: Tape<f32, D>>(
        &self,
        ids: Ids<D, T>,
        positions: &[usize],
        adapters: Option<Adapters<'_, M, R, D>>,
    ) -> Result<RowLogits<V, D, T>, D::Err> {
        let at = ids
            .device()
            .try_tensor_from_vec(positions.to_vec(), (positions.len(),))?;
        self.head(self.hidden(ids, adapters)?.try_gather(at)?, adapters)
    }

    /// Saves the weights as `.safetensors` (names as in GPT-2: `wte.weight`, `h.0.attn.q.weight`…).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        super::checkpoint::save(self, path.as_ref())
    }

    /// Loads weights saved by [`Gpt::save`] into this model (its shapes must match). On error
    /// the model is left unchanged.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        super::checkpoint::load(self, path.as_ref())
    }

    /// A model on `dev` with the weights of a `.safetensors` file.
    pub fn from_file(dev: &D, path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let mut model = Self::init(dev, 0);
        model.load(path)?;
        Ok(model)
    }
}

impl<
        const V: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        const L: usize,
        const S: usize,
        D: Device<f32>,
    > TensorCollection<f32, D> for Gpt<V, M, H, F, L, S, f32, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Gpt<V, M, H, F, L, S, E2, D2>;

    fn iter_tensors<Vis: ModuleVisitor<Self, f32, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        visitor.visit_fields(
            (
                Self::module("wte", |s| &s.wte, |s| &mut s.wte),
                Self::module("wpe", |s| &s.wpe, |s| &mut s.wpe),
                Self::module("h", |s| &s.h, |s| &mut s.h),
                Self::module("ln_f", |s| &s.ln_f, |s| &mut s.ln_f),
            ),
            |(wte, wpe, h, ln_f)| Gpt { wte, wpe, h, ln_f },
        )
    }
}

/// The two views of a forward pass that the rest of [`LanguageModel`] is written in.
impl<
        const V: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        const L: usize,
        const S: usize,
        D: Device<f32>,
    > LanguageModel<D> for Gpt<V, M, H, F, L, S, f32, D>
{
    fn vocab(&self) -> usize {
        V
    }

    fn max_seq(&self) -> usize {
        S
    }

    fn device(&self) -> D {
        self.wte.weight.device().clone()
    }

    fn picked_logprobs<T: Tape<f32, D>>(
        &self,
        ids: Ids<D, T>,
        positions: &[usize],
        targets: &[usize],
    ) -> Result<Tensor<(usize,), f32, D, T>, D::Err> {
        let logits = self.logits_rows::<0, T>(ids, positions, None)?;
        super::fused::select_logprobs(logits, targets)
    }

    fn logits_at(&self, ids: Ids<D>, positions: &[usize]) -> Result<Vec<f32>, D::Err> {
        Ok(self.logits_rows::<0, _>(ids, positions, None)?.as_vec())
    }
}

/// A gradient tape that records into `grads` (from `model.alloc_grads()`): pass it to
/// [`LanguageModel::sequence_logprobs`] or [`LanguageModel::token_nll`] to train. (`NoneTape` evaluates instead.)
pub fn tape_from<D: Device<f32>>(dev: &D, grads: Gradients<f32, D>) -> OwnedTape<f32, D> {
    // dfdx only hands out tapes through `traced`; trace an empty tensor and keep its tape.
    let (_, tape) = ZerosTensor::<f32>::zeros::<Rank0>(dev)
        .traced(grads)
        .split_tape();
    tape
}
