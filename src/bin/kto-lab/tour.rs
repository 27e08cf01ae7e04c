//! The guided tour that `cargo run --release` prints: each lab's key result on built-in data,
//! with the files it makes written under the output folder (regenerated on every run).

use anyhow::Result;
use std::io::Write;
use std::path::Path;

use kto_lab::feedback::{self, FeedbackStore, PairedRecord, Record};
use kto_lab::losses::{plain, ExampleBatch, KtoConfig};
use kto_lab::prospect::{self, Label, ProspectParams};
use kto_lab::table::metrics_table;

/// The seed of every random thing in the tour.
pub const SEED: u64 = 42;

/// Runs the tour, printing to `w` and writing files under `out`.
pub fn run(out: &Path, w: &mut impl Write) -> Result<()> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create the output folder: {e}", out.display()))?;
    writeln!(w, "kto-lab — a guided tour of the labs (seed {SEED})")?;
    lab1(w)?;
    lab2(out, w)?;
    lab4(out, w)?;
    lab5(out, w)?;
    writeln!(
        w,
        "\nDone. Files are in {}/ (regenerated on every run).",
        out.display()
    )?;
    Ok(())
}

/// Removes a file the tour wrote on an earlier run, so this run starts it afresh.
fn fresh(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            anyhow::bail!(
                "{}: cannot replace the tour's old file: {e}",
                path.display()
            )
        }
        _ => Ok(()),
    }
}

/// A path inside the output folder, printed relative to it (stable across machines).
fn show(path: &Path, out: &Path) -> String {
    path.strip_prefix(out).unwrap_or(path).display().to_string()
}

fn heading(w: &mut impl Write, title: &str) -> Result<()> {
    writeln!(w, "\n== {title} ==\n")?;
    Ok(())
}

/// Lab 1: the same batch through the simplified loss, the paper's loss and APO-zero.
fn lab1(w: &mut impl Write) -> Result<()> {
    heading(w, "Lab 1 · The KTO loss")?;
    let example = ExampleBatch::generate(8, SEED);
    writeln!(
        w,
        "A batch of {} completions, half thumbs up, half thumbs down. Log-probs are sums over\n\
         completion tokens; r = log πθ − log πref is the implicit reward.\n",
        example.labels.len()
    )?;
    writeln!(w, "   #  label  policy  reference        r")?;
    for i in 0..example.labels.len() {
        let (p, q) = (example.policy_logps[i], example.reference_logps[i]);
        let label = if example.labels[i] { "up" } else { "down" };
        writeln!(
            w,
            "  {i:>2}  {label:<5} {p:>7.2}  {q:>9.2}  {:>+7.3}",
            p - q
        )?;
    }
    let cfg = KtoConfig::default();
    let batch = example.as_batch();
    let simple = plain::kto_batch_mean(&batch, &cfg)?;
    let paper = plain::kto(&batch, &cfg)?;
    let apo = plain::apo_zero_unpaired(&batch, &cfg)?;
    writeln!(
        w,
        "\nSimplified KTO (seed notebook): baseline b = batch mean of r, −log σ per class, β = {}",
        cfg.beta
    )?;
    write!(w, "{}", metrics_table(&simple.metrics))?;
    writeln!(
        w,
        "\nKTO as in the paper and TRL: z0 = max(0, mean log-ratio of mismatched pairs (x_i, y_i+1)), 1 − σ"
    )?;
    write!(w, "{}", metrics_table(&paper.metrics))?;
    writeln!(w, "\nAPO-zero (unpaired): the reference point fixed at 0")?;
    write!(w, "{}", metrics_table(&apo.metrics))?;
    writeln!(
        w,
        "\nWhy they differ: b = {:+.3} is pulled around by the labelled answers themselves, while\n\
         z0 = {:.3} measures only how far the policy drifted on unrelated completions. And 1 − σ\n\
         saturates: an example the model already gets right stops pulling, −log σ never does.",
        simple.metrics.kl_baseline, paper.metrics.kl
    )?;
    Ok(())
}

/// Lab 2: prospect theory's value function and the KTO loss curves, as numbers and charts.
fn lab2(out: &Path, w: &mut impl Write) -> Result<()> {
    heading(w, "Lab 2 · Prospect theory")?;
    let p = ProspectParams::default();
    writeln!(
        w,
        "Kahneman–Tversky value v(x) = x^α for gains, −λ(−x)^β for losses (α = β = {}, λ = {}):\n",
        p.alpha, p.lambda
    )?;
    writeln!(w, "       x    v(x)   |v(−x)| / v(x)")?;
    for x in [0.5, 1.0, 2.0, 3.0] {
        let (gain, loss) = (prospect::value(x, &p), prospect::value(-x, &p));
        writeln!(w, "  {x:>6.1}  {gain:>6.3}   {:>6.3}", loss.abs() / gain)?;
    }
    writeln!(
        w,
        "  Losses loom larger: a loss hurts λ = {} times as much as an equal gain pleases.",
        p.lambda
    )?;

    let beta = prospect::DEFAULT_KTO_BETA;
    writeln!(
        w,
        "\nKTO loss of one example vs d = r − z0 (β = {beta}, λD = λU = 1):\n"
    )?;
    writeln!(
        w,
        "       d   up: 1−σ(βd)  −log σ(βd)   down: 1−σ(−βd)  −log σ(−βd)"
    )?;
    for d in [-40.0, -10.0, 0.0, 10.0, 40.0] {
        let (up, down) = (Label::Desirable, Label::Undesirable);
        writeln!(
            w,
            "  {d:>6.0}   {:>10.4}  {:>10.4}   {:>14.4}  {:>11.4}",
            prospect::kto_loss(d, up, beta, 1.0),
            prospect::simplified_kto_loss(d, up, beta, 1.0),
            prospect::kto_loss(d, down, beta, 1.0),
            prospect::simplified_kto_loss(d, down, beta, 1.0),
        )?;
    }
    writeln!(
        w,
        "  The paper's loss is bounded by λ and flattens out; −log σ grows without limit."
    )?;
    let dir = out.join("charts");
    for path in prospect::write_lab2_charts(&dir)? {
        writeln!(w, "  chart: {}", show(&path, out))?;
    }
    Ok(())
}

/// Lab 4: collect feedback into a store, count it, check the balance, export and unpair.
fn lab4(out: &Path, w: &mut impl Write) -> Result<()> {
    heading(w, "Lab 4 · Collecting binary feedback")?;
    let path = out.join("feedback.jsonl");
    fresh(&path)?;
    let store = FeedbackStore::new(&path);
    for (i, (prompt, completion, up)) in feedback::SEED_FEEDBACK.iter().enumerate() {
        let mut meta = serde_json::Map::new();
        meta.insert("user_id".into(), "demo".into());
        meta.insert("click".into(), (i + 1).into());
        store.append(&Record::new(*prompt, *completion, *up).with_metadata(meta))?;
    }
    let stats = store.stats()?;
    writeln!(w, "{}: {stats}", show(&path, out))?;
    let advice = feedback::advise(stats.desirable, stats.undesirable, 1.0, 1.0)?;
    writeln!(w, "{advice}")?;

    let train = out.join("kto_train.jsonl");
    fresh(&train)?;
    let exported = store.export(&train)?;
    writeln!(
        w,
        "Exported {} rows to {} — TRL's unpaired format, metadata dropped:",
        exported.count,
        show(&train, out)
    )?;
    let first =
        std::fs::read_to_string(&train).map_err(|e| anyhow::anyhow!("{}: {e}", train.display()))?;
    for line in first.lines().take(2) {
        writeln!(w, "  {line}")?;
    }

    writeln!(
        w,
        "\nImbalanced production data, e.g. 10 thumbs up and 100 thumbs down:"
    )?;
    writeln!(w, "{}", feedback::advise(10, 100, 1.0, 1.0)?)?;

    let paired = out.join("paired.jsonl");
    let unpaired = out.join("unpaired_from_pairs.jsonl");
    fresh(&paired)?;
    fresh(&unpaired)?;
    let pairs = [
        PairedRecord::new(
            "What is AI?",
            "AI is artificial intelligence: machines that learn and reason.",
            "dunno",
        ),
        PairedRecord::new(
            "What's the capital of France?",
            "Paris is the capital of France.",
            "Rome is the capital of France.",
        ),
    ];
    let text: String = pairs.iter().map(|p| p.to_line() + "\n").collect();
    std::fs::write(&paired, text).map_err(|e| anyhow::anyhow!("{}: {e}", paired.display()))?;
    let n = feedback::unpair_file(&paired, &unpaired)?;
    writeln!(
        w,
        "\nUnpairing {} preference pairs ({}) gives {n} KTO rows ({}).",
        pairs.len(),
        show(&paired, out),
        show(&unpaired, out)
    )?;
    Ok(())
}

/// Lab 5: the decision guide, applied to the files lab 4 wrote, and DPO vs KTO on the same numbers.
fn lab5(out: &Path, w: &mut impl Write) -> Result<()> {
    heading(w, "Lab 5 · KTO or DPO?")?;
    write!(w, "{}", feedback::DECISION_GUIDE)?;
    for name in ["feedback.jsonl", "paired.jsonl"] {
        let report = feedback::analyze(out.join(name))?;
        let text = report.to_string();
        // The report names the file by the path we gave it; show it relative to the output folder.
        let text = text.replace(&out.join(name).display().to_string(), name);
        writeln!(w)?;
        write!(w, "{text}")?;
    }

    let example = ExampleBatch::generate(8, SEED);
    let half = example.labels.len() / 2;
    let (good, bad) = (0..half, half..example.labels.len());
    let dpo = plain::dpo(
        &example.policy_logps[good.clone()],
        &example.policy_logps[bad.clone()],
        &example.reference_logps[good],
        &example.reference_logps[bad],
        0.1,
    )?;
    writeln!(
        w,
        "\nThe lab 1 batch read as {half} pairs (thumbs up i vs thumbs down i) — DPO's view of it:"
    )?;
    write!(w, "{}", metrics_table(&dpo.metrics))?;
    writeln!(
        w,
        "DPO needs both answers to the same prompt; KTO used each answer on its own (lab 1)."
    )?;
    Ok(())
}
