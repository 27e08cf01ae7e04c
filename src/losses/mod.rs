//! Preference-optimization losses, in dfdx (differentiable, any device) and as plain data.
//!
//! Lab 1 builds these up in order:
//!
//! 1. [`kto_batch_mean()`] — the simplified KTO of the seed notebook: the reference point is the
//!    batch mean of the log-ratios, and each class is pushed with −log σ (never saturates).
//! 2. [`kto()`] — KTO exactly as the paper and TRL's `KTOTrainer` compute it: the reference
//!    point z0 is estimated from *mismatched* prompt/completion pairs, detached and clamped at 0,
//!    and each example's loss is 1 − σ(·), which saturates (confident examples stop pulling).
//! 3. [`apo_zero_unpaired()`] — TRL's other unpaired loss: KTO with the reference point fixed at 0.
//! 4. [`dpo()`] — the sigmoid DPO loss on (chosen, rejected) pairs, for lab 5's comparison.
//!
//! Every tensor function takes the policy log-probs *with* a gradient tape and everything else
//! without one; it returns a scalar loss tensor (call `.backward()`) and the metrics TRL logs.
//! [`plain`] wraps them for callers that hold `&[f32]` slices (notebooks, the CLI), and
//! [`compare`] runs several of them on one batch, side by side.
//!
//! A "log-prob" here is log π(y|x): the *sum* over completion tokens (no length normalisation),
//! as TRL uses it. The log-ratio r = log πθ(y|x) − log πref(y|x) is the implicit reward.

pub mod compare;
mod error;
pub mod example;
pub mod kto;
pub mod kto_batch_mean;
pub mod ops;
pub mod pairwise;
pub mod plain;
pub mod request;

pub use error::LossError;
pub use example::ExampleBatch;
pub use kto::{apo_zero_unpaired, KtoConfig, KtoMetrics};
// The graded exercises' answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use kto::kto;
#[cfg(feature = "exam")]
pub(crate) use kto::kto;
pub use kto_batch_mean::BatchMeanMetrics;
// The graded exercises' answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use kto_batch_mean::kto_batch_mean;
#[cfg(feature = "exam")]
pub(crate) use kto_batch_mean::kto_batch_mean;
pub use ops::log_sigmoid;
pub use pairwise::DpoMetrics;
// The graded exercises' answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use pairwise::dpo;
#[cfg(feature = "exam")]
pub(crate) use pairwise::dpo;

use dfdx::prelude::*;

/// The device tensors live on ([`crate::device::Dev`]), here too because the notebooks import it
/// with the losses (`use kto_lab::losses::{Dev, KtoConfig};`).
pub use crate::device::Dev;

/// A batch of per-example numbers (one log-prob per sequence), length known at run time.
pub type Batch<D, T = NoneTape> = Tensor<(usize,), f32, D, T>;
/// The scalar a loss returns; call `.backward()` on it.
pub type Scalar<D, T> = Tensor<(), f32, D, T>;
