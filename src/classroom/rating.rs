//! Lab 4's rating session with the classroom model: the answers a student rates, and KTO on
//! their votes — concrete functions over [`pipeline::RatingModel`], so a notebook cell
//! compiles none of the training code.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use crate::feedback::{AnswerPool, Record};
use crate::pipeline::{self, LoopConfig, LoopError, RatingModel, VotesReport};
use crate::train::MetricsLog;

use super::{new_model, ClassroomModel};

/// The classroom SFT model, ready to answer questions for a rater and to be trained on their
/// votes ([`rating_model`]).
pub struct RatingSession {
    inner: RatingModel<ClassroomModel>,
}

/// The model in words, as the page and reports show it.
pub const CLASSROOM_DESCRIPTION: &str =
    "the classroom model (1 layer, width 32) after SFT on lab 3's colour questions";

/// SFTs the classroom model on lab 3's half-good mix ([`LoopConfig::classroom`]): a few seconds.
/// Deterministic: the same model every time.
pub fn rating_model() -> Result<RatingSession, LoopError> {
    let config = LoopConfig::classroom();
    let (tokenizer, model) =
        pipeline::train_sft_model(new_model, &config, &mut MetricsLog::quiet())?;
    Ok(RatingSession {
        inner: RatingModel {
            model,
            tokenizer,
            config,
            description: CLASSROOM_DESCRIPTION.into(),
        },
    })
}

impl RatingSession {
    /// The answers to rate: `per_prompt` samples to each of the 12 training questions,
    /// distinct, shuffled with `seed`.
    pub fn pool(&self, per_prompt: usize, seed: u64) -> Result<AnswerPool, LoopError> {
        self.inner.pool(per_prompt, seed)
    }

    /// KTO on the rater's `rows` (the [`final_records`](crate::feedback::final_records) of
    /// their clicks), scored on the 3 held-out questions.
    pub fn train_on(&self, rows: &[Record]) -> Result<VotesRun, LoopError> {
        let started = Instant::now();
        let (_, report) = self.inner.train_on(rows)?;
        Ok(VotesRun {
            report,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The model, its tokenizer and settings.
    pub fn model(&self) -> &RatingModel<ClassroomModel> {
        &self.inner
    }

    /// Saves the model and tokenizer as `dir/sft.safetensors` and `dir/tokenizer.json`.
    pub fn save(&self, dir: &Path) -> Result<(), LoopError> {
        use crate::model::LanguageModel;
        LanguageModel::save(&self.inner.model, &dir.join("sft.safetensors"))?;
        self.inner
            .tokenizer
            .save(dir.join("tokenizer.json"))
            .map_err(crate::model::ModelError::from)?;
        Ok(())
    }
}

/// A KTO run on a rater's votes: what [`RatingSession::train_on`] measured.
pub struct VotesRun {
    /// Before/after on the held-out questions, the agreement with the judge, the taste.
    pub report: VotesReport,
    /// How long it took.
    pub seconds: f64,
}

impl fmt::Display for VotesRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "KTO on the votes in {:.1} s\n", self.seconds)?;
        f.write_str(&self.report.markdown())
    }
}

impl VotesRun {
    /// evcxr's display: the report.
    pub fn evcxr_display(&self) {
        super::text_display(self);
    }
}
