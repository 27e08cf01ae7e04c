//! Where the tensors run, in one place: the device type, the device itself, whether it keeps
//! its numbers in host memory, and whether jobs on it may run on two threads.
//!
//! dfdx's CPU by default; its CUDA device with the `cuda` feature. Everything else in the crate
//! asks here instead of checking the feature or the type itself.

use std::any::TypeId;

use dfdx::prelude::*;

/// The device tensors live on: dfdx's CPU by default, CUDA with the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub type Dev = Cpu;
/// The device tensors live on: dfdx's CPU by default, CUDA with the `cuda` feature.
#[cfg(feature = "cuda")]
pub type Dev = Cuda;

/// The device the lab's models run on.
///
/// dfdx's allocation cache (`enable_cache`) is left off on purpose: it makes a single training
/// thread 5–10% faster, but lab 3 trains and samples several models on threads that share one
/// device, and with the cache on we saw dfdx 0.13 abort (a panic inside its cache while freeing
/// a buffer) in one run out of two.
pub fn device() -> Dev {
    Dev::default()
}

/// Whether `D` keeps its numbers in host memory (dfdx's `Cpu`): then the fused host loops of
/// [`crate::model::fused`] are used; otherwise the equivalent chain of dfdx ops.
pub fn on_host<D: Device<f32>>() -> bool {
    TypeId::of::<D>() == TypeId::of::<Cpu>()
}

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
