//! Checks for lab 2 — prospect theory and the KTO curves.
//!
//! | exercise | check | the student writes |
//! |---|---|---|
//! | 2.1 | [`value`] | the Kahneman–Tversky value function v(x) |
//! | 2.2 | [`kto_loss`] | one example's KTO loss λ·(1 − σ(±β·d)) |
//! | 2.3 | [`loss_aversion_chart`] | a [`LineChart`] of gains v(x) against losses −v(−x) |
//!
//! [`preview`] shows the student's chart in the check cell (or nothing, while it is a `todo!()`).

use rand::Rng;

use super::{guarded, Ask, CheckResult, Checker};
use crate::charts::LineChart;
use crate::prospect::{self, linspace, Label, ProspectParams};

/// Exercise 2.1's signature.
pub type ValueFn<'a> = dyn Fn(f64, &ProspectParams) -> f64 + 'a;
/// Exercise 2.2's signature: d, label, β, weight → loss.
pub type KtoLossFn<'a> = dyn Fn(f64, Label, f64, f64) -> f64 + 'a;
/// Exercise 2.3's signature.
pub type ChartFn<'a> = dyn Fn(&ProspectParams) -> LineChart + 'a;

const TOL: f64 = 1e-9;

fn params(alpha: f64, beta: f64, lambda: f64) -> ProspectParams {
    ProspectParams {
        alpha,
        beta,
        lambda,
    }
}

/// Exercise 2.1 — `v(x) = x^α` for gains (x ≥ 0), `−λ·(−x)^β` for losses, compared with
/// [`prospect::value`].
pub fn value(f: impl Fn(f64, &ProspectParams) -> f64) -> CheckResult {
    super::exam::answer(
        "2.1",
        |(x, p): &(f64, ProspectParams)| f(*x, p),
        check_value,
    )
}

pub(crate) fn check_value(f: &mut dyn Ask<(f64, ProspectParams), f64>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 2.1 — the value function",
        "gains (x ≥ 0): x^α; losses (x < 0): −λ·(−x)^β — raise the POSITIVE number −x to the \
         power (powf of a negative number is NaN), then scale by λ and flip the sign. Use α for \
         gains and β for losses: they differ in some cases.",
    );
    let tk = ProspectParams::default();
    let mut cases: Vec<(String, f64, ProspectParams)> = Vec::new();
    for x in [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 100.0, -1e-9] {
        cases.push((format!("x = {x}, Tversky–Kahneman"), x, tk));
    }
    let other = params(0.5, 0.7, 1.5);
    for x in [3.0, -3.0, 0.25, -0.25] {
        cases.push((format!("x = {x}, α = 0.5, β = 0.7, λ = 1.5"), x, other));
    }
    let rational = params(1.0, 1.0, 1.0);
    for x in [-2.5, 2.5] {
        cases.push((format!("x = {x}, rational (α = β = λ = 1)"), x, rational));
    }
    let mut rng = super::grading::rng(0x6b74_6f32);
    for k in 0..6 {
        let p = params(
            rng.gen_range(0.2..=1.0),
            rng.gen_range(0.2..=1.0),
            rng.gen_range(0.5..4.0),
        );
        let x = rng.gen_range(-10.0..10.0);
        cases.push((format!("random #{} (x = {x:.3})", k + 1), x, p));
    }
    for (name, x, p) in cases {
        let Some(got) = check.ask(f, &(x, p)) else {
            continue;
        };
        check.close(name, prospect::value(x, &p), got, TOL);
    }
    check.finish()
}

/// Exercise 2.2 — one example's KTO loss: `λ·(1 − σ(β·d))` for thumbs up, `λ·(1 − σ(−β·d))` for
/// thumbs down; compared with [`prospect::kto_loss`], including far from the reference point.
pub fn kto_loss(f: impl Fn(f64, Label, f64, f64) -> f64) -> CheckResult {
    super::exam::answer(
        "2.2",
        |&(d, label, beta, weight): &(f64, Label, f64, f64)| f(d, label, beta, weight),
        check_kto_loss,
    )
}

pub(crate) fn check_kto_loss(f: &mut dyn Ask<(f64, Label, f64, f64), f64>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 2.2 — the KTO loss of one example",
        "thumbs up: λ·(1 − σ(β·d)); thumbs down: λ·(1 − σ(−β·d)). At d = 0 both are λ/2; far on \
         the wrong side the loss tends to λ (not to infinity), far on the right side to 0. \
         kto_lab::math::sigmoid is a stable σ.",
    );
    let mut cases: Vec<(f64, Label, f64, f64)> = Vec::new();
    for label in [Label::Desirable, Label::Undesirable] {
        for d in [0.0, 5.0, -5.0, 40.0, -40.0, 1e4, -1e4] {
            cases.push((d, label, 0.1, 1.0));
        }
        cases.push((2.0, label, 0.5, 1.33));
        cases.push((-3.0, label, 2.0, 0.25));
    }
    let mut rng = super::grading::rng(0x6b74_6f33);
    for _ in 0..6 {
        let label = if rng.gen_bool(0.5) {
            Label::Desirable
        } else {
            Label::Undesirable
        };
        cases.push((
            rng.gen_range(-50.0..50.0),
            label,
            rng.gen_range(0.01..1.0),
            rng.gen_range(0.1..3.0),
        ));
    }
    for (d, label, beta, weight) in cases {
        let name = format!(
            "{}, d = {}, β = {beta}, λ = {weight}",
            match label {
                Label::Desirable => "up",
                Label::Undesirable => "down",
            },
            super::fmt_num(d)
        );
        let Some(got) = check.ask(f, &(d, label, beta, weight)) else {
            continue;
        };
        check.close(name, prospect::kto_loss(d, label, beta, weight), got, TOL);
    }
    check.finish()
}

/// The x values of exercise 2.3's curves: 0, 0.1, …, 3 (31 points).
pub fn chart_xs() -> Vec<f64> {
    linspace(0.0, 3.0, 31).expect("a fixed, valid range")
}

/// What exercise 2.3's check reads of the student's chart: its title, each series' name and
/// points, and whether it renders to SVG (its size, or the error).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChartAnswer {
    title: String,
    series: Vec<(String, Vec<(f64, f64)>)>,
    svg: Result<usize, String>,
}

impl ChartAnswer {
    fn of(chart: &LineChart) -> ChartAnswer {
        ChartAnswer {
            title: chart.title.clone(),
            series: chart
                .series
                .iter()
                .map(|s| (s.name.clone(), s.points.clone()))
                .collect(),
            svg: chart.to_svg().map(|s| s.len()).map_err(|e| e.to_string()),
        }
    }

    /// The series whose name contains `word` (case-insensitive): its points.
    fn find(&self, word: &str) -> Option<&[(f64, f64)]> {
        self.series
            .iter()
            .find(|(name, _)| name.to_lowercase().contains(word))
            .map(|(_, points)| &points[..])
    }
}

/// Exercise 2.3 — a chart of loss aversion: a series named with "gain" holding `(x, v(x))` and
/// one named with "loss" holding `(x, −v(−x))`, for x = 0, 0.1, …, 3 ([`chart_xs`]), with a
/// title, rendering to SVG. Checked for two parameter sets (so hard-coded numbers fail).
pub fn loss_aversion_chart(f: impl Fn(&ProspectParams) -> LineChart) -> CheckResult {
    super::exam::answer(
        "2.3",
        |p: &ProspectParams| ChartAnswer::of(&f(p)),
        check_chart,
    )
}

pub(crate) fn check_chart(f: &mut dyn Ask<ProspectParams, ChartAnswer>) -> CheckResult {
    let mut check = Checker::new(
        "Exercise 2.3 — a loss-aversion chart",
        "two series from LineChart::new(title, x label, y label).with_series(Series::line(name, \
         points, colour)): one named \"gains\" with (x, v(x)) and one named \"losses\" with \
         (x, −v(−x)), x from 0 to 3 in steps of 0.1 (kto_lab::prospect::linspace(0.0, 3.0, 31)), \
         using the parameters passed in and your value() from exercise 2.1 (if its check fails, \
         fix it first).",
    );
    let xs = chart_xs();
    for (label, p) in [
        ("Tversky–Kahneman", ProspectParams::default()),
        ("α = 0.6, β = 0.9, λ = 1.5", params(0.6, 0.9, 1.5)),
    ] {
        let Some(chart) = check.ask(f, &p) else {
            continue;
        };
        check.case(
            format!("{label}: has a title"),
            "a non-empty title",
            format!("{:?}", chart.title),
            !chart.title.trim().is_empty(),
        );
        for (series, word, sign) in [("gains", "gain", 1.0), ("losses", "loss", -1.0)] {
            let want: Vec<(f64, f64)> = xs
                .iter()
                .map(|&x| (x, sign * prospect::value(sign * x, &p)))
                .collect();
            let name = format!("{label}: series \"{series}\"");
            match chart.find(word) {
                None => check.case(
                    name,
                    format!("a series named with \"{word}\""),
                    format!(
                        "series {:?}",
                        chart.series.iter().map(|s| &s.0).collect::<Vec<_>>()
                    ),
                    false,
                ),
                Some(points) => {
                    let flat = |pts: &[(f64, f64)]| -> Vec<f64> {
                        pts.iter().flat_map(|&(x, y)| [x, y]).collect()
                    };
                    check.close_all(
                        format!("{name} (x, y) points"),
                        &flat(&want),
                        &flat(points),
                        TOL,
                    );
                }
            }
        }
        let svg = &chart.svg;
        check.case(
            format!("{label}: renders to SVG"),
            "an SVG document",
            match svg {
                Ok(n) => format!("{n} bytes of SVG"),
                Err(e) => format!("error: {e}"),
            },
            svg.is_ok(),
        );
    }
    check.finish()
}

/// Shows the chart `f` makes, inline in evcxr (via [`LineChart::evcxr_display`]); prints a
/// one-line note instead while `f` is a `todo!()` or panics. For the check cell of exercise 2.3.
pub fn preview(f: impl FnOnce() -> LineChart) {
    match guarded(f) {
        Ok(chart) => chart.evcxr_display(),
        Err(super::Interrupted::NotDone) => {
            println!("(your chart appears here once the exercise is done)")
        }
        Err(super::Interrupted::Panicked(msg)) => println!("(your chart panicked: {msg})"),
    }
}

/// Where the student stands in lab 2: each exercise with its latest check result in this
/// kernel (the lab's last cell).
pub fn progress() -> super::progress::Progress {
    super::progress::Progress::of("Lab 2", &["2.1", "2.2", "2.3"])
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;
    use crate::charts::{Rgb, Series};
    use crate::math::sigmoid;

    fn solution_2_1(x: f64, p: &ProspectParams) -> f64 {
        if x >= 0.0 {
            x.powf(p.alpha)
        } else {
            -p.lambda * (-x).powf(p.beta)
        }
    }

    fn solution_2_2(d: f64, label: Label, beta: f64, weight: f64) -> f64 {
        let m = match label {
            Label::Desirable => beta * d,
            Label::Undesirable => -beta * d,
        };
        weight * (1.0 - sigmoid(m))
    }

    fn solution_2_3(p: &ProspectParams) -> LineChart {
        let xs = linspace(0.0, 3.0, 31).unwrap();
        let gains = xs.iter().map(|&x| (x, solution_2_1(x, p))).collect();
        let losses = xs.iter().map(|&x| (x, -solution_2_1(-x, p))).collect();
        LineChart::new("Losses loom larger", "|x|", "|v|")
            .with_series(Series::line("gains v(x)", gains, Rgb::GREEN))
            .with_series(Series::line("losses −v(−x)", losses, Rgb::RED))
    }

    #[test]
    fn the_solutions_pass() {
        for r in [
            value(solution_2_1),
            kto_loss(solution_2_2),
            loss_aversion_chart(solution_2_3),
        ] {
            assert_eq!(r.status, Status::Passed, "{r}");
        }
    }

    #[test]
    fn todo_is_not_done_yet() {
        assert_eq!(value(|_, _| todo!()).status, Status::NotDone);
        assert_eq!(kto_loss(|_, _, _, _| todo!()).status, Status::NotDone);
        let r = loss_aversion_chart(|_| todo!("draw it"));
        assert_eq!(r.status, Status::NotDone);
        preview(|| todo!()); // prints a note, does not panic
    }

    #[test]
    fn using_alpha_for_losses_fails_only_where_alpha_and_beta_differ() {
        let r = value(|x, p| {
            if x >= 0.0 {
                x.powf(p.alpha)
            } else {
                -p.lambda * (-x).powf(p.alpha)
            }
        });
        assert_eq!(r.status, Status::Failed);
        let failed = r.failed_cases();
        assert!(
            failed.contains(&"x = -3, α = 0.5, β = 0.7, λ = 1.5"),
            "{failed:?}"
        );
        assert!(!failed.iter().any(|n| n.contains("Tversky")), "{failed:?}");
        assert!(r.to_string().contains("hint: gains"));
    }

    #[test]
    fn negative_powf_is_nan_and_fails() {
        let r = value(|x, p| {
            if x >= 0.0 {
                x.powf(p.alpha)
            } else {
                -p.lambda * x.powf(p.beta)
            }
        });
        assert_eq!(r.status, Status::Failed);
        assert!(r.cases.iter().any(|c| !c.ok && c.got == "NaN"), "{r}");
    }

    #[test]
    fn the_unbounded_simplified_loss_fails_far_from_the_reference_point() {
        let r = kto_loss(prospect::simplified_kto_loss);
        assert_eq!(r.status, Status::Failed);
        assert!(
            r.cases
                .iter()
                .any(|c| !c.ok && c.name.contains("d = -10000")),
            "{r}"
        );
    }

    #[test]
    fn a_chart_with_wrong_signs_or_names_fails_with_the_reason() {
        let no_flip = |p: &ProspectParams| {
            let xs = chart_xs();
            LineChart::new("t", "x", "y")
                .with_series(Series::line(
                    "gains",
                    xs.iter().map(|&x| (x, prospect::value(x, p))).collect(),
                    Rgb::GREEN,
                ))
                .with_series(Series::line(
                    "losses",
                    xs.iter().map(|&x| (x, prospect::value(-x, p))).collect(),
                    Rgb::RED,
                ))
        };
        let r = loss_aversion_chart(no_flip);
        assert_eq!(r.status, Status::Failed);
        let failed = r.failed_cases();
        assert_eq!(
            failed,
            [
                "Tversky–Kahneman: series \"losses\" (x, y) points",
                "α = 0.6, β = 0.9, λ = 1.5: series \"losses\" (x, y) points"
            ]
        );

        let unnamed = |p: &ProspectParams| {
            LineChart::new("", "x", "y").with_series(Series::line(
                "v",
                chart_xs()
                    .iter()
                    .map(|&x| (x, prospect::value(x, p)))
                    .collect(),
                Rgb::GREEN,
            ))
        };
        let r = loss_aversion_chart(unnamed);
        let failed = r.failed_cases();
        assert!(
            failed.contains(&"Tversky–Kahneman: has a title"),
            "{failed:?}"
        );
        assert!(
            r.cases
                .iter()
                .any(|c| !c.ok && c.got.contains("series [\"v\"]")),
            "{r}"
        );
    }

    #[test]
    fn hard_coded_parameters_fail_the_second_set() {
        let r = loss_aversion_chart(|_| solution_2_3(&ProspectParams::default()));
        assert_eq!(r.status, Status::Failed);
        assert!(
            r.cases
                .iter()
                .filter(|c| !c.ok)
                .all(|c| c.name.starts_with("α = 0.6")),
            "{r}"
        );
    }
}
