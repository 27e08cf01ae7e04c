//! # kto_lab — learn KTO by doing
//!
//! The library behind the kto-lab workbook: everything a lab notebook, the book and the
//! `kto-lab` command call into. One idea per module:
//!
//! | module | what it holds | lab |
//! |---|---|---|
//! | [`losses`] | KTO (paper/TRL form and the simplified batch-mean form), APO-zero, DPO, in dfdx and as plain data | 1, 5 |
//! | [`prospect`] | the Kahneman–Tversky value function, the KTO value/loss curves and their two charts | 2 |
//! | [`charts`] | the chart toolkit: a chart as plain data, drawn as SVG and PNG, inline in evcxr | 2, 3 |
//! | [`tokenizer`] | a byte-level BPE tokenizer trained on the lab corpus, saved as `tokenizer.json` | 3 |
//! | [`model`] | a tiny GPT-2 in dfdx: causal attention, tied head, log π(y\|x), sampling, safetensors | 3 |
//! | [`feedback`] | binary-feedback records, the JSONL store, unpairing, imbalance advice, the KTO-vs-DPO guide | 4, 5 |
//! | [`world`] | lab 3's toy world: prompts with one right answer, good and bad answers, the SFT mix, a rule-based judge, feedback records | 3 |
//! | [`train`] | lab 3's optimizer (AdamW with clipping, schedule), batches, metrics log, SFT/KTO/DPO trainers | 3 |
//! | [`pipeline`] | lab 3's closed loop: SFT → sample → judge → feedback → KTO / DPO → evaluate, report, charts | 3 |
//! | [`classroom`] | concrete, non-generic entry points for the notebooks: the classroom model, one KTO step by hand, the loop in one call | 3, 4 |
//! | [`checks`] | instant pass/fail feedback for the notebook exercises (a `todo!()` shows "not done yet") | all |
//! | [`device`] | where the tensors run: the device type (CPU, or CUDA with the `cuda` feature), host or not, one thread or two | — |
//! | [`math`] | scalar σ and log σ | — |
//! | [`bench`](mod@bench) | tokens/s of lab 3's SFT and KTO steps, beside `bench/torch_bench.py` | 3 |
//! | [`table`] | aligned metric tables for people | — |

/// Marks a public function as the answer to a graded exercise (its "answer key").
///
/// In an ordinary build it is an ordinary `pub fn`. In the grader's build of the library (the
/// `exam` feature, which `kto-lab-notebooks grade` compiles each submission against) it is
/// `pub(crate)`: the library still uses it, a submission that calls it does not compile, in
/// whatever thread or form it makes the call. [`checks::exam::ANSWER_KEY`] lists them by path.
macro_rules! answer_key {
    ($(#[$meta:meta])* pub fn $($rest:tt)*) => {
        #[cfg(not(feature = "exam"))]
        $(#[$meta])*
        pub fn $($rest)*
        #[cfg(feature = "exam")]
        $(#[$meta])*
        #[allow(dead_code)]
        pub(crate) fn $($rest)*
    };
}

pub mod bench;
pub mod charts;
pub mod checks;
pub mod classroom;
pub mod device;
pub mod feedback;
pub mod losses;
pub mod math;
pub mod model;
pub mod pipeline;
pub mod prospect;
#[cfg(feature = "rate")]
pub mod rate;
pub mod table;
/// The old name of [`table`]: notebooks saved before it was renamed import `kto_lab::report`.
#[doc(hidden)]
pub use table as report;
pub mod tokenizer;
pub mod train;
pub mod world;

/// dfdx, re-exported so notebooks and programs use exactly the version the library's tensor
/// types come from: `use kto_lab::dfdx::prelude::*;`.
pub use dfdx;
/// serde_json, re-exported for the notebooks' exercises: `use kto_lab::serde_json::{json, Value};`.
pub use serde_json;
