//! The residual stream's shape, which attention, the MLP, the blocks and the fused host loops
//! all read and write.

use dfdx::prelude::{Const, NoneTape, Tensor};

/// The residual stream: one width-`M` vector per token, `[batch·seq, M]`, with tape `T`.
///
/// Flat rather than `[batch, seq, M]` on purpose: dfdx runs a 3-D × 2-D matmul as one small
/// GEMM per batch row, while `[batch·seq, M] × [M, N]` is a single large GEMM — the same maths,
/// several times faster. Only attention needs the `[batch, seq]` structure back (a free reshape).
pub type Hidden<const M: usize, D, T = NoneTape> = Tensor<(usize, Const<M>), f32, D, T>;
