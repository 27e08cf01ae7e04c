//! Lab 3's closed loop end to end on a small model and one template of the toy world: it must
//! run in seconds and KTO must raise the desirable rate of the SFT model's answers.

use kto_lab::model::{device, Gpt};
use kto_lab::pipeline::{run_loop, LoopConfig};
use kto_lab::train::{MetricsLog, TrainConfig};
use kto_lab::world::Template;

/// Narrow and shallow, but the same architecture and vocabulary as the default model.
type SmallModel = Gpt<512, 32, 2, 128, 1, 48, f32, kto_lab::losses::Dev>;

fn small_config() -> LoopConfig {
    let mut cfg = LoopConfig {
        templates: vec![Template::Color],
        ..LoopConfig::default()
    };
    cfg.sft.steps = 120;
    cfg.sft.batch_size = 16;
    cfg.sft.lr = 1e-2;
    cfg.kto.steps = 40;
    cfg.kto.batch_size = 16;
    cfg.kto.lr = 1e-3;
    cfg.kto_imbalanced = Some(TrainConfig {
        lr: 3e-4,
        ..cfg.kto
    });
    cfg.kto_rounds = 2;
    cfg.kto_later = Some(TrainConfig {
        steps: 20,
        lr: 5e-4,
        ..cfg.kto
    });
    cfg.dpo.steps = 10;
    cfg.dpo.batch_size = 8;
    cfg.feedback_samples = 8;
    cfg.eval_samples = 8;
    cfg
}

#[test]
fn kto_raises_the_desirable_rate_on_the_toy_world() {
    let dev = device();
    let cfg = small_config();
    let dir = tempfile::tempdir().unwrap();
    let mut log = MetricsLog::quiet();
    let out = run_loop(
        |seed| SmallModel::init(&dev, seed),
        &cfg,
        Some(dir.path()),
        &mut log,
    )
    .unwrap();
    let rate = |i: usize| {
        out.report.rows[i]
            .all_prompts
            .judged
            .desirable_rate
            .unwrap()
    };
    eprintln!("{}", out.report.markdown());
    assert!(
        rate(1) >= rate(0) + 0.15,
        "KTO {:.2} vs SFT {:.2}",
        rate(1),
        rate(0)
    );
    assert_eq!(out.report.rows[0].all_prompts.kl_to_reference, 0.0);
    assert!(out.report.rows[1].all_prompts.kl_to_reference > 0.0);
    // Rows: SFT, KTO, KTO round 2, DPO, imbalanced KTO; round 2 does not undo round 1.
    let methods: Vec<&str> = out.report.rows.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "SFT (reference)",
            "KTO",
            "KTO, round 2",
            "DPO",
            "KTO, 90% of thumbs-up dropped"
        ]
    );
    assert!(rate(2) >= rate(0) + 0.15, "round 2 {:.2}", rate(2));
    assert_eq!(out.kto_later.len(), 1);
    assert_eq!(out.report.later_feedback.len(), 1);

    // The feedback file is TRL's unpaired format plus metadata, one line per stored record.
    let text = std::fs::read_to_string(dir.path().join("feedback.jsonl")).unwrap();
    // Round 1's records, then round 2's (tagged with their round).
    let round2 = out.report.later_feedback[0].total;
    assert_eq!(text.lines().count(), out.feedback.len() + round2);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["metadata"]["round"], 2, "{last}");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for key in ["prompt", "completion", "label", "metadata"] {
        assert!(first.get(key).is_some(), "{key} missing in {first}");
    }
    // Every phase logged every step.
    for (phase, steps) in [
        ("sft", 120),
        ("kto", 40),
        ("kto-round2", 20),
        ("dpo", 10),
        ("kto-imbalanced", 40),
    ] {
        assert_eq!(log.phase(phase).count(), steps, "{phase}");
    }

    // A second run into the same folder refuses to append to the old feedback.
    let again = run_loop(
        |seed| SmallModel::init(&dev, seed),
        &cfg,
        Some(dir.path()),
        &mut MetricsLog::quiet(),
    );
    assert!(again.is_err());
}
