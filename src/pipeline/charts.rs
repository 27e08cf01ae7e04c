//! Lab 3's charts, built from the metrics log and the report.

use crate::charts::{LegendPosition, LineChart, LineStyle, Rgb, Series};
use crate::train::StepRecord;

use super::LoopReport;

/// A metric of one phase as `(step, value)` points.
fn curve<'a>(records: &'a [StepRecord], phase: &'a str, metric: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter(|r| r.phase == phase)
        .filter_map(|r| {
            let y = if metric == "loss" {
                Some(r.loss as f64)
            } else {
                r.metrics.get(metric).and_then(|v| v.as_f64())
            };
            y.filter(|y| y.is_finite()).map(|y| (r.step as f64, y))
        })
        .collect()
}

/// KTO's training curves: the loss, the mean rewards β·r of thumbs-up and thumbs-down
/// examples, and the reference point z0 (`kl`), step by step.
pub fn kto_curves(records: &[StepRecord]) -> LineChart {
    LineChart::new(
        "KTO training: rewards of thumbs-up rise, of thumbs-down fall",
        "step",
        "value",
    )
    .with_series(Series::line(
        "loss",
        curve(records, "kto", "loss"),
        Rgb::DARK,
    ))
    .with_series(Series::line(
        "rewards/chosen (β·r, thumbs up)",
        curve(records, "kto", "rewards/chosen"),
        Rgb::GREEN,
    ))
    .with_series(Series::line(
        "rewards/rejected (β·r, thumbs down)",
        curve(records, "kto", "rewards/rejected"),
        Rgb::RED,
    ))
    .with_series(Series::line("kl (z0)", curve(records, "kto", "kl"), Rgb::BLUE).dashed())
    .with_hline(0.0, Rgb::GRAY, LineStyle::Solid)
    .with_legend(LegendPosition::LowerLeft)
}

/// The loss of every phase against its step.
pub fn loss_curves(records: &[StepRecord]) -> LineChart {
    let mut chart = LineChart::new("Training loss by phase", "step", "loss")
        .with_legend(LegendPosition::UpperRight);
    for (phase, color) in [
        ("sft", Rgb::DARK),
        ("kto", Rgb::GREEN),
        ("dpo", Rgb::BLUE),
        ("kto-round2", Rgb::RED),
        ("kto-imbalanced", Rgb::ORANGE),
    ] {
        let points = curve(records, phase, "loss");
        if !points.is_empty() {
            chart = chart.with_series(Series::line(phase, points, color));
        }
    }
    chart
}

/// The color of a report row or a phase, the same as in [`loss_curves`].
fn method_color(method: &str) -> Rgb {
    let m = method.to_lowercase();
    if m.starts_with("kto, round") || m.starts_with("kto-round") {
        Rgb::RED
    } else if m.starts_with("kto, 90%") || m.starts_with("kto-imbalanced") {
        Rgb::ORANGE
    } else if m.starts_with("dpo") {
        Rgb::BLUE
    } else {
        Rgb::GREEN
    }
}

/// Percent, for the rate axes.
fn pct(rate: Option<f64>) -> Option<f64> {
    rate.map(|r| 100.0 * r)
}

/// Desirable rate before and after each method, as a dumbbell chart: one row per method and
/// prompt set (the prompts the feedback came from, and the held-out ones), a gray dot at the
/// SFT model's rate, a colored dot at the trained model's, joined by a line (dashed for the
/// held-out prompts) — so the length and direction of each move, and KTO vs DPO vs imbalanced
/// KTO, read at a glance. Each row's name carries its numbers, so the chart needs no legend.
pub fn desirable_rates(report: &LoopReport) -> LineChart {
    let mut chart = LineChart::new(
        "Desirable rate of sampled answers: SFT model (gray) → after training",
        "desirable rate (%)",
        "",
    )
    .with_ranges(Some((0.0, 100.0)), None);
    let Some((sft, methods)) = report.rows.split_first() else {
        return chart;
    };
    let label = |rate: Option<f64>| rate.map_or("—".to_string(), |r| format!("{r:.0}%"));
    // Top to bottom: each method's training-prompt row, then its held-out row.
    let mut names = Vec::new();
    let rows = 2 * methods.len();
    for (i, row) in methods.iter().enumerate() {
        let sets = [
            ("training prompts", &sft.train_prompts, &row.train_prompts),
            ("held-out", &sft.held_out, &row.held_out),
        ];
        for (j, (set, before, after)) in sets.into_iter().enumerate() {
            let y = (rows - 1 - (2 * i + j)) as f64;
            let before = pct(before.judged.desirable_rate);
            let after = pct(after.judged.desirable_rate);
            names.push(format!(
                "{} · {set}: {} → {}",
                row.method,
                label(before),
                label(after)
            ));
            let color = method_color(&row.method);
            if let (Some(b), Some(a)) = (before, after) {
                let segment = Series::line("", vec![(b, y), (a, y)], color);
                chart = chart
                    .with_series(if j == 1 { segment.dashed() } else { segment })
                    .with_series(Series::dots("", vec![(b, y)], Rgb::GRAY, 6))
                    .with_series(Series::dots("", vec![(a, y)], color, 6));
            }
        }
    }
    names.reverse();
    chart.with_y_categories(names)
}

/// The desirable rate *during* training, from the probe's looks logged in the step records
/// ([`super::PROBE_TRAIN_RATE`], [`super::PROBE_HELD_OUT_RATE`]): one curve per preference
/// run, solid on the training prompts, dashed on the held-out ones. Every run starts at the
/// SFT model's rate (step 0); a later KTO round continues where the previous round ended.
pub fn desirable_rate_curves(records: &[StepRecord]) -> LineChart {
    let looks = |phase: &str, key: &str| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| r.phase == phase)
            .filter_map(|r| {
                let rate = r.metrics.get(key).and_then(|v| v.as_f64());
                pct(rate).map(|y| ((r.step + 1) as f64, y))
            })
            .collect()
    };
    let mut phases: Vec<&str> = Vec::new();
    for r in records {
        if r.phase != "sft" && !phases.contains(&r.phase.as_str()) {
            phases.push(&r.phase);
        }
    }
    let mut chart = LineChart::new(
        "Desirable rate during training (a quick look every few steps)",
        "step",
        "desirable rate (%)",
    )
    .with_ranges(None, Some((0.0, 100.0)))
    .with_legend(LegendPosition::LowerRight);
    for key in [super::PROBE_TRAIN_RATE, super::PROBE_HELD_OUT_RATE] {
        // Where the next KTO round starts: the last look of the previous one.
        let mut kto_end: Option<(f64, f64)> = None;
        for &phase in &phases {
            let is_round = phase.starts_with("kto-round");
            let start = if is_round {
                kto_end
            } else {
                looks("sft", key).last().map(|&(_, y)| (0.0, y))
            };
            let offset = if is_round {
                start.map_or(0.0, |s| s.0)
            } else {
                0.0
            };
            let mut points: Vec<(f64, f64)> = start.into_iter().collect();
            points.extend(looks(phase, key).into_iter().map(|(x, y)| (x + offset, y)));
            if points.len() < 2 {
                continue;
            }
            if phase == "kto" || is_round {
                kto_end = points.last().copied();
            }
            let held_out = key == super::PROBE_HELD_OUT_RATE;
            let name = if held_out {
                format!("{phase}, held-out")
            } else {
                format!("{phase}, training prompts")
            };
            let line = Series::line(name, points, method_color(phase)).with_dots(3);
            chart = chart.with_series(if held_out { line.dashed() } else { line });
        }
    }
    chart
}
