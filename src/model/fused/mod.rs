//! The hot spots of a training step as single host loops instead of chains of dfdx ops:
//! the linear layers (bias and GEMM in one pass, via the `gemm` crate dfdx itself uses), the
//! attention core (scores, causal softmax and weighted values per row and head, in place),
//! LayerNorm, GELU, and the log-softmax + pick of the target token.
//!
//! dfdx runs each element-wise op as its own kernel with its own output buffer, forward and
//! backward: a LayerNorm is about ten such ops, GELU six, a softmax five, a linear layer a
//! GEMM plus a broadcast add whose backward is a strided reduction, and attention needs four
//! permuted copies of q, k, v and its output. Here each is one forward loop and one backward
//! loop. The backward is registered on dfdx's tape as a closure (`Tape::add_backward_op`, public
//! API) that reads the output's gradient and adds into the inputs' gradients, as dfdx's own ops
//! do. Those buffers are only reachable on the CPU device, so these functions take the loops on
//! `Cpu` ([`on_host`](crate::device::on_host)) and run the equivalent chain of dfdx ops on any other device (CUDA): the
//! model stays device-generic. `tests.rs` checks each one's values and gradients against the
//! plain dfdx ops.
//!
//! | file | what it holds |
//! |---|---|
//! | [`linear`](mod@linear) | `x·Wᵀ + b` (and the tied head `x·Wᵀ`) through the `gemm` crate |
//! | [`attention`](mod@attention) | the causal attention core, and the masked softmax of the dfdx path |
//! | [`norm`](mod@norm) | LayerNorm |
//! | [`gelu`](mod@gelu) | GPT-2's tanh GELU |
//! | [`log_softmax`](mod@log_softmax) | log-softmax + pick the target token |
//! | [`simd`](mod@simd) | a branch-free `exp` and a dot product that compile to SIMD code |
//! | `host` | what they share: host copies of dfdx tensors, registering a backward pass on dfdx's tape, running a loop with AVX2 |
//! | `tests` | each op against the dfdx ops it replaces: values and gradients |

pub mod attention;
pub mod gelu;
mod host;
pub mod linear;
pub mod log_softmax;
pub mod norm;
pub mod simd;

pub use attention::{causal_attention, masked_softmax, Scores};
pub use gelu::gelu;
pub use linear::{linear, linear_with, matmul_transposed, with_serial_gemm, Weights};
pub use log_softmax::select_logprobs;
pub use norm::layer_norm;
pub use simd::exp;

#[cfg(test)]
mod tests;
