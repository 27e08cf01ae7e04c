//! What the host loops share: host copies of dfdx tensors, the CPU views of generic tensors
//! and gradient stores, registering a backward pass on dfdx's tape, and running a loop with
//! AVX2.

use std::any::Any;

use dfdx::prelude::*;

/// A tensor's numbers in a host vector, row-major. `try_contiguous` is free for a contiguous
/// tensor (every input here comes out of a matmul or an element-wise op) and makes one otherwise.
pub(super) fn host_copy<S: Shape, D: Device<f32>>(
    t: &Tensor<S, f32, D>,
) -> Result<Vec<f32>, D::Err> {
    let t = t.clone().try_contiguous()?;
    let mut out = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut out);
    Ok(out)
}

/// The CPU view of a generic gradient store. Only called when [`crate::device::on_host`] said
/// `D` is `Cpu`.
fn cpu_grads<D: Device<f32>>(grads: &mut Gradients<f32, D>) -> &mut Gradients<f32, Cpu> {
    (grads as &mut dyn Any)
        .downcast_mut()
        .expect("host ops are only used on the Cpu device")
}

/// The CPU view of a generic tensor (a cheap clone). Only called when `D` is `Cpu`.
fn cpu_tensor<S: Shape, D: Device<f32>>(t: &Tensor<S, f32, D>) -> Tensor<S, f32, Cpu> {
    (t as &dyn Any)
        .downcast_ref::<Tensor<S, f32, Cpu>>()
        .expect("host ops are only used on the Cpu device")
        .clone()
}

/// Registers `backward(grads of the output, &mut grads of each input)` on `tape`. Every buffer is
/// allocated through the generic store first (so an allocation failure is the device's error);
/// then the closure gets plain slices.
pub(super) fn add_backward<S: Shape, D: Device<f32>, T: Tape<f32, D>, const N: usize>(
    tape: &mut T,
    output: &Tensor<S, f32, D>,
    inputs: [Tensor<(usize,), f32, D>; N],
    backward: impl FnOnce(&[f32], [&mut [f32]; N]) + 'static,
) {
    if !T::OWNS_TAPE {
        return;
    }
    let output = output.clone();
    tape.add_backward_op(move |grads| {
        grads.try_alloc_for(&output)?;
        for input in &inputs {
            grads.try_alloc_for(input)?;
        }
        let grads = cpu_grads(grads);
        // Taken out of the store (and put back below), so no copy and no second borrow.
        let gy = std::mem::take(
            &mut **grads
                .get_or_alloc_mut(&cpu_tensor(&output))
                .map_err(|_| ())
                .expect("allocated above"),
        );
        let mut buffers: Vec<Vec<f32>> = Vec::with_capacity(N);
        for input in &inputs {
            let g = grads
                .get_or_alloc_mut(&cpu_tensor(input))
                .map_err(|_| ())
                .expect("allocated above");
            buffers.push(std::mem::take(&mut **g));
        }
        {
            let mut it = buffers.iter_mut();
            let slices: [&mut [f32]; N] =
                std::array::from_fn(|_| it.next().expect("N buffers").as_mut_slice());
            with_avx2(
                #[inline(always)]
                || backward(&gy, slices),
            );
        }
        for (input, buffer) in inputs.iter().zip(buffers) {
            let g = grads
                .get_or_alloc_mut(&cpu_tensor(input))
                .map_err(|_| ())
                .expect("allocated above");
            **g = buffer;
        }
        **grads
            .get_or_alloc_mut(&cpu_tensor(&output))
            .map_err(|_| ())
            .expect("allocated above") = gy;
        Ok(())
    });
}

/// A flat `(n,)` view of a tensor that shares its id (and so its gradient) and data. The
/// gradient buffer of a tensor is laid out as its contiguous data, whatever its shape.
pub(super) fn flat<S: Shape, D: Device<f32>>(t: &Tensor<S, f32, D>) -> Tensor<(usize,), f32, D> {
    // `t` is contiguous (outputs of ops and parameters are): the reshape keeps id and data.
    t.clone().reshape_like(&(t.shape().num_elements(),))
}

/// Runs `f` compiled for AVX2 when the CPU has it (checked once, at run time), else as is.
///
/// The crate is built for the baseline x86-64 (SSE2, 4 lanes) so that it runs on any x86-64
/// CPU; the host loops here are straight-line per element, and with AVX2 the compiler gives
/// them 8 lanes. Same operations in the same order either way (no FMA contraction), so the
/// results are bit-identical with and without AVX2.
#[inline(always)]
pub(super) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn wide<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to support AVX2.
            return unsafe { wide(f) };
        }
    }
    f()
}
