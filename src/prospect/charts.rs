//! The two charts of lab 2: the prospect-theory value function, and KTO's loss as a function
//! of `d = r − z0` — the same S-shaped idea, once for people and once for a policy.

use super::{
    kto_curves, kto_loss, value, value_curve, Label, ProspectError, ProspectParams,
    DEFAULT_KTO_BETA,
};
use crate::charts::{Area, ChartError, LegendPosition, LineChart, LineStyle, Rgb, Series};
use std::path::{Path, PathBuf};

/// The outcomes the value-function chart spans, as in the seed notebook.
pub const VALUE_X_RANGE: (f64, f64) = (-3.0, 3.0);

/// Points per curve: smooth at 800 px wide, and an even count of steps so that 0 is a sample.
const POINTS: usize = 121;

/// The outcome the loss-aversion annotation points at.
const ANNOTATED_LOSS: f64 = -2.0;

/// The prospect-theory value function against the "rational" straight line `v(x) = x`.
///
/// Gains are shaded green and losses red; an arrow marks `v(−2)`, where the curve has fallen
/// λ times further below zero than it rose above it at `x = +2` (when α = β).
pub fn value_function_chart(params: &ProspectParams) -> Result<LineChart, ProspectError> {
    let (lo, hi) = VALUE_X_RANGE;
    let curve = value_curve(params, lo, hi, POINTS)?;
    let gains: Vec<_> = curve.iter().copied().filter(|p| p.0 >= 0.0).collect();
    let losses: Vec<_> = curve.iter().copied().filter(|p| p.0 <= 0.0).collect();
    let rational: Vec<_> = curve.iter().map(|&(x, _)| (x, x)).collect();

    let target = (ANNOTATED_LOSS, value(ANNOTATED_LOSS, params));
    // The text sits below and to the right of the target, in the empty region under the
    // loss branch, so the arrow points up-left at the curve.
    let text_at = (-0.5, 1.25 * target.1);

    Ok(LineChart::new(
        "Prospect theory: losses loom larger",
        "outcome x relative to the reference point (gain > 0, loss < 0)",
        "perceived value v(x)",
    )
    .with_area(Area::to_zero("Gains", gains, Rgb::GREEN))
    .with_area(Area::to_zero("Losses", losses, Rgb::RED))
    .with_hline(0.0, Rgb::GRAY, LineStyle::Solid)
    .with_vline(0.0, Rgb::GRAY, LineStyle::Solid)
    .with_series(Series::line("Linear (rational): v(x) = x", rational, Rgb::DARK).dashed())
    .with_series(Series::line("Prospect theory v(x)", curve, Rgb::BLUE).width(3))
    .with_annotation(
        format!("Loss aversion: λ = {}", params.lambda),
        text_at,
        Some(target),
        Rgb::RED,
    )
    .with_legend(LegendPosition::UpperLeft))
}

/// The d-range of the KTO loss chart for a given β > 0: `[−4/β, 4/β]`.
///
/// The loss only depends on `β·d`, and σ needs `|β·d|` of a few units to flatten out
/// (σ(4) ≈ 0.98). At β = 0.1 that means `d ∈ [−40, 40]`. On the seed notebook's `[−2, 2]`,
/// `β·d` stays within ±0.2 where σ is nearly a straight line: the saturating `1 − σ` loss
/// and the unbounded `−log σ` loss look alike there, and the difference that matters —
/// one flattens out, the other keeps climbing — is invisible.
pub fn kto_loss_d_range(beta: f64) -> (f64, f64) {
    (-4.0 / beta, 4.0 / beta)
}

/// KTO's loss against `d = r − z0`, thumbs up in green and thumbs down in red.
///
/// Solid: the paper's (and TRL's) loss `λ·(1 − σ(±β·d))`, which saturates at λ, so an
/// example that is hopelessly on the wrong side stops pulling on the policy. Dashed: the
/// seed notebook's `−λ·log σ(±β·d)`, which grows without bound. A dashed vertical line marks
/// the reference point `d = 0`. `beta` and the weights must be finite and positive.
pub fn kto_loss_chart(
    beta: f64,
    desirable_weight: f64,
    undesirable_weight: f64,
) -> Result<LineChart, ProspectError> {
    let (lo, hi) = kto_loss_d_range(beta);
    // kto_curves checks beta before it looks at the range, so a bad beta is reported as such.
    let c = kto_curves(beta, desirable_weight, undesirable_weight, lo, hi, POINTS)?;
    // Point at the flat left end of the thumbs-up loss, from the empty space below it.
    let flat_d = -3.5 / beta;
    let flat = (
        flat_d,
        kto_loss(flat_d, Label::Desirable, beta, desirable_weight),
    );
    let text_at = (-2.6 / beta, 0.5 * desirable_weight);

    Ok(LineChart::new(
        format!("KTO loss: 1 − σ saturates, −log σ keeps growing (β = {beta})"),
        "d = r − z0 (policy/reference log-ratio minus the reference point)",
        "loss",
    )
    .with_vline(0.0, Rgb::GRAY, LineStyle::Dashed)
    .with_series(Series::line(
        "thumbs up: λD·(1 − σ(β·d))  — paper",
        c.desirable_loss,
        Rgb::GREEN,
    ))
    .with_series(Series::line(
        "thumbs down: λU·(1 − σ(−β·d))  — paper",
        c.undesirable_loss,
        Rgb::RED,
    ))
    .with_series(
        Series::line(
            "thumbs up: −λD·log σ(β·d)  — simplified",
            c.desirable_simplified_loss,
            Rgb::GREEN,
        )
        .dashed(),
    )
    .with_series(
        Series::line(
            "thumbs down: −λU·log σ(−β·d)  — simplified",
            c.undesirable_simplified_loss,
            Rgb::RED,
        )
        .dashed(),
    )
    .with_annotation(
        "paper loss saturates at λD",
        text_at,
        Some(flat),
        Rgb::GREEN,
    )
    .with_legend(LegendPosition::UpperMiddle))
}

/// Writes the lab 2 charts (Tversky–Kahneman parameters, TRL's default β and weights) into
/// `out_dir`, creating it if needed: `value_function.{svg,png}` and `kto_loss.{svg,png}`.
/// Returns the paths written, in that order.
pub fn write_lab2_charts(out_dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    std::fs::create_dir_all(out_dir).map_err(|source| ChartError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    // The parameters are the published defaults, so they pass their checks; were one ever
    // changed to a bad value, the chart could not be described, and that is what we say.
    let unusable = |e: ProspectError| ChartError::InvalidChart(e.to_string());
    let charts = [
        (
            "value_function",
            value_function_chart(&ProspectParams::default()).map_err(unusable)?,
        ),
        (
            "kto_loss",
            kto_loss_chart(DEFAULT_KTO_BETA, 1.0, 1.0).map_err(unusable)?,
        ),
    ];
    let mut written = Vec::new();
    for (stem, chart) in &charts {
        let svg = out_dir.join(format!("{stem}.svg"));
        chart.save_svg(&svg)?;
        written.push(svg);
        let png = out_dir.join(format!("{stem}.png"));
        chart.save_png(&png)?;
        written.push(png);
    }
    Ok(written)
}
