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

/// The color of a report row, the same as its phase's in [`loss_curves`].
fn method_color(method: &str) -> Rgb {
    if method.starts_with("KTO, round") {
        Rgb::RED
    } else if method.starts_with("KTO, 90%") {
        Rgb::ORANGE
    } else if method.starts_with("DPO") {
        Rgb::BLUE
    } else {
        Rgb::GREEN
    }
}

/// Desirable rate before (x = 0, the SFT model) and after (x = 1) each method: one line per
/// method, so KTO vs DPO vs imbalanced KTO reads at a glance.
pub fn desirable_rates(report: &LoopReport) -> LineChart {
    let before = report
        .rows
        .first()
        .and_then(|r| r.all_prompts.judged.desirable_rate)
        .unwrap_or(0.0);
    let mut chart = LineChart::new(
        "Desirable rate of sampled answers, before → after",
        "0 = SFT model, 1 = after preference training",
        "desirable rate",
    )
    .with_ranges(Some((0.0, 1.0)), Some((0.0, 1.0)))
    .with_legend(LegendPosition::LowerRight);
    for row in report.rows.iter().skip(1) {
        let color = method_color(&row.method);
        let after = row.all_prompts.judged.desirable_rate.unwrap_or(0.0);
        let held = row.held_out.judged.desirable_rate.unwrap_or(0.0);
        let held_before = report.rows[0].held_out.judged.desirable_rate.unwrap_or(0.0);
        chart = chart
            .with_series(Series::line(
                format!(
                    "{} ({:.0}% → {:.0}%)",
                    row.method,
                    100.0 * before,
                    100.0 * after
                ),
                vec![(0.0, before), (1.0, after)],
                color,
            ))
            .with_series(
                Series::line(
                    format!(
                        "  held-out prompts ({:.0}% → {:.0}%)",
                        100.0 * held_before,
                        100.0 * held
                    ),
                    vec![(0.0, held_before), (1.0, held)],
                    color,
                )
                .dashed(),
            );
    }
    chart
}
