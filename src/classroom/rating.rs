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
    /// evcxr's display: the report as text and as Markdown (Jupyter and the book render its
    /// tables; the time is in the text only, so the rendered page shows what every run shows).
    pub fn evcxr_display(&self) {
        let md = self.report.markdown();
        println!("EVCXR_BEGIN_CONTENT text/plain\n{self}\nEVCXR_END_CONTENT");
        println!("EVCXR_BEGIN_CONTENT text/markdown\n{md}\nEVCXR_END_CONTENT");
    }
}

/// Why nobody can rate in this run, or `None` when a person may be there: the notebook runner
/// and the grader set `KTO_LAB_UNATTENDED`; CI sets `CI`.
pub fn unattended() -> Option<String> {
    if let Some(why) = std::env::var_os("KTO_LAB_UNATTENDED") {
        return Some(why.to_string_lossy().into_owned());
    }
    std::env::var_os("CI").map(|_| "CI".to_string())
}

/// The rating page of lab 4, running in its own process (`kto-lab rate`), or why there is none.
pub struct RatingPage {
    url: Option<String>,
    why_not: Option<String>,
    child: Option<std::process::Child>,
}

/// The repository this library was built from (a notebook's `:dep kto-lab = { path = ".." }`).
fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Starts `kto-lab rate --dir DIR` in the background — `cargo run --release --features rate`
/// in this repository, so the first start builds it (a few minutes); a restarted kernel resumes
/// the same session — and waits for its URL. The page stops when this process ends. In an
/// unattended run ([`unattended`]) nothing is started and the page says why.
pub fn start_rating_page(dir: &Path) -> std::io::Result<RatingPage> {
    if let Some(why) = unattended() {
        return Ok(RatingPage {
            url: None,
            why_not: Some(why),
            child: None,
        });
    }
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let url_file = dir.join("url");
    match std::fs::remove_file(&url_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let log = std::fs::File::create(dir.join("page.log"))?;
    let mut child =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .current_dir(repository())
            .args([
                "run",
                "--release",
                "--quiet",
                "--features",
                "rate",
                "--",
                "rate",
                "--port",
                "0",
            ])
            .arg("--dir")
            .arg(&dir)
            .arg("--url-file")
            .arg(&url_file)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
    let started = Instant::now();
    loop {
        if let Ok(url) = std::fs::read_to_string(&url_file) {
            if url.ends_with('\n') {
                return Ok(RatingPage {
                    url: Some(url.trim().to_string()),
                    why_not: None,
                    child: Some(child),
                });
            }
        }
        if let Some(status) = child.try_wait()? {
            return Err(std::io::Error::other(format!(
                "kto-lab rate stopped ({status}): see {}",
                dir.join("page.log").display()
            )));
        }
        if started.elapsed().as_secs() > 30 * 60 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other(
                "kto-lab rate gave no URL in 30 minutes",
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

impl RatingPage {
    /// The page's URL (with its token), when it runs.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Stops the page.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// evcxr's display: the link, or why there is none.
    pub fn evcxr_display(&self) {
        super::text_display(self);
    }
}

impl fmt::Display for RatingPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.url, &self.why_not) {
            (Some(url), _) => write!(
                f,
                "Rate about 20 answers at {url}\n(keys: u 👍, d 👎, s skip, z undo); then run the next cell."
            ),
            (None, why) => write!(
                f,
                "Unattended run ({}): nobody is here to rate, so no page was started. The cells \
                 below use the RECORDED vote file instead — a scripted rater, not a person.",
                why.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// A scripted rater's votes recorded through the real page, shipped with the labs: what the
/// cells after the page use when nobody rated. The rater's rule: 👍 to correct answers and to
/// answers that admit not knowing ("I don't know.", "I am not sure."), 👎 to the rest.
pub const RECORDED_VOTES: &str = "labs/data/recorded-votes.jsonl";

/// Votes to train on, and where they come from.
pub struct RatedVotes {
    /// Every click, in order.
    pub clicks: Vec<crate::feedback::RatedClick>,
    /// The training rows ([`final_records`](crate::feedback::final_records) of the clicks).
    pub rows: Vec<Record>,
    /// The file read.
    pub path: std::path::PathBuf,
    /// Whether these are the recorded votes of a scripted rater (no person rated).
    pub recorded: bool,
}

/// The votes in `dir/votes.jsonl`; when there are none (nobody rated, or an unattended run),
/// the [recorded votes](RECORDED_VOTES), labelled as such.
pub fn rated_votes(dir: &Path) -> Result<RatedVotes, crate::feedback::FeedbackError> {
    use crate::feedback::{final_records, VoteLog};
    let mine = dir.join("votes.jsonl");
    let clicks = VoteLog::new(&mine).load()?.clicks;
    let (clicks, path, recorded) = if clicks.is_empty() {
        let path = repository().join(RECORDED_VOTES);
        (VoteLog::new(&path).load()?.clicks, path, true)
    } else {
        (clicks, mine, false)
    };
    Ok(RatedVotes {
        rows: final_records(&clicks),
        clicks,
        path,
        recorded,
    })
}

impl fmt::Display for RatedVotes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raters: Vec<String> = crate::feedback::rows_per_rater(&self.rows)
            .into_iter()
            .map(|(r, n)| format!("{r} ({n})"))
            .collect();
        if self.recorded {
            writeln!(
                f,
                "RECORDED votes of a scripted rater (a program, not a person), {}:",
                RECORDED_VOTES
            )?;
        } else {
            writeln!(f, "Your votes, {}:", self.path.display())?;
        }
        writeln!(
            f,
            "{} clicks → {} training rows (the last vote per answer) by {}",
            self.clicks.len(),
            self.rows.len(),
            raters.join(", ")
        )?;
        write!(f, "{}", crate::feedback::Stats::of(&self.rows))
    }
}

impl RatedVotes {
    /// evcxr's display: where the votes come from and their counts.
    pub fn evcxr_display(&self) {
        super::text_display(self);
    }
}
