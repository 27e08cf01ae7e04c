//! Training (lab 3): the optimizer dfdx lacks, the data sampler, the metrics log, and the SFT,
//! KTO and DPO trainers over any [`crate::model::LanguageModel`].

pub mod data;
mod error;
pub mod log;
pub mod optim;
pub mod trainer;

pub use data::{Batcher, Example, Pair};
pub use error::TrainError;
pub use log::{MetricsLog, StepRecord};
pub use optim::{grad_norm, AdamW, AdamWConfig, LrSchedule, StepInfo};
pub use trainer::{
    logprobs, train_dpo, train_dpo_probed, train_kto, train_kto_probed, train_sft,
    train_sft_probed, Metrics, Probe, Session, TrainConfig,
};

/// Models that may be trained on several threads at once. dfdx's CPU tensors can; its CUDA
/// device cannot be shared between threads, so with the `cuda` feature everything is
/// `Shareable` and the loop and the trainers run their jobs one after the other.
#[cfg(not(feature = "cuda"))]
pub trait Shareable: Send + Sync {}
#[cfg(not(feature = "cuda"))]
impl<T: Send + Sync> Shareable for T {}
/// Models that may be trained on several threads at once (see the CPU build's docs).
#[cfg(feature = "cuda")]
pub trait Shareable {}
#[cfg(feature = "cuda")]
impl<T> Shareable for T {}

/// Runs two independent jobs, on two threads when the device allows it. A panic in the other
/// thread is re-raised here, as if both had run on this one.
#[cfg(not(feature = "cuda"))]
pub fn both<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|scope| {
        let handle = scope.spawn(a);
        let second = b();
        match handle.join() {
            Ok(first) => (first, second),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Runs two independent jobs one after the other (CUDA build: one device, one thread).
#[cfg(feature = "cuda")]
pub fn both<A, B>(a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> (A, B) {
    let first = a();
    (first, b())
}
