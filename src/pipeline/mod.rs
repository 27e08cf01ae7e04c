//! Lab 3's closed feedback loop, end to end:
//!
//! ```text
//! SFT on a mix of good and bad answers → sample answers → judge (thumbs up/down)
//!   → feedback file → KTO (and, for comparison, DPO and imbalanced KTO) → evaluate
//! ```
//!
//! [`run_loop`] does it all on the toy [`crate::world`] and returns the trained models, the
//! metrics log and a [`LoopReport`]: the desirable rate of sampled answers and the KL to the
//! reference, before and after each method.
//!
//! | file | what it holds |
//! |---|---|
//! | [`config`](LoopConfig) | the loop's settings: the default job's and the classroom's |
//! | `closed_loop` | [`run_loop`], stage by stage |
//! | [`codec`](Codec) | text ↔ token ids in the model's prompt format |
//! | `data` | the judged samples as feedback records, KTO examples and DPO pairs |
//! | `runs` | a feedback round (sample → judge → store), the preference runs (KTO's rounds, DPO, imbalanced KTO) on their own threads |
//! | [`probe`](probe()) | the desirable rate during training, every N steps |
//! | [`evaluate`](evaluate()) | sample, judge, and score against the reference |
//! | [`report`](LoopReport) | the before/after table |
//! | [`charts`](loss_curves) | loss, KTO and desirable-rate charts from the metrics log |
//! | [`seeds`](SeedSummary) | the same job over several seeds, as mean ± spread |
//! | [`lora`](lora_beside_full) | LoRA beside full fine-tuning |
//! | [`votes`](kto_on_votes) | a person's thumbs: the answers to rate, KTO on their votes, the move toward their taste |
//! | `error` | [`LoopError`] |

mod charts;
mod closed_loop;
mod codec;
mod config;
mod data;
mod error;
mod evaluate;
mod lora;
mod probe;
mod report;
mod runs;
mod seeds;
mod votes;

pub use charts::{desirable_rate_curves, desirable_rates, kto_curves, loss_curves};
pub use closed_loop::{run_loop, train_sft_model, LoopOutcome};
pub use codec::Codec;
pub use config::LoopConfig;
pub use error::LoopError;
pub use evaluate::{evaluate, sample_and_judge, Evaluation, Sample, Sampling};
pub use lora::{lora_beside_full, LoraOutcome, LoraReport, LoraRow, LoraSettings};
pub use probe::{probe, ProbeConfig, PROBE_HELD_OUT_RATE, PROBE_TRAIN_RATE};
pub use report::{LoopReport, MethodRow};
pub use seeds::{SeedRow, SeedSummary, Spread};
pub use votes::{
    answer_pool, category, held_out, judge_agreement, kto_on_votes, RatingModel, Scored, Taste,
    VotesReport, CATEGORIES, HELD_OUT_SAMPLES,
};
