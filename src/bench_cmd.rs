//! `kto-lab bench`: lab 3's SFT and KTO steps timed in dfdx ([`kto_lab::bench`]) and, when a
//! Python with torch is at hand, in PyTorch eager (`bench/torch_bench.py`), alternating rounds
//! in one run on the same machine; then a table of medians and the torch/dfdx ratio.
//!
//! ```text
//! kto-lab bench                          # batch 32, seq 21 (lab 3's toy world)
//! kto-lab bench --long                   # seq 48
//! kto-lab bench --rounds 3 --json bench.json
//! ```
//!
//! The Python interpreter is `--python`, else `$KTO_LAB_PYTHON`, else `python3`.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};
use clap::Args;
use kto_lab::bench::{run_bench, BenchConfig, BenchReport, StepTiming};

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
    /// Alternate the two sides this many times; medians are over all rounds' steps.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Skip the PyTorch side.
    #[arg(long)]
    no_torch: bool,
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

fn run_torch(python: &str, threads: usize, cfg: &BenchConfig) -> Result<BenchReport> {
    let out = Command::new(python)
        .arg(TORCH_SCRIPT)
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

fn row(
    w: &mut impl Write,
    name: &str,
    rust: &StepTiming,
    torch: Option<&StepTiming>,
) -> Result<()> {
    let dash = || "—".to_string();
    let t = |f: fn(&StepTiming) -> f64| torch.map_or_else(dash, |x| format!("{:.1}", f(x)));
    let ratio = torch.map_or_else(dash, |x| {
        format!("{:.2}×", rust.tokens_per_s / x.tokens_per_s)
    });
    writeln!(
        w,
        "| {name:<4} | {:>9.1} | {:>9} | {:>8.1} | {:>9} | {:>10.0} | {:>11} | {:>10} |",
        rust.median_ms,
        t(|x| x.median_ms),
        rust.min_ms,
        t(|x| x.min_ms),
        rust.tokens_per_s,
        torch.map_or_else(dash, |x| format!("{:.0}", x.tokens_per_s)),
        ratio,
    )?;
    Ok(())
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
    let (mut rust, mut py) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        eprintln!("round {round}/{rounds}: dfdx …");
        rust.push(run_bench(&cfg)?);
        if torch {
            eprintln!("round {round}/{rounds}: pytorch …");
            py.push(run_torch(&python, args.torch_threads, &cfg)?);
        }
    }
    let rust = merge(rust);
    let py = (!py.is_empty()).then(|| merge(py));

    writeln!(
        w,
        "batch {} × seq {} ({} completion tokens/row on average), {} warmup + {} timed steps × {rounds} round(s), {} cores",
        cfg.batch, rust.seq_len, cfg.completion_len, cfg.warmup, cfg.steps, rust.threads
    )?;
    writeln!(w, "dfdx:    {}", rust.implementation)?;
    if let Some(p) = &py {
        writeln!(w, "pytorch: {}", p.implementation)?;
        if p.seq_len != rust.seq_len {
            eprintln!(
                "warning: the sides ran different shapes (seq {} vs {})",
                rust.seq_len, p.seq_len
            );
        }
    }
    writeln!(w)?;
    writeln!(w, "| step | dfdx ms   | torch ms  | dfdx min | torch min | dfdx tok/s | torch tok/s | dfdx÷torch tok/s |")?;
    writeln!(w, "|------|-----------|-----------|----------|-----------|------------|-------------|------------|")?;
    row(w, "SFT", &rust.sft, py.as_ref().map(|p| &p.sft))?;
    row(w, "KTO", &rust.kto, py.as_ref().map(|p| &p.kto))?;
    writeln!(w)?;
    writeln!(
        w,
        "ms: median (and min) wall time of a step; tok/s counts every position of every forward (SFT: B·S = {}, KTO: 3·B·S = {}).",
        rust.sft.tokens_per_step, rust.kto.tokens_per_step
    )?;
    writeln!(w, "dfdx÷torch tok/s: above 1 means dfdx is faster (= torch median ms ÷ dfdx median ms); the target is ≥ 1.")?;
    if let Some(path) = &args.json {
        let both = serde_json::json!({ "dfdx": rust, "pytorch": py });
        std::fs::write(path, serde_json::to_string_pretty(&both)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
