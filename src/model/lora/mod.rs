//! LoRA (Hu et al. 2021), as the seed notebook's pipeline uses it through PEFT: the model's
//! weights stay frozen and each adapted projection learns a low-rank correction.
//!
//! ```text
//! y = x·Wᵀ + b  +  (α/r) · (x·Aᵀ)·Bᵀ        A: [r, in]   B: [out, r]   (PEFT's lora_A, lora_B)
//! ```
//!
//! - **B starts at zero**, so the adapted model starts exactly equal to the base model (A starts
//!   random, as in PEFT, or no gradient would ever reach B).
//! - **Only A and B learn.** [`LoraGpt`]'s `TensorCollection` visits the adapters alone, so
//!   gradients are allocated and AdamW keeps moments for them only; on the CPU the frozen
//!   projections and LM head also skip their `∂W` GEMMs ([`Weights::Frozen`]). (LayerNorm's γ/β
//!   still get their few hundred gradient numbers computed; nobody reads them.)
//! - **The reference model comes for free**: [`LoraGpt::without_adapters`] is the same model
//!   with its adapters switched off — dfdx tensors share their buffers when cloned (copy on
//!   write), so there is no second copy of the base weights in memory.
//! - [`LoraGpt::merged`] folds the adapters into the weights (`W + (α/r)·B·A`): a plain [`Gpt`]
//!   that computes the same function.
//!
//! The rank is a compile-time constant (`R`), like every other width here: dfdx 0.13 can only
//! walk (allocate gradients for, update, save) tensors whose shapes are known at compile time.
//! [`RANKS`] are the ranks the `kto-lab` binary is built with. The targets are the seed's, q, k,
//! v and o (attention's output projection, GPT-2's `attn.c_proj`); the MLP stays frozen.
//!
//! No dropout: the seed uses `lora_dropout = 0.05`, but this model has no dropout anywhere and
//! every random thing here takes a seed; the PEFT export says `lora_dropout: 0.0`.

use dfdx::nn::modules::{Linear, Repeated};
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::error::{device_err, ModelError};
use super::fused::{self, Weights};
use super::gpt::Gpt;
use super::hidden::Hidden;
use super::lm::{Ids, LanguageModel};

/// The ranks `kto-lab train --lora R` accepts (each is a separate build of the LoRA model).
pub const RANKS: [usize; 4] = [4, 8, 16, 32];

/// LoRA's settings besides the rank. [`LoraConfig::default`] is the seed's α = 32 (with its
/// r = 16, a scale α/r of 2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// α: each correction is scaled by α/r, so a change of r changes the step size less.
    pub alpha: f32,
    /// Seed of the A matrices.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            alpha: 32.0,
            seed: 0,
        }
    }
}

impl LoraConfig {
    /// Errors on a non-finite or non-positive α.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(ModelError::BadParameter {
                name: "lora alpha",
                value: self.alpha.to_string(),
                expected: "a finite number > 0",
            });
        }
        Ok(())
    }
}

/// One projection's adapter: `A [R, I]` and `B [O, R]`, as PEFT stores `lora_A.weight` and
/// `lora_B.weight`.
#[derive(Debug, Clone)]
pub struct Adapter<const I: usize, const O: usize, const R: usize, E: Dtype, D: Storage<E>> {
    /// A `[R, I]`: random at first.
    pub a: Tensor<Rank2<R, I>, E, D>,
    /// B `[O, R]`: zero at first.
    pub b: Tensor<Rank2<O, R>, E, D>,
}

impl<const I: usize, const O: usize, const R: usize, D: Device<f32>> Adapter<I, O, R, f32, D> {
    /// A fresh adapter: A uniform in ±1/√I (PEFT's Kaiming-uniform with a = √5), B zero.
    pub fn new(dev: &D, rng: &mut ChaCha8Rng) -> Result<Self, D::Err> {
        let bound = 1.0 / (I as f32).sqrt();
        let a: Vec<f32> = (0..R * I).map(|_| rng.gen_range(-bound..bound)).collect();
        Ok(Adapter {
            a: dev.try_tensor_from_vec(a, (Const, Const))?,
            b: dev.try_zeros()?,
        })
    }

    answer_key! {
        /// The low-rank correction `scale · (x·Aᵀ)·Bᵀ` for rows `x: [n, I]`: two thin products,
        /// `[n, I]·[I, R]` then `[n, R]·[R, O]`, never the `[O, I]` matrix B·A. Written in dfdx
        /// ops, so it runs (and differentiates) on any device.
        pub fn correction<T: Tape<f32, D>>(
            &self,
            x: Hidden<I, D, T>,
            scale: f32,
        ) -> Result<Hidden<O, D, T>, D::Err> {
            // Exercise 3.4's reference: a student's answer may not call it.
            let at = self.a.retaped::<T>().try_permute::<_, Axes2<1, 0>>()?;
            let bt = self.b.retaped::<T>().try_permute::<_, Axes2<1, 0>>()?;
            x.try_matmul(at)?.try_matmul(bt)?.try_mul(scale)
        }
    }

    /// `W + scale · B·A`: the adapted weight of a `Linear` (`[O, I]`, as dfdx stores it).
    pub fn merge(
        &self,
        weight: &Tensor<Rank2<O, I>, f32, D>,
        scale: f32,
    ) -> Result<Tensor<Rank2<O, I>, f32, D>, D::Err> {
        let ba = self.b.clone().try_matmul(self.a.clone())?.try_mul(scale)?;
        weight.clone().try_add(ba)
    }
}

/// `lin(x)`, plus the adapter's correction when the model is adapted. `adapter`: `None` for a
/// plain model (the layer trains as usual); `Some((adapter, Some(α/r)))` adds the correction;
/// `Some((adapter, None))` is the adapted model with its adapters switched off. Adapted or
/// switched off, the layer's own weights are frozen.
pub(crate) fn project<const I: usize, const O: usize, const R: usize, D, T>(
    lin: &Linear<I, O, f32, D>,
    adapter: Option<(&Adapter<I, O, R, f32, D>, Option<f32>)>,
    x: Hidden<I, D, T>,
) -> Result<Hidden<O, D, T>, D::Err>
where
    D: Device<f32>,
    T: Tape<f32, D>,
{
    match adapter {
        None => fused::linear(lin, x),
        Some((_, None)) => fused::linear_with(lin, x, Weights::Frozen),
        Some((a, Some(scale))) => {
            // The correction starts from a copy of x with an empty tape; the add merges them.
            let correction = a.correction(x.with_empty_tape(), scale)?;
            fused::linear_with(lin, x, Weights::Frozen)?.try_add(correction)
        }
    }
}

/// One block's adapters: on q, k, v and attention's output projection.
#[derive(Debug, Clone)]
pub struct BlockLora<const M: usize, const R: usize, E: Dtype, D: Storage<E>> {
    /// On the query projection.
    pub q: Adapter<M, M, R, E, D>,
    /// On the key projection.
    pub k: Adapter<M, M, R, E, D>,
    /// On the value projection.
    pub v: Adapter<M, M, R, E, D>,
    /// On attention's output projection (GPT-2's `attn.c_proj`, Llama's `o_proj`).
    pub o: Adapter<M, M, R, E, D>,
}

impl<const M: usize, const R: usize, D: Device<f32>> BlockLora<M, R, f32, D> {
    fn new(dev: &D, rng: &mut ChaCha8Rng) -> Result<Self, D::Err> {
        Ok(BlockLora {
            q: Adapter::new(dev, rng)?,
            k: Adapter::new(dev, rng)?,
            v: Adapter::new(dev, rng)?,
            o: Adapter::new(dev, rng)?,
        })
    }
}

/// A model's adapters as the forward pass reads them: one [`BlockLora`] per block, and α/r
/// (`None`: switched off).
pub struct Adapters<'a, const M: usize, const R: usize, D: Device<f32>> {
    /// Block i's adapters.
    pub blocks: &'a [BlockLora<M, R, f32, D>],
    /// α/r, or `None` when the adapters are switched off.
    pub scale: Option<f32>,
}

impl<const M: usize, const R: usize, D: Device<f32>> Clone for Adapters<'_, M, R, D> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<const M: usize, const R: usize, D: Device<f32>> Copy for Adapters<'_, M, R, D> {}

/// A [`Gpt`] with rank-`R` LoRA adapters: the base model frozen, the adapters trained. A
/// [`LanguageModel`], so the SFT, KTO and DPO trainers train it as they train a full model —
/// its `TensorCollection` is the adapters alone, so that is all they update.
#[derive(Debug, Clone)]
pub struct LoraGpt<
    const V: usize,
    const M: usize,
    const H: usize,
    const F: usize,
    const L: usize,
    const S: usize,
    const R: usize,
    D: Device<f32>,
> {
    /// The frozen base model.
    pub base: Gpt<V, M, H, F, L, S, f32, D>,
    /// The adapters, one set per block (saved as `h.0.q.lora_A`, …).
    pub adapters: Repeated<BlockLora<M, R, f32, D>, L>,
    /// α (and the seed the A matrices came from).
    pub config: LoraConfig,
    /// Whether the adapters are applied ([`LoraGpt::without_adapters`] switches them off).
    pub enabled: bool,
}

impl<
        const V: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        const L: usize,
        const S: usize,
        const R: usize,
        D: Device<f32>,
    > LoraGpt<V, M, H, F, L, S, R, D>
{
    /// The rank.
    pub const RANK: usize = R;

    /// Fresh adapters (B = 0: the model starts equal to `base`) on a copy of `base` that shares
    /// its weights. The same seed gives the same A matrices.
    pub fn new(
        base: &Gpt<V, M, H, F, L, S, f32, D>,
        config: LoraConfig,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        if R == 0 {
            return Err(ModelError::BadParameter {
                name: "lora rank",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        let dev = base.wte.weight.device().clone();
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let modules = (0..L)
            .map(|_| BlockLora::new(&dev, &mut rng))
            .collect::<Result<_, _>>()
            .map_err(device_err)?;
        Ok(LoraGpt {
            base: base.clone(),
            adapters: Repeated { modules },
            config,
            enabled: true,
        })
    }

    /// The same model with its adapters switched off: the base model, as the reference of a
    /// LoRA run. Same type as the policy (the trainers want one), same frozen forward, and the
    /// weights shared, not copied.
    pub fn without_adapters(&self) -> Self {
        LoraGpt {
            enabled: false,
            ..self.clone()
        }
    }

    /// α/r, the factor in front of every correction.
    pub fn scale(&self) -> f32 {
        self.config.alpha / R as f32
    }

    /// The number of trainable numbers: 4 projections × L blocks × R·(M + M).
    pub fn trainable_params(&self) -> usize {
        4 * L * R * 2 * M
    }

    /// The base model with every adapter folded into its weight (`W + (α/r)·B·A`): a plain
    /// [`Gpt`] computing the same function (up to float rounding), for sampling or export.
    /// Switched-off adapters fold nothing.
    pub fn merged(&self) -> Result<Gpt<V, M, H, F, L, S, f32, D>, ModelError> {
        let mut out = self.base.clone();
        if !self.enabled {
            return Ok(out);
        }
        let scale = self.scale();
        for (block, lora) in out.h.modules.iter_mut().zip(&self.adapters.modules) {
            let attn = &mut block.attn;
            let mut merge = || -> Result<(), D::Err> {
                attn.q.weight = lora.q.merge(&attn.q.weight, scale)?;
                attn.k.weight = lora.k.merge(&attn.k.weight, scale)?;
                attn.v.weight = lora.v.merge(&attn.v.weight, scale)?;
                attn.c_proj.weight = lora.o.merge(&attn.c_proj.weight, scale)?;
                Ok(())
            };
            merge().map_err(device_err)?;
        }
        Ok(out)
    }

    fn view(&self) -> Adapters<'_, M, R, D> {
        Adapters {
            blocks: &self.adapters.modules,
            scale: self.enabled.then(|| self.scale()),
        }
    }
}

impl<const I: usize, const O: usize, const R: usize, D: Device<f32>> TensorCollection<f32, D>
    for Adapter<I, O, R, f32, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Adapter<I, O, R, E2, D2>;

    fn iter_tensors<Vis: ModuleVisitor<Self, f32, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "lora_A",
                    |s| &s.a,
                    |s| &mut s.a,
                    TensorOptions::reset_with(|t| {
                        let b = 1.0 / (I as f32).sqrt();
                        t.try_fill_with_distr(rand_distr::Uniform::new(-b, b))
                    }),
                ),
                Self::tensor(
                    "lora_B",
                    |s| &s.b,
                    |s| &mut s.b,
                    TensorOptions::reset_to_zeros(),
                ),
            ),
            |(a, b)| Adapter { a, b },
        )
    }
}

impl<const M: usize, const R: usize, D: Device<f32>> TensorCollection<f32, D>
    for BlockLora<M, R, f32, D>
{
    type To<E2: Dtype, D2: Device<E2>> = BlockLora<M, R, E2, D2>;

    fn iter_tensors<Vis: ModuleVisitor<Self, f32, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        visitor.visit_fields(
            (
                Self::module("q", |s| &s.q, |s| &mut s.q),
                Self::module("k", |s| &s.k, |s| &mut s.k),
                Self::module("v", |s| &s.v, |s| &mut s.v),
                Self::module("o", |s| &s.o, |s| &mut s.o),
            ),
            |(q, k, v, o)| BlockLora { q, k, v, o },
        )
    }
}

/// The adapters are the whole collection: what the trainers allocate gradients for, what
/// AdamW updates, what `save` writes. The base model is not visited.
impl<
        const V: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        const L: usize,
        const S: usize,
        const R: usize,
        D: Device<f32>,
    > TensorCollection<f32, D> for LoraGpt<V, M, H, F, L, S, R, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Repeated<BlockLora<M, R, E2, D2>, L>;

    fn iter_tensors<Vis: ModuleVisitor<Self, f32, D>>(
        visitor: &mut Vis,
    ) -> Result<Option<Self::To<Vis::E2, Vis::D2>>, Vis::Err> {
        visitor.visit_fields(
            Self::module("h", |s| &s.adapters, |s| &mut s.adapters),
            |h| h,
        )
    }
}

impl<
        const V: usize,
        const M: usize,
        const H: usize,
        const F: usize,
        const L: usize,
        const S: usize,
        const R: usize,
        D: Device<f32>,
    > LanguageModel<D> for LoraGpt<V, M, H, F, L, S, R, D>
{
    fn vocab(&self) -> usize {
        V
    }

    fn max_seq(&self) -> usize {
        S
    }

    fn picked_logprobs<T: Tape<f32, D>>(
        &self,
        ids: Ids<D, T>,
        positions: &[usize],
        targets: &[usize],
    ) -> Result<Tensor<(usize,), f32, D, T>, D::Err> {
        let logits = self.base.logits_rows(ids, positions, Some(self.view()))?;
        super::fused::select_logprobs(logits, targets)
    }

    fn logits_at(&self, ids: Ids<D>, positions: &[usize]) -> Result<Vec<f32>, D::Err> {
        Ok(self
            .base
            .logits_rows(ids, positions, Some(self.view()))?
            .as_vec())
    }

    fn device(&self) -> D {
        self.base.wte.weight.device().clone()
    }
}

#[cfg(test)]
mod tests;
