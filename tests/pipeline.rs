//! Lab 3's closed loop end to end with the notebook's classroom model and configuration
//! (one template of the toy world): it must run in seconds and KTO must raise the desirable rate
//! of the SFT model's answers.

use kto_lab::classroom::{new_model, ClassroomModel};
use kto_lab::pipeline::{
    desirable_rate_curves, desirable_rates, run_loop, LoopConfig, PROBE_HELD_OUT_RATE,
    PROBE_TRAIN_RATE,
};
use kto_lab::train::{MetricsLog, TrainConfig};
use kto_lab::world::Template;

#[test]
fn kto_raises_the_desirable_rate_on_the_toy_world() {
    let mut cfg = LoopConfig::classroom();
    assert_eq!(cfg.templates, vec![Template::Color]);
    // A second feedback round on top: it samples the KTO model, judges, and trains on.
    cfg.kto_rounds = 2;
    cfg.kto_later = Some(TrainConfig {
        steps: 20,
        lr: 5e-4,
        ..cfg.kto
    });
    let dir = tempfile::tempdir().unwrap();
    let mut log = MetricsLog::quiet();
    let out = run_loop(new_model, &cfg, Some(dir.path()), &mut log).unwrap();
    let rate = |i: usize| {
        out.report.rows[i]
            .all_prompts
            .judged
            .desirable_rate
            .unwrap()
    };
    eprintln!("{}", out.report.markdown());
    assert!(
        rate(1) >= rate(0) + 0.25,
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
        ("sft", cfg.sft.steps),
        ("kto", cfg.kto.steps),
        ("kto-round2", 20),
        ("dpo", cfg.dpo.steps),
        ("kto-imbalanced", cfg.kto.steps),
    ] {
        assert_eq!(log.phase(phase).count(), steps, "{phase}");
    }

    // The probe looked every 10 steps and after the last one, on both prompt sets; at the SFT
    // model only after its last step (where every curve starts).
    let looks = |phase: &str| -> Vec<usize> {
        log.phase(phase)
            .filter(|r| r.metrics.contains_key(PROBE_TRAIN_RATE))
            .map(|r| r.step + 1)
            .collect()
    };
    assert_eq!(looks("sft"), [cfg.sft.steps]);
    assert_eq!(looks("kto"), [10, 20, 30, 40, 50, 60]);
    assert_eq!(looks("dpo"), [10, 20, 30, 40]);
    assert_eq!(looks("kto-round2"), [10, 20]);
    let last = |phase: &str, key: &str| -> f64 {
        let rates: Vec<f64> = log
            .phase(phase)
            .filter_map(|r| r.metrics.get(key)?.as_f64())
            .collect();
        assert!(rates.iter().all(|r| (0.0..=1.0).contains(r)), "{rates:?}");
        *rates.last().unwrap()
    };
    let _ = last("kto", PROBE_HELD_OUT_RATE);
    assert!(
        last("kto", PROBE_TRAIN_RATE) > last("sft", PROBE_TRAIN_RATE),
        "KTO's last look is above the SFT model's"
    );
    // The curves: from the SFT model's rate at step 0; round 2 goes on where round 1 ended.
    let chart = desirable_rate_curves(log.records());
    let series = |name: &str| {
        let s = chart.series.iter().find(|s| s.name == name);
        s.unwrap_or_else(|| panic!("no {name:?} in {:?}", chart.series))
    };
    let kto = series("kto, training prompts");
    assert_eq!(kto.points[0], (0.0, 100.0 * last("sft", PROBE_TRAIN_RATE)));
    assert_eq!(kto.points.len(), 7);
    let round2 = series("kto-round2, held-out");
    assert_eq!(
        round2.points[0],
        *series("kto, held-out").points.last().unwrap()
    );
    assert_eq!(round2.points.last().unwrap().0, 80.0);
    // Before/after as a dumbbell per method and prompt set: 4 methods × 2 rows.
    let dumbbells = desirable_rates(&out.report);
    assert_eq!(dumbbells.y_categories.len(), 8);
    assert!(
        dumbbells.y_categories[7].starts_with("KTO · training prompts: "),
        "{:?}",
        dumbbells.y_categories
    );
    assert!(dumbbells.to_svg().unwrap().contains("KTO · held-out"));

    // A second run into the same folder refuses to append to the old feedback.
    let again =
        run_loop::<_, ClassroomModel>(new_model, &cfg, Some(dir.path()), &mut MetricsLog::quiet());
    assert!(again.is_err());
}
