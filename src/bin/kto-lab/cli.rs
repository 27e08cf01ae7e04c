//! Argument parsing and dispatch for the `kto-lab` binary. Each arm is a thin shell over the
//! library; what it prints is what a student would want to see next.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

use kto_lab::feedback::{self, FeedbackStore, Record, TornTail};
use kto_lab::losses::request::LossRequest;
use kto_lab::pipeline;
use kto_lab::table::metrics_table;

/// kto-lab — align a language model from thumbs-up/thumbs-down feedback with KTO.
///
/// With no subcommand, runs the whole workbook on built-in data: the tour of labs 1, 2, 4 and 5
/// (into `out/tour`), then lab 3's training loop (into `out/lab3`).
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole workbook (the default): `tour` into OUT/tour, then `train` into OUT/lab3.
    All {
        /// The output folder.
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// The guided tour of labs 1, 2, 4 and 5 on built-in data.
    Tour {
        /// Where to write charts and data files (the tour's own files are regenerated).
        #[arg(long, default_value = "out/tour")]
        out: PathBuf,
    },
    /// Lab 3: SFT a tiny GPT, collect judged feedback, train KTO / DPO / imbalanced KTO, report.
    Train(TrainArgs),
    /// Write a trained model as a Hugging Face GPT-2 checkpoint (transformers / TRL load it).
    Export {
        /// A new folder for config.json, model.safetensors and the tokenizer files.
        dir: PathBuf,
        /// The weights to export (written by `kto-lab train`).
        #[arg(long, default_value = "out/lab3/kto.safetensors")]
        model: PathBuf,
        /// The tokenizer the model was trained with.
        #[arg(long, default_value = "out/lab3/tokenizer.json")]
        tokenizer: PathBuf,
    },
    /// Compute a loss from log-probs and labels in a JSON file and print its metrics.
    Loss {
        /// A JSON file: {"loss": "kto", "policy_logps": [...], "reference_logps": [...], "labels": [...], ...}
        file: PathBuf,
        /// Print machine-readable JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Collect binary feedback in a JSON Lines file (TRL's unpaired KTO format).
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// KTO or DPO? Analyze a dataset file, or print the decision guide with no file.
    Guide {
        /// A JSON Lines dataset: paired {"prompt","chosen","rejected"} or unpaired {"prompt","completion","label"} rows.
        file: Option<PathBuf>,
        /// Print machine-readable JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Time lab 3's SFT and KTO steps in dfdx and, when Python has torch, in PyTorch eager.
    Bench(crate::bench_cmd::BenchArgs),
    /// Rate the model's answers yourself in a browser: 👍/👎 into OUT/rate/votes.jsonl (needs
    /// `--features rate`: cargo run --release --features rate -- rate).
    Rate(crate::rate_cmd::RateArgs),
    /// KTO on the votes of a rating session, from the model that wrote the answers: before and
    /// after on held-out questions, by the judge and by your own (estimated) taste.
    TrainOnVotes(crate::rate_cmd::TrainOnVotesArgs),
    /// Draw lab 2's charts (value function, KTO loss curves) as SVG and PNG.
    Charts {
        /// The folder to write them in.
        #[arg(long, default_value = "out/charts")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// Where to write feedback, metrics, the report and checkpoints.
    #[arg(long, default_value = "out/lab3")]
    out: PathBuf,
    /// Seed of everything random.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Run the loop with N seeds (SEED, SEED + 1, …), each into OUT/seed-S/, and report each
    /// method's rates as mean ± spread over them (OUT/seeds.{md,json}).
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// SFT optimizer steps.
    #[arg(long)]
    sft_steps: Option<usize>,
    /// KTO (and DPO) optimizer steps.
    #[arg(long)]
    steps: Option<usize>,
    /// KTO feedback rounds: each round after the first samples the last KTO model, judges the
    /// answers, adds them to the feedback and trains KTO on from there.
    #[arg(long)]
    kto_rounds: Option<usize>,
    /// KTO's β.
    #[arg(long)]
    beta: Option<f32>,
    /// KTO's λD (raised automatically per the paper's imbalance rule when thumbs up are scarce).
    #[arg(long)]
    desirable_weight: Option<f32>,
    /// KTO's λU.
    #[arg(long)]
    undesirable_weight: Option<f32>,
    /// Look at the desirable rate every N training steps (logged in metrics.jsonl and drawn as
    /// desirable_rate_curves); 0 turns the looks off.
    #[arg(long)]
    probe_every: Option<usize>,
    /// `cpu`, or `cuda` in a build with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Resume from a saved SFT model (e.g. out/lab3/sft.safetensors) instead of training one.
    #[arg(long)]
    resume_sft: Option<PathBuf>,
    /// Also train KTO and DPO through rank-R LoRA adapters on q, k, v, o (R: 4, 8, 16 or 32),
    /// beside full fine-tuning, one run after the other: OUT/lora.{md,json}, and the adapters
    /// in PEFT's format in OUT/lora-kto/ and OUT/lora-dpo/.
    #[arg(long, value_name = "R")]
    lora: Option<usize>,
    /// LoRA's α (default 2·R: the seed's α/r = 32/16).
    #[arg(long, value_name = "A")]
    lora_alpha: Option<f32>,
    /// The LoRA runs' learning rate as a multiple of the full runs'.
    #[arg(long, value_name = "X", default_value_t = crate::lab3::LORA_LR_FACTOR)]
    lora_lr_factor: f64,
}

impl TrainArgs {
    fn config(&self) -> Result<kto_lab::pipeline::LoopConfig> {
        let expected = if cfg!(feature = "cuda") {
            "cuda"
        } else {
            "cpu"
        };
        if self.device != expected {
            anyhow::bail!(
                "--device {}: this build runs on {expected} (build with --features cuda for cuda)",
                self.device
            );
        }
        let mut cfg = kto_lab::pipeline::LoopConfig {
            seed: self.seed,
            ..Default::default()
        };
        if let Some(n) = self.sft_steps {
            cfg.sft.steps = n;
        }
        if let Some(n) = self.steps {
            cfg.kto.steps = n;
            cfg.dpo.steps = n;
        }
        if let Some(n) = self.kto_rounds {
            if n == 0 {
                anyhow::bail!("--kto-rounds 0: at least 1 round");
            }
            cfg.kto_rounds = n;
        }
        if let Some(b) = self.beta {
            cfg.kto_loss.beta = b;
        }
        if let Some(w) = self.desirable_weight {
            cfg.kto_loss.desirable_weight = w;
        }
        if let Some(w) = self.undesirable_weight {
            cfg.kto_loss.undesirable_weight = w;
        }
        if let Some(every) = self.probe_every {
            cfg.probe = match (every, cfg.probe) {
                (0, _) => None,
                (every, Some(p)) => Some(pipeline::ProbeConfig { every, ..p }),
                (every, None) => Some(pipeline::ProbeConfig {
                    every,
                    samples_per_prompt: 2,
                }),
            };
        }
        cfg.kto_loss.validate()?;
        cfg.sft_checkpoint = self.resume_sft.clone();
        Ok(cfg)
    }

    /// The LoRA comparison asked for, if any.
    fn lora(&self) -> Result<Option<crate::lab3::Lora>> {
        let Some(rank) = self.lora else {
            return Ok(None);
        };
        if !kto_lab::model::lora::RANKS.contains(&rank) {
            anyhow::bail!(
                "--lora {rank}: this build has ranks {:?} (dfdx needs the rank at compile time)",
                kto_lab::model::lora::RANKS
            );
        }
        if !(self.lora_lr_factor.is_finite() && self.lora_lr_factor > 0.0) {
            anyhow::bail!(
                "--lora-lr-factor {}: a finite number > 0",
                self.lora_lr_factor
            );
        }
        let config = kto_lab::model::LoraConfig {
            alpha: self.lora_alpha.unwrap_or(2.0 * rank as f32),
            seed: self.seed,
        };
        config.validate()?;
        Ok(Some(crate::lab3::Lora {
            rank,
            settings: pipeline::LoraSettings {
                config,
                lr_factor: self.lora_lr_factor,
            },
        }))
    }
}

#[derive(Debug, Subcommand)]
enum FeedbackCommand {
    /// Append one thumbs-up or thumbs-down record.
    Add(AddArgs),
    /// Count the records and check the class balance against the KTO paper's rule.
    Stats {
        /// The feedback file.
        file: PathBuf,
        /// λD, the weight you plan to give desirable examples.
        #[arg(long, default_value_t = 1.0)]
        desirable_weight: f64,
        /// λU, the weight you plan to give undesirable examples.
        #[arg(long, default_value_t = 1.0)]
        undesirable_weight: f64,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a KTO training file (prompt, completion, label) — never over an existing file.
    Export {
        /// The feedback file.
        file: PathBuf,
        /// The new training file.
        dest: PathBuf,
    },
    /// Turn paired {"prompt","chosen","rejected"} rows into two KTO rows each.
    Unpair {
        /// The paired JSON Lines file.
        src: PathBuf,
        /// The new unpaired file.
        dest: PathBuf,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// The feedback file (created if missing).
    file: PathBuf,
    /// The prompt the model answered.
    #[arg(long)]
    prompt: String,
    /// The model's answer.
    #[arg(long)]
    completion: String,
    /// Thumbs up: the answer is desirable.
    #[arg(long, conflicts_with = "down", required_unless_present = "down")]
    up: bool,
    /// Thumbs down: the answer is undesirable.
    #[arg(long)]
    down: bool,
    /// Extra JSON object stored with the record (e.g. '{"user":"ana"}'); not exported.
    #[arg(long)]
    metadata: Option<String>,
    /// Flush the record to the disk before reporting it recorded, so that it survives a power
    /// loss too (without it, it survives the process crashing).
    #[arg(long)]
    fsync: bool,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cli.command.unwrap_or(Command::All { out: "out".into() }) {
        Command::All { out: dir } => {
            crate::tour::run(&dir.join("tour"), &mut out)?;
            writeln!(out)?;
            let cfg = kto_lab::pipeline::LoopConfig::default();
            crate::lab3::run(&cfg, None, &dir.join("lab3"), true, &mut out).map(|_| ())
        }
        Command::Tour { out: dir } => crate::tour::run(&dir, &mut out),
        Command::Bench(args) => crate::bench_cmd::run(&args, &mut out),
        Command::Rate(args) => crate::rate_cmd::rate(&args, &mut out),
        Command::TrainOnVotes(args) => crate::rate_cmd::train_on_votes(&args, &mut out),
        Command::Train(args) => {
            let cfg = args.config()?;
            let lora = args.lora()?;
            if lora.is_some() && args.seeds > 1 {
                anyhow::bail!("--lora runs with one seed (drop --seeds)");
            }
            match args.seeds {
                0 => anyhow::bail!("--seeds 0: at least 1 seed"),
                1 => crate::lab3::run(&cfg, lora.as_ref(), &args.out, !args.quiet, &mut out)
                    .map(|_| ()),
                n => crate::lab3::run_seeds(&cfg, n, &args.out, !args.quiet, &mut out),
            }
        }
        Command::Export {
            dir,
            model,
            tokenizer,
        } => {
            let dev = kto_lab::device::device();
            let weights = kto_lab::model::Model::from_file(&dev, &model)?;
            let tokenizer = kto_lab::tokenizer::Tokenizer::load(&tokenizer)?;
            for path in kto_lab::model::export_hf(&weights, &tokenizer, &dir)? {
                writeln!(out, "wrote {}", path.display())?;
            }
            Ok(())
        }
        Command::Loss { file, json } => {
            let report = LossRequest::from_file(&file)?.compute(&file)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                writeln!(out, "{} — {}", report.loss.title(), file.display())?;
                write!(out, "{}", metrics_table(&report.metrics))?;
                writeln!(out, "gradients (negative = pushed up)")?;
                write!(out, "{}", metrics_table(&report.gradients))?;
            }
            Ok(())
        }
        Command::Feedback(cmd) => run_feedback(cmd, &mut out),
        Command::Guide { file: None, .. } => Ok(write!(out, "{}", feedback::DECISION_GUIDE)?),
        Command::Guide {
            file: Some(file),
            json,
        } => {
            let report = feedback::analyze(&file)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
            } else {
                write!(out, "{report}")?;
            }
            Ok(())
        }
        Command::Charts { out: dir } => {
            for path in kto_lab::prospect::write_lab2_charts(&dir)? {
                writeln!(out, "wrote {}", path.display())?;
            }
            Ok(())
        }
    }
}

fn run_feedback(cmd: FeedbackCommand, out: &mut impl Write) -> Result<()> {
    match cmd {
        FeedbackCommand::Add(a) => {
            let mut record = Record::new(a.prompt, a.completion, a.up);
            if let Some(text) = a.metadata {
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("--metadata: not valid JSON: {e}"))?;
                let serde_json::Value::Object(map) = value else {
                    anyhow::bail!(
                        "--metadata: must be a JSON object, like '{{\"user\": \"ana\"}}'"
                    );
                };
                record = record.with_metadata(map);
            }
            let store = FeedbackStore::new(&a.file).with_fsync(a.fsync);
            let appended = store.append(&record)?;
            if let Some(repair) = appended.repaired {
                eprintln!(
                    "warning: {}: a torn last line (byte {}, {} bytes) was moved to {} before appending",
                    a.file.display(),
                    repair.offset,
                    repair.bytes,
                    repair.sidecar.display()
                );
            }
            let thumb = if record.label { "up" } else { "down" };
            writeln!(
                out,
                "{}: thumbs {thumb} recorded (at byte {})",
                a.file.display(),
                appended.offset
            )?;
            Ok(())
        }
        FeedbackCommand::Stats {
            file,
            desirable_weight,
            undesirable_weight,
            json,
        } => {
            let loaded = FeedbackStore::new(&file).load_existing()?;
            warn_torn(&file, loaded.torn_tail.as_ref());
            let stats = feedback::Stats::of(&loaded.records);
            // One-class or empty data has no ratio to check: say why instead of failing.
            let advice = feedback::advise(
                stats.desirable,
                stats.undesirable,
                desirable_weight,
                undesirable_weight,
            );
            if json {
                let advice_json = match &advice {
                    Ok(a) => serde_json::to_value(a)?,
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                };
                let v = serde_json::json!({ "stats": stats, "imbalance": advice_json });
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                writeln!(out, "{}: {stats}", file.display())?;
                match advice {
                    Ok(a) => writeln!(out, "{a}")?,
                    Err(e) => writeln!(out, "{e}")?,
                }
            }
            Ok(())
        }
        FeedbackCommand::Export { file, dest } => {
            let exported = FeedbackStore::new(&file).export(&dest)?;
            warn_torn(&file, exported.torn_tail.as_ref());
            if let Some(w) = &exported.warning {
                eprintln!("warning: {w}");
            }
            writeln!(
                out,
                "{}: {} records ({} desirable, {} undesirable) in TRL's KTO format",
                dest.display(),
                exported.count,
                exported.desirable,
                exported.undesirable
            )?;
            Ok(())
        }
        FeedbackCommand::Unpair { src, dest } => {
            let n = feedback::unpair_file(&src, &dest)?;
            writeln!(
                out,
                "{}: {n} KTO rows from the pairs in {}",
                dest.display(),
                src.display()
            )?;
            Ok(())
        }
    }
}

/// A torn last line is never dropped silently.
fn warn_torn(file: &Path, torn: Option<&TornTail>) {
    if let Some(t) = torn {
        eprintln!(
            "warning: {}:{}: torn last line ({} bytes, no newline, not valid JSON) skipped — a write \
             was cut off; the next append moves it aside",
            file.display(),
            t.line,
            t.bytes
        );
    }
}
