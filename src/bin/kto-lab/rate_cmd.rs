//! `kto-lab rate` (the rating page) and `kto-lab train-on-votes` (KTO on what was rated).
//!
//! A rating session lives in one folder (default `out/rate`):
//!
//! | file | written by | what |
//! |---|---|---|
//! | `session.json` | `rate`, once | which model wrote the answers (lab 3's or the classroom's) |
//! | `sft.safetensors`, `tokenizer.json` | `rate`, once, when no lab 3 model exists | the classroom model trained for the session |
//! | `pool.json` | `rate`, once | the answers to rate, with their ids |
//! | `votes.jsonl` | the page, one line per click | the store: never rewritten |
//! | `report.md`, `report.json`, `kto.safetensors` | `train-on-votes` | the run on the votes |

// Without the page (`rate` off) only train-on-votes uses what is below.
#![cfg_attr(not(feature = "rate"), allow(dead_code))]

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use kto_lab::classroom::{self, ClassroomModel};
use kto_lab::feedback::{final_records, AnswerPool, VoteLog};
use kto_lab::model::{LanguageModel, Model};
use kto_lab::pipeline::{LoopConfig, RatingModel, VotesReport};
use kto_lab::tokenizer::Tokenizer;

/// The main job's SFT model: what `kto-lab rate` shows by default.
const LAB3_SFT: &str = "out/lab3/sft.safetensors";

#[derive(Debug, Args)]
pub struct RateArgs {
    /// The session folder (answers, votes; reused on restart, so a rater resumes).
    #[arg(long, default_value = "out/rate")]
    dir: PathBuf,
    /// The SFT model that answers (default: out/lab3/sft.safetensors from `cargo run --release`;
    /// without it, the classroom model is trained first, in seconds).
    #[arg(long)]
    model: Option<PathBuf>,
    /// The model's tokenizer (default: tokenizer.json beside the model).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Answers sampled per training question, duplicates dropped (default: 2 for lab 3's
    /// model, 60 questions; 6 for the classroom model, 12 questions).
    #[arg(long)]
    answers_per_prompt: Option<usize>,
    /// Seed of the sampling and the order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The port (0: any free port).
    #[arg(long, default_value_t = 8737)]
    port: u16,
    /// The address to listen on. Not loopback (a class on a LAN): names required, and read
    /// README's "Rate it yourself" first.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Refuse votes without a rater name.
    #[arg(long)]
    require_names: bool,
    /// Flush each vote to the disk before answering (survives a power loss, not only a crash).
    #[arg(long)]
    fsync: bool,
    /// Also write the page's URL (with its token) to this file, for scripts.
    #[arg(long)]
    url_file: Option<PathBuf>,
    /// Stop when the process with this id ends (a notebook's kernel starting the page).
    #[arg(long)]
    parent_pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct TrainOnVotesArgs {
    /// The session folder `kto-lab rate` wrote.
    #[arg(long, default_value = "out/rate")]
    dir: PathBuf,
    /// The votes (default: DIR/votes.jsonl).
    #[arg(long)]
    votes: Option<PathBuf>,
    /// KTO optimizer steps (default: the model's loop settings).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of the KTO run and the held-out samples.
    #[arg(long)]
    seed: Option<u64>,
}

/// Which model a session's answers come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Size {
    /// The main job's model (`LoopConfig::default()`).
    Lab3,
    /// The classroom model (`LoopConfig::classroom()`).
    Classroom,
}

/// `session.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    size: Size,
    model: PathBuf,
    tokenizer: PathBuf,
}

impl Session {
    fn path(dir: &Path) -> PathBuf {
        dir.join("session.json")
    }

    fn load(dir: &Path) -> Result<Option<Session>> {
        let path = Session::path(dir);
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(serde_json::from_slice(&data).with_context(|| {
                format!("{}: not a rating session", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }

    fn config(&self) -> LoopConfig {
        match self.size {
            Size::Lab3 => LoopConfig::default(),
            Size::Classroom => LoopConfig::classroom(),
        }
    }

    fn description(&self) -> String {
        match self.size {
            Size::Lab3 => format!("lab 3's SFT model ({})", self.model.display()),
            Size::Classroom => classroom::CLASSROOM_DESCRIPTION.to_string(),
        }
    }

    fn rating_model<M: LanguageModel<kto_lab::device::Dev>>(
        &self,
        init: impl Fn(u64) -> M,
        cfg: LoopConfig,
    ) -> Result<RatingModel<M>> {
        let mut model = init(cfg.seed);
        model.load(&self.model)?;
        Ok(RatingModel {
            model,
            tokenizer: Tokenizer::load(&self.tokenizer)?,
            config: cfg,
            description: self.description(),
        })
    }
}

/// Runs `job` with the session's model, whichever size it is.
macro_rules! with_model {
    ($session:expr, $cfg:expr, |$m:ident| $job:expr) => {{
        let dev = kto_lab::device::device();
        match $session.size {
            Size::Lab3 => {
                let $m = $session.rating_model(|s| Model::init(&dev, s), $cfg)?;
                $job
            }
            Size::Classroom => {
                let $m = $session.rating_model(|s| ClassroomModel::init(&dev, s), $cfg)?;
                $job
            }
        }
    }};
}

/// The session in `args.dir`: reused when it exists (a restart resumes), made otherwise.
fn open_session(args: &RateArgs, w: &mut impl Write) -> Result<(Session, AnswerPool)> {
    let pool_path = args.dir.join("pool.json");
    if let Some(session) = Session::load(&args.dir)? {
        if let Some(model) = &args.model {
            if model != &session.model {
                bail!(
                    "{}: this session's answers come from {}, not {} (use another --dir for another model)",
                    args.dir.display(),
                    session.model.display(),
                    model.display()
                );
            }
        }
        let pool = AnswerPool::load(&pool_path)?;
        writeln!(
            w,
            "Resuming the session in {}/ ({} answers)",
            args.dir.display(),
            pool.answers.len()
        )?;
        return Ok((session, pool));
    }
    if args.answers_per_prompt == Some(0) {
        bail!("--answers-per-prompt 0: at least 1");
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("{}: cannot create the session folder", args.dir.display()))?;
    let session = match &args.model {
        Some(model) => {
            if !model.is_file() {
                bail!("{}: no such model file", model.display());
            }
            lab3_session(model, args.tokenizer.clone())
        }
        None if Path::new(LAB3_SFT).is_file() => {
            lab3_session(Path::new(LAB3_SFT), args.tokenizer.clone())
        }
        None => {
            writeln!(
                w,
                "No trained model at {LAB3_SFT} (`cargo run --release` makes one): training the \
                 classroom model for this session (a few seconds)…"
            )?;
            let rating = classroom::rating_model()?;
            rating.save(&args.dir)?;
            Session {
                size: Size::Classroom,
                model: args.dir.join("sft.safetensors"),
                tokenizer: args.dir.join("tokenizer.json"),
            }
        }
    };
    let cfg = session.config();
    let per_prompt = args.answers_per_prompt.unwrap_or(match session.size {
        Size::Lab3 => 2,
        Size::Classroom => 6,
    });
    let pool = with_model!(session, cfg, |m| m.pool(per_prompt, args.seed)?);
    pool.save_new(&pool_path)?;
    std::fs::write(
        Session::path(&args.dir),
        serde_json::to_string_pretty(&session)?,
    )
    .with_context(|| format!("{}", Session::path(&args.dir).display()))?;
    writeln!(
        w,
        "New session in {}/: {} answers from {}",
        args.dir.display(),
        pool.answers.len(),
        session.description()
    )?;
    Ok((session, pool))
}

fn lab3_session(model: &Path, tokenizer: Option<PathBuf>) -> Session {
    Session {
        size: Size::Lab3,
        model: model.to_path_buf(),
        tokenizer: tokenizer.unwrap_or_else(|| model.with_file_name("tokenizer.json")),
    }
}

/// `kto-lab rate`.
#[cfg(feature = "rate")]
pub fn rate(args: &RateArgs, w: &mut impl Write) -> Result<()> {
    let (_, pool) = open_session(args, w)?;
    let log = VoteLog::new(args.dir.join("votes.jsonl")).with_fsync(args.fsync);
    let addr = std::net::SocketAddr::new(args.bind, args.port);
    let page = kto_lab::rate::start(kto_lab::rate::RateOptions {
        pool,
        log,
        bind: addr,
        names_required: args.require_names,
    })?;
    if !args.bind.is_loopback() {
        writeln!(
            w,
            "WARNING: listening on {} — anyone who can reach it and has the link can vote; the \
             link travels in clear HTTP. Rater names are required. See README, \"Rate it yourself\".\n\
             Students open http://<this machine's address>:{}/?token=… (the token below).",
            args.bind,
            page.addr().port()
        )?;
    }
    if let Some(path) = &args.url_file {
        std::fs::write(path, format!("{}\n", page.url()))
            .with_context(|| format!("{}", path.display()))?;
    }
    writeln!(
        w,
        "Rate the answers at {}\nVotes go to {} (one line per click). Stop with Ctrl-C; then: \
         cargo run --release -- train-on-votes --dir {}",
        page.url(),
        args.dir.join("votes.jsonl").display(),
        args.dir.display()
    )?;
    w.flush()?;
    match args.parent_pid {
        Some(pid) => {
            while process_alive(pid) {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            page.stop();
        }
        None => page.wait(),
    }
    Ok(())
}

/// Whether process `pid` still runs (signal 0 checks without sending anything).
#[cfg(feature = "rate")]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `kto-lab rate` in a build without the page.
#[cfg(not(feature = "rate"))]
pub fn rate(_: &RateArgs, _: &mut impl Write) -> Result<()> {
    bail!("this build has no rating page (a web server, so it is opt-in): cargo run --release --features rate -- rate")
}

/// `kto-lab train-on-votes`.
pub fn train_on_votes(args: &TrainOnVotesArgs, w: &mut impl Write) -> Result<()> {
    let Some(session) = Session::load(&args.dir)? else {
        bail!(
            "{}: no rating session here (start one with: cargo run --release --features rate -- rate --dir {})",
            Session::path(&args.dir).display(),
            args.dir.display()
        );
    };
    let votes = args
        .votes
        .clone()
        .unwrap_or_else(|| args.dir.join("votes.jsonl"));
    if !votes.is_file() {
        bail!(
            "{}: no votes yet (rate some answers first)",
            votes.display()
        );
    }
    let loaded = VoteLog::new(&votes).load()?;
    if let Some(torn) = &loaded.torn_tail {
        writeln!(
            w,
            "note: {}:{}: a line cut short by a crash ({} bytes) is not counted",
            votes.display(),
            torn.line,
            torn.bytes
        )?;
    }
    let rows = final_records(&loaded.clicks);
    let mut cfg = session.config();
    if let Some(steps) = args.steps {
        cfg.kto.steps = steps;
    }
    if let Some(seed) = args.seed {
        cfg.seed = seed;
        cfg.kto.seed = seed;
    }
    writeln!(
        w,
        "{} clicks → {} training rows (each rater's last vote per answer); KTO from {}…",
        loaded.clicks.len(),
        rows.len(),
        session.description()
    )?;
    let started = std::time::Instant::now();
    let report: VotesReport = with_model!(session, cfg, |m| {
        let (trained, report) = m.train_on(&rows)?;
        trained.save(args.dir.join("kto.safetensors"))?;
        report
    });
    let md = format!("# KTO on your votes\n\n{}", report.markdown());
    write!(w, "{}", report.markdown())?;
    writeln!(w, "\n(took {:.1} s)", started.elapsed().as_secs_f64())?;
    std::fs::write(args.dir.join("report.md"), md)?;
    std::fs::write(
        args.dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    writeln!(
        w,
        "Wrote {0}/report.md, {0}/report.json, {0}/kto.safetensors",
        args.dir.display()
    )?;
    Ok(())
}
