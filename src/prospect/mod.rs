//! Lab 2 — prospect theory, and why KTO is named after Kahneman and Tversky.
//!
//! Prospect theory says people do not judge outcomes by their absolute size but by
//! *gains and losses relative to a reference point*, and that they judge them unevenly:
//!
//! * **diminishing sensitivity** — the step from 0 to 100 feels bigger than the step from
//!   1000 to 1100, so the value function is concave for gains (and convex for losses);
//! * **loss aversion** — losing 100 hurts about twice as much as winning 100 pleases, so the
//!   curve is steeper for losses by a factor λ ≈ 2.25.
//!
//! KTO (Ethayarajh et al. 2024) borrows that shape for alignment. The "outcome" is
//! `d = r − z0`: how much more likely the policy makes a completion than the reference
//! model does (`r`, a log-ratio), measured against a reference point `z0` (an estimate of
//! the policy/reference KL). A thumbs-up example is worth `λD·σ(β·d)`, a thumbs-down one
//! `λU·σ(−β·d)`; the logistic σ plays the role of the S-shaped value function, and the
//! loss is what is still missing from the best possible value: `λ − v`.
//!
//! Every function here is plain `f64` arithmetic so that a notebook can print, test and plot
//! it; `charts` turns the curves into pictures with the chart toolkit ([`crate::charts`]).
//!
//! | file | what it holds |
//! |---|---|
//! | `error` | [`ProspectError`]: what can be wrong with the numbers passed in, and the checks |
//! | `value` | [`ProspectParams`] and the value function [`value`], [`value_curve`] |
//! | `kto` | [`Label`], KTO's [`kto_value`], [`kto_loss`], [`simplified_kto_loss`], [`kto_curves`] |
//! | `linspace` | [`linspace`]: evenly spaced sample points |
//! | `charts` | the two charts of lab 2: [`value_function_chart`], [`kto_loss_chart`] |

mod charts;
mod error;
mod kto;
mod linspace;
mod value;

pub use charts::{
    kto_loss_chart, kto_loss_d_range, value_function_chart, write_lab2_charts, VALUE_X_RANGE,
};
pub use error::ProspectError;
pub use kto::{kto_curves, kto_value, simplified_kto_loss, KtoCurves, Label, DEFAULT_KTO_BETA};
// The graded exercises' answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use kto::kto_loss;
#[cfg(feature = "exam")]
pub(crate) use kto::kto_loss;
pub use linspace::linspace;
pub use value::{value_curve, ProspectParams};
// The graded exercises' answers: crate-private in the grader's build (`answer_key!`).
#[cfg(not(feature = "exam"))]
pub use value::value;
#[cfg(feature = "exam")]
pub(crate) use value::value;
