//! The main job: lab 3's closed feedback loop with the default model, writing `out/`.

use anyhow::{bail, Result};
use std::io::Write;
use std::path::Path;

use kto_lab::model::{export_peft, LoraModel, Model};
use kto_lab::pipeline::{self, LoopConfig, LoopOutcome, LoopReport, LoraSettings, SeedSummary};
use kto_lab::train::MetricsLog;

/// The LoRA runs' learning rate as a multiple of the full runs' (`--lora-lr-factor`): measured
/// in README, "LoRA".
pub const LORA_LR_FACTOR: f64 = 10.0;

/// `--lora R`: the rank and the rest of the settings.
pub struct Lora {
    /// R (one of `kto_lab::model::lora::RANKS`).
    pub rank: usize,
    /// α, seed, learning-rate factor.
    pub settings: LoraSettings,
}

/// The files the loop appends to; removed first so each run starts fresh. Everything else it
/// writes (report, checkpoints, charts) is replaced when the run finishes, and nothing else in
/// the folder is touched — so `--resume-sft out/lab3/sft.safetensors` reads the old model.
pub const APPENDED: [&str; 2] = ["feedback.jsonl", "metrics.jsonl"];

/// Runs the loop with `cfg`, printing progress and the table to `w`, writing into `out`.
pub fn run(
    cfg: &LoopConfig,
    lora: Option<&Lora>,
    out: &Path,
    progress: bool,
    w: &mut impl Write,
) -> Result<LoopReport> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the output folder: {e}", out.display()))?;
    remove_old(out, &APPENDED)?;
    writeln!(w, "== Lab 3 · KTO on a tiny GPT, from thumbs up/down ==\n")?;
    let dev = kto_lab::device::device();
    let mut log = MetricsLog::to_file(&out.join("metrics.jsonl"), progress)?;
    let started = std::time::Instant::now();
    let outcome = pipeline::run_loop(|seed| Model::init(&dev, seed), cfg, Some(out), &mut log)?;
    let seconds = started.elapsed().as_secs_f64();
    let report = &outcome.report;
    writeln!(
        w,
        "Feedback from the SFT model's samples: {}",
        report.feedback
    )?;
    for (i, stats) in report.later_feedback.iter().enumerate() {
        writeln!(w, "Feedback from round {}'s KTO model: {stats}", i + 1)?;
    }
    writeln!(w, "DPO pairs from the same samples: {}\n", report.dpo_pairs)?;
    write!(w, "{}", report.markdown())?;
    writeln!(w, "\n(lab 3 took {seconds:.1} s)")?;
    let later: String = report
        .later_feedback
        .iter()
        .enumerate()
        .map(|(i, stats)| format!("Feedback from round {}'s KTO model: {stats}\n\n", i + 1))
        .collect();
    let md = format!(
        "# Lab 3 report\n\nFeedback: {}\n\n{later}DPO pairs: {}\n\n{}",
        report.feedback,
        report.dpo_pairs,
        report.markdown()
    );
    std::fs::write(out.join("report.md"), md)
        .map_err(|e| anyhow::anyhow!("{}: {e}", out.join("report.md").display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join("report.json"), json)
        .map_err(|e| anyhow::anyhow!("{}: {e}", out.join("report.json").display()))?;

    outcome.tokenizer.save(out.join("tokenizer.json"))?;
    for (name, model) in [
        ("sft", &outcome.reference),
        ("kto", &outcome.kto),
        ("dpo", &outcome.dpo),
        ("kto-imbalanced", &outcome.kto_imbalanced),
    ] {
        model.save(out.join(format!("{name}.safetensors")))?;
    }
    for (i, model) in outcome.kto_later.iter().enumerate() {
        model.save(out.join(format!("kto-round{}.safetensors", i + 2)))?;
    }
    let records = log.records();
    for (name, chart) in [
        ("kto_curves", pipeline::kto_curves(records)),
        ("loss_curves", pipeline::loss_curves(records)),
        ("desirable_rate", pipeline::desirable_rates(report)),
        (
            "desirable_rate_curves",
            pipeline::desirable_rate_curves(records),
        ),
    ] {
        chart.save_svg(out.join(format!("{name}.svg")))?;
        chart.save_png(out.join(format!("{name}.png")))?;
    }
    writeln!(
        w,
        "Wrote {}/: feedback.jsonl, metrics.jsonl, report.md, checkpoints (*.safetensors, tokenizer.json), charts",
        out.display()
    )?;
    if let Some(lora) = lora {
        match lora.rank {
            4 => run_lora::<4>(&outcome, cfg, &lora.settings, out, w)?,
            8 => run_lora::<8>(&outcome, cfg, &lora.settings, out, w)?,
            16 => run_lora::<16>(&outcome, cfg, &lora.settings, out, w)?,
            32 => run_lora::<32>(&outcome, cfg, &lora.settings, out, w)?,
            r => bail!("--lora {r}: not a rank this build has"),
        }
    }
    Ok(outcome.report)
}

/// KTO and DPO through rank-`R` adapters beside full fine-tuning: prints the table, writes
/// `lora.{md,json}` and the adapters in PEFT's format (`lora-kto/`, `lora-dpo/`).
fn run_lora<const R: usize>(
    outcome: &LoopOutcome<Model>,
    cfg: &LoopConfig,
    settings: &LoraSettings,
    out: &Path,
    w: &mut impl Write,
) -> Result<()> {
    writeln!(
        w,
        "\n== LoRA r = {R} beside full fine-tuning (one run after the other) ==\n"
    )?;
    let lora = pipeline::lora_beside_full::<_, _, _, _, _, _, R, _>(outcome, cfg, settings)?;
    let table = lora.report.markdown();
    writeln!(w, "{table}")?;
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    write(
        "lora.md",
        format!(
            "# LoRA r = {R}, α = {} beside full fine-tuning\n\n{table}",
            lora.report.alpha
        ),
    )?;
    write("lora.json", serde_json::to_string_pretty(&lora.report)?)?;
    let models: [(&str, &LoraModel<R>); 2] = [("lora-kto", &lora.kto), ("lora-dpo", &lora.dpo)];
    for (name, model) in models {
        let dir = out.join(name);
        // Replaced, like every file the run writes; the export itself never overwrites.
        remove_old(
            &dir,
            &[
                kto_lab::model::export::PEFT_CONFIG_FILE,
                kto_lab::model::export::PEFT_WEIGHTS_FILE,
            ],
        )?;
        export_peft(model, &dir)?;
    }
    writeln!(
        w,
        "Wrote {0}/lora.md, lora.json and the adapters in PEFT's format: {0}/lora-kto/, {0}/lora-dpo/ \
         (base model: `kto-lab export DIR --model {0}/sft.safetensors`)",
        out.display()
    )?;
    Ok(())
}

/// Runs the loop with `n` seeds (`cfg.seed`, `cfg.seed + 1`, …), each into `out/seed-S/`, then
/// writes and prints each method's numbers as mean ± spread over the seeds
/// (`out/seeds.{md,json}`).
pub fn run_seeds(
    cfg: &LoopConfig,
    n: u64,
    out: &Path,
    progress: bool,
    w: &mut impl Write,
) -> Result<()> {
    let mut runs = Vec::new();
    for seed in (0..n).map(|i| cfg.seed + i) {
        writeln!(w, "-- seed {seed} --")?;
        let cfg = LoopConfig {
            seed,
            ..cfg.clone()
        };
        let report = run(&cfg, None, &out.join(format!("seed-{seed}")), progress, w)?;
        runs.push((seed, report));
        writeln!(w)?;
    }
    let summary = SeedSummary::of(&runs).map_err(anyhow::Error::msg)?;
    let md = summary.markdown();
    writeln!(w, "== Lab 3 over {n} seeds ==\n\n{md}")?;
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    write("seeds.md", format!("# Lab 3 over {n} seeds\n\n{md}"))?;
    write("seeds.json", serde_json::to_string_pretty(&summary)?)?;
    writeln!(w, "Wrote {}/seeds.md and seeds.json", out.display())?;
    Ok(())
}

/// Removes the files `names` in `dir` that a run replaces (missing ones are fine).
fn remove_old(dir: &Path, names: &[&str]) -> Result<()> {
    for name in names {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                bail!("{}: cannot replace the old file: {e}", path.display())
            }
            _ => {}
        }
    }
    Ok(())
}
