//! `kto-lab bench`: lab 3's SFT and KTO steps timed in dfdx ([`kto_lab::bench`]) and, when a
//! Python with torch is at hand, in PyTorch eager and under `torch.compile`
//! (`bench/torch_bench.py`, the same work with PyTorch's own fast paths), in rounds on the same
//! machine — each round runs the sides in a shuffled order — then every round's ratios and the
//! medians.
//!
//! ```text
//! kto-lab bench                          # batch 32, seq 21 (lab 3's toy world)
//! kto-lab bench --long                   # seq 48
//! kto-lab bench --rounds 5 --json bench.json
//! kto-lab bench --no-compile             # dfdx and eager only (compiling takes a while)
//! ```
//!
//! The Python interpreter is `--python`, else `$KTO_LAB_PYTHON`, else `python3`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};
use clap::Args;
use kto_lab::bench::{run_bench, BenchConfig, BenchReport, StepTiming};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The PyTorch twin of the dfdx bench, shipped in the repository.
const TORCH_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_bench.py");

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Rows per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Prompt tokens per row (default 12; 16 with --long).
    #[arg(long)]
    prompt_len: Option<usize>,
    /// Mean completion tokens per row (default 8; 31 with --long).
    #[arg(long)]
    completion_len: Option<usize>,
    /// The longer setting: prompt 16, completions ~31 (seq 48).
    #[arg(long)]
    long: bool,
    /// Untimed steps before the timed ones.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed steps (per round).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Turn dfdx's allocation cache on (off in lab 3: with threads it can abort inside dfdx).
    #[arg(long)]
    cache: bool,
    /// Run every side this many times, in a shuffled order each round (seeded by --seed);
    /// medians are over all rounds' steps.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Skip the PyTorch sides.
    #[arg(long)]
    no_torch: bool,
    /// Skip the torch.compile side (its compilation takes tens of seconds a round).
    #[arg(long)]
    no_compile: bool,
    /// The Python interpreter (default: $KTO_LAB_PYTHON, else python3).
    #[arg(long)]
    python: Option<String>,
    /// Torch threads (dfdx uses rayon's pool: all cores, or RAYON_NUM_THREADS).
    #[arg(long, default_value_t = 2)]
    torch_threads: usize,
    /// Also write both reports as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

impl BenchArgs {
    fn config(&self) -> BenchConfig {
        let base = if self.long {
            BenchConfig::long()
        } else {
            BenchConfig::default()
        };
        BenchConfig {
            batch: self.batch,
            prompt_len: self.prompt_len.unwrap_or(base.prompt_len),
            completion_len: self.completion_len.unwrap_or(base.completion_len),
            warmup: self.warmup,
            steps: self.steps,
            seed: self.seed,
            cache: self.cache,
        }
    }

    fn python(&self) -> String {
        self.python
            .clone()
            .or_else(|| {
                std::env::var("KTO_LAB_PYTHON")
                    .ok()
                    .filter(|p| !p.is_empty())
            })
            .unwrap_or_else(|| "python3".into())
    }
}

fn torch_available(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The implementations a bench compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Side {
    Dfdx,
    /// PyTorch eager, with the same tricks as the dfdx model.
    Eager,
    /// The same under `torch.compile`.
    Compiled,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Dfdx => "dfdx",
            Side::Eager => "torch eager",
            Side::Compiled => "torch.compile",
        }
    }
}

fn run_torch(
    python: &str,
    threads: usize,
    cfg: &BenchConfig,
    compiled: bool,
) -> Result<BenchReport> {
    let mut cmd = Command::new(python);
    if compiled {
        cmd.arg(TORCH_SCRIPT).arg("--compile");
    } else {
        cmd.arg(TORCH_SCRIPT);
    }
    let out = cmd
        .args(["--batch", &cfg.batch.to_string()])
        .args(["--prompt-len", &cfg.prompt_len.to_string()])
        .args(["--completion-len", &cfg.completion_len.to_string()])
        .args(["--warmup", &cfg.warmup.to_string()])
        .args(["--steps", &cfg.steps.to_string()])
        .args(["--seed", &cfg.seed.to_string()])
        .args(["--threads", &threads.to_string()])
        .output()
        .map_err(|e| anyhow::anyhow!("{python}: cannot run it: {e}"))?;
    if !out.status.success() {
        bail!(
            "{TORCH_SCRIPT} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| anyhow::anyhow!("{TORCH_SCRIPT}: its output is not a bench report: {e}"))
}

/// One report from several rounds: the step times pooled, the summary recomputed.
fn merge(mut reports: Vec<BenchReport>) -> BenchReport {
    let pool = |pick: fn(&BenchReport) -> &StepTiming, rs: &[BenchReport]| {
        let first = pick(&rs[0]);
        let all = rs.iter().flat_map(|r| pick(r).step_ms.clone()).collect();
        StepTiming::from_steps(all, first.tokens_per_step, first.completion_tokens_per_step)
    };
    let sft = pool(|r| &r.sft, &reports);
    let kto = pool(|r| &r.kto, &reports);
    let mut out = reports.swap_remove(0);
    out.sft = sft;
    out.kto = kto;
    out
}

/// Runs the bench as `args` asks, printing progress on stderr and the table on `w`.
pub fn run(args: &BenchArgs, w: &mut impl Write) -> Result<()> {
    let cfg = args.config();
    cfg.validate()?;
    let python = args.python();
    let torch = !args.no_torch && torch_available(&python);
    if !args.no_torch && !torch {
        eprintln!("note: `{python} -c \"import torch\"` failed; timing dfdx only (set --python or KTO_LAB_PYTHON)");
    }
    let rounds = args.rounds.max(1);
    let mut sides = vec![Side::Dfdx];
    if torch {
        sides.push(Side::Eager);
        if !args.no_compile {
            sides.push(Side::Compiled);
        }
    }
    // Which side runs first matters on a machine that heats up or gets busier: shuffle.
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x0bde);
    let mut results: Vec<Vec<BenchReport>> = vec![Vec::new(); sides.len()];
    let mut orders = Vec::new();
    for round in 1..=rounds {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        order.shuffle(&mut rng);
        for &i in &order {
            eprintln!("round {round}/{rounds}: {} …", sides[i].name());
            results[i].push(match sides[i] {
                Side::Dfdx => run_bench(&cfg)?,
                Side::Eager => run_torch(&python, args.torch_threads, &cfg, false)?,
                Side::Compiled => run_torch(&python, args.torch_threads, &cfg, true)?,
            });
        }
        orders.push(order.iter().map(|&i| sides[i]).collect::<Vec<_>>());
    }
    let pooled: Vec<BenchReport> = results.iter().cloned().map(merge).collect();
    let rust = &pooled[0];
    writeln!(
        w,
        "batch {} × seq {} ({} completion tokens/row on average), {} warmup + {} timed steps × {rounds} round(s), {} cores",
        cfg.batch, rust.seq_len, cfg.completion_len, cfg.warmup, cfg.steps, rust.threads
    )?;
    for (side, report) in sides.iter().zip(&pooled) {
        writeln!(
            w,
            "{:<14} {}",
            format!("{}:", side.name()),
            report.implementation
        )?;
        if report.seq_len != rust.seq_len {
            eprintln!(
                "warning: the sides ran different shapes (seq {} vs {})",
                rust.seq_len, report.seq_len
            );
        }
    }
    for (step, pick) in [
        (
            "SFT",
            (|r: &BenchReport| &r.sft) as fn(&BenchReport) -> &StepTiming,
        ),
        ("KTO", |r: &BenchReport| &r.kto),
    ] {
        writeln!(w, "\n{step} step, median ms per round (dfdx÷X = X ms ÷ dfdx ms: above 1, dfdx is faster)\n")?;
        let mut header = "| round | order |".to_string();
        let mut rule = "|---|---|".to_string();
        for side in &sides {
            header += &format!(" {} ms |", side.name());
            rule += "---|";
        }
        for side in &sides[1..] {
            header += &format!(" dfdx÷{} |", side.name());
            rule += "---|";
        }
        writeln!(w, "{header}\n{rule}")?;
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
        for (round, order) in orders.iter().enumerate() {
            let names: Vec<&str> = order.iter().map(|s| s.name()).collect();
            let ms: Vec<f64> = results.iter().map(|r| pick(&r[round]).median_ms).collect();
            let mut line = format!("| {} | {} |", round + 1, names.join(" → "));
            for m in &ms {
                line += &format!(" {m:.1} |");
            }
            for (i, m) in ms.iter().enumerate().skip(1) {
                ratios[i].push(m / ms[0]);
                line += &format!(" {:.2}× |", m / ms[0]);
            }
            writeln!(w, "{line}")?;
        }
        let mut line =
            "| **median** | all steps pooled; ratios: median of the rounds' |".to_string();
        for r in &pooled {
            line += &format!(" **{:.1}** |", pick(r).median_ms);
        }
        for r in ratios.iter_mut().skip(1) {
            line += &format!(" **{:.2}×** |", median(r));
        }
        writeln!(w, "{line}")?;
    }
    writeln!(w)?;
    writeln!(
        w,
        "ms: wall time of a step (batch, forwards, loss, backward, clip, AdamW); each side does the same work: SFT {} positions, KTO 3 forwards of {} (LM head only at the scored completion tokens).",
        rust.sft.tokens_per_step, rust.sft.tokens_per_step
    )?;
    if let Some(path) = &args.json {
        let by_side: serde_json::Map<String, serde_json::Value> = sides
            .iter()
            .zip(&results)
            .map(|(s, r)| Ok((s.name().to_string(), serde_json::to_value(r)?)))
            .collect::<Result<_, serde_json::Error>>()?;
        let all = serde_json::json!({ "orders": orders, "rounds": by_side });
        std::fs::write(path, serde_json::to_string_pretty(&all)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The median of some numbers (NaN for none).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
