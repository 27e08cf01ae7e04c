//! Side-by-side speed of lab 3's training steps: dfdx (`kto_lab::bench`) and, when
//! `python3 -c "import torch"` works, PyTorch eager (`bench/torch_bench.py`), back to back in one
//! run on the same machine, then a table with the ratio of the medians.
//!
//! ```text
//! cargo run --release --example bench                 # batch 32, seq 21 (lab 3's toy world)
//! cargo run --release --example bench -- --long       # seq 48
//! cargo run --release --example bench -- --rounds 3 --json bench.json
//! ```

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use kto_lab::bench::{run_bench, BenchConfig, BenchReport, StepTiming};

#[derive(Parser, Debug)]
#[command(about = "Tokens/s of lab 3's SFT and KTO steps: dfdx beside PyTorch eager")]
struct Args {
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
    /// Turn dfdx's allocation cache off.
    #[arg(long)]
    no_cache: bool,
    /// Alternate the two sides this many times; medians are over all rounds' steps.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Skip the PyTorch side.
    #[arg(long)]
    no_torch: bool,
    /// The Python interpreter.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Torch threads (dfdx uses rayon's pool: all cores, or RAYON_NUM_THREADS).
    #[arg(long, default_value_t = 2)]
    torch_threads: usize,
    /// Also write both reports as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn torch_available(python: &str) -> bool {
    Command::new(python)
        .args(["-c", "import torch"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn run_torch(args: &Args, cfg: &BenchConfig) -> Result<BenchReport, Box<dyn std::error::Error>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/torch_bench.py");
    let out = Command::new(&args.python)
        .arg(script)
        .args(["--batch", &cfg.batch.to_string()])
        .args(["--prompt-len", &cfg.prompt_len.to_string()])
        .args(["--completion-len", &cfg.completion_len.to_string()])
        .args(["--warmup", &cfg.warmup.to_string()])
        .args(["--steps", &cfg.steps.to_string()])
        .args(["--seed", &cfg.seed.to_string()])
        .args(["--threads", &args.torch_threads.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
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

fn row(name: &str, rust: &StepTiming, torch: Option<&StepTiming>) {
    let t = |f: fn(&StepTiming) -> f64| torch.map_or("—".to_string(), |x| format!("{:.1}", f(x)));
    let ratio = torch.map_or("—".to_string(), |x| {
        format!("{:.2}×", x.median_ms / rust.median_ms)
    });
    println!(
        "| {name:<4} | {:>9.1} | {:>9} | {:>7.1} | {:>7} | {:>9.0} | {:>9} | {:>13} |",
        rust.median_ms,
        t(|x| x.median_ms),
        rust.min_ms,
        t(|x| x.min_ms),
        rust.tokens_per_s,
        torch.map_or("—".to_string(), |x| format!("{:.0}", x.tokens_per_s)),
        ratio,
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let base = if args.long {
        BenchConfig::long()
    } else {
        BenchConfig::default()
    };
    let cfg = BenchConfig {
        batch: args.batch,
        prompt_len: args.prompt_len.unwrap_or(base.prompt_len),
        completion_len: args.completion_len.unwrap_or(base.completion_len),
        warmup: args.warmup,
        steps: args.steps,
        seed: args.seed,
        cache: !args.no_cache,
    };
    let torch = !args.no_torch && torch_available(&args.python);
    if !args.no_torch && !torch {
        eprintln!(
            "note: `{} -c \"import torch\"` failed; timing dfdx only",
            args.python
        );
    }

    let (mut rust, mut py) = (Vec::new(), Vec::new());
    for round in 0..args.rounds.max(1) {
        eprintln!("round {}: dfdx …", round + 1);
        rust.push(run_bench(&cfg)?);
        if torch {
            eprintln!("round {}: pytorch …", round + 1);
            py.push(run_torch(&args, &cfg)?);
        }
    }
    let rust = merge(rust);
    let py = (!py.is_empty()).then(|| merge(py));

    println!(
        "batch {} × seq {} ({} completion tokens/row on average), {} warmup + {} timed steps × {} round(s), {} cores",
        cfg.batch,
        rust.seq_len,
        cfg.completion_len,
        cfg.warmup,
        cfg.steps,
        args.rounds.max(1),
        rust.threads
    );
    println!("dfdx:    {}", rust.implementation);
    if let Some(p) = &py {
        println!("pytorch: {}", p.implementation);
        if p.seq_len != rust.seq_len {
            eprintln!(
                "warning: the sides ran different shapes (seq {} vs {})",
                rust.seq_len, p.seq_len
            );
        }
    }
    println!();
    println!("| step | dfdx ms   | torch ms  | dfdx min | torch min | dfdx tok/s | torch tok/s | torch/dfdx (median) |");
    println!("|------|-----------|-----------|---------|---------|-----------|-----------|---------------|");
    row("SFT", &rust.sft, py.as_ref().map(|p| &p.sft));
    row("KTO", &rust.kto, py.as_ref().map(|p| &p.kto));
    println!();
    println!(
        "tok/s counts every position of every forward (SFT: B·S = {}, KTO: 3·B·S = {}); ratio > 1 means dfdx is faster.",
        rust.sft.tokens_per_step, rust.kto.tokens_per_step
    );

    if let Some(path) = &args.json {
        let both = serde_json::json!({ "dfdx": rust, "pytorch": py });
        std::fs::write(path, serde_json::to_string_pretty(&both)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
