//! One loop, several seeds: each method's numbers as mean ± spread, so a claim about lab 3
//! ("KTO beats DPO on the held-out prompts") can be told apart from the luck of one seed.

use serde::Serialize;
use std::fmt::Write as _;

use super::{Evaluation, LoopReport};

/// Several numbers of one kind, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// How many numbers.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation (n − 1 in the denominator; 0 for one number).
    pub sd: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (ss / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread {
            n,
            mean,
            sd,
            min,
            max,
        })
    }
}

/// One method over every seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedRow {
    /// The method, as in [`super::MethodRow::method`].
    pub method: String,
    /// Desirable rate on every prompt, one value per seed.
    pub all_prompts: Vec<f64>,
    /// Desirable rate on the training prompts.
    pub train_prompts: Vec<f64>,
    /// Desirable rate on the held-out prompts.
    pub held_out: Vec<f64>,
    /// KL to the reference (all prompts).
    pub kl_to_reference: Vec<f64>,
}

/// The loop's report over several seeds: one row per method, one value per seed in each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedSummary {
    /// The seeds, in the order of the values.
    pub seeds: Vec<u64>,
    /// Rows, in the reports' order.
    pub rows: Vec<SeedRow>,
}

impl SeedSummary {
    /// Gathers `(seed, report)` pairs. Every report must have the same methods in the same
    /// order (the same loop configuration but for its seed); an error says which differs.
    pub fn of(runs: &[(u64, LoopReport)]) -> Result<SeedSummary, String> {
        let Some((_, first)) = runs.first() else {
            return Err("no runs to summarise".into());
        };
        let methods: Vec<&str> = first.rows.iter().map(|r| r.method.as_str()).collect();
        let mut rows: Vec<SeedRow> = methods
            .iter()
            .map(|m| SeedRow {
                method: m.to_string(),
                all_prompts: Vec::new(),
                train_prompts: Vec::new(),
                held_out: Vec::new(),
                kl_to_reference: Vec::new(),
            })
            .collect();
        for (seed, report) in runs {
            let these: Vec<&str> = report.rows.iter().map(|r| r.method.as_str()).collect();
            if these != methods {
                return Err(format!(
                    "seed {seed}: methods {these:?} differ from the first run's {methods:?}"
                ));
            }
            for (row, r) in rows.iter_mut().zip(&report.rows) {
                let rate = |e: &Evaluation| e.judged.desirable_rate;
                // A rate is missing only when a prompt set is empty; then it is left out.
                row.all_prompts.extend(rate(&r.all_prompts));
                row.train_prompts.extend(rate(&r.train_prompts));
                row.held_out.extend(rate(&r.held_out));
                row.kl_to_reference.push(r.all_prompts.kl_to_reference);
            }
        }
        Ok(SeedSummary {
            seeds: runs.iter().map(|(s, _)| *s).collect(),
            rows,
        })
    }

    /// The table as Markdown: each cell `mean ± sd (min–max)`, rates in percent.
    pub fn markdown(&self) -> String {
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Over {} seeds ({}): mean ± standard deviation (min–max).\n",
            self.seeds.len(),
            seeds.join(", ")
        );
        let header = [
            "method",
            "desirable rate: all prompts",
            "training prompts",
            "held-out prompts",
            "KL to reference",
        ];
        let pct = |v: &[f64]| cell(v, 100.0, 1, "%");
        let rows = self.rows.iter().map(|r| {
            vec![
                r.method.clone(),
                pct(&r.all_prompts),
                pct(&r.train_prompts),
                pct(&r.held_out),
                cell(&r.kl_to_reference, 1.0, 3, ""),
            ]
        });
        s + &crate::table::markdown(&header, rows)
    }
}

/// `mean ± sd (min–max)` of `values × scale`, `decimals` places, `unit` after the mean.
fn cell(values: &[f64], scale: f64, decimals: usize, unit: &str) -> String {
    let scaled: Vec<f64> = values.iter().map(|v| v * scale).collect();
    match Spread::of(&scaled) {
        None => "—".into(),
        Some(s) => format!(
            "{:.d$}{unit} ± {:.d$} ({:.d$}–{:.d$})",
            s.mean,
            s.sd,
            s.min,
            s.max,
            d = decimals
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_a_few_numbers() {
        assert_eq!(Spread::of(&[]), None);
        let one = Spread::of(&[0.5]).unwrap();
        assert_eq!((one.mean, one.sd, one.min, one.max), (0.5, 0.0, 0.5, 0.5));
        let s = Spread::of(&[1.0, 2.0, 3.0, 6.0]).unwrap();
        assert_eq!(s.n, 4);
        assert_eq!(s.mean, 3.0);
        // Σ(v − 3)² = 4 + 1 + 0 + 9 = 14; 14 / 3.
        assert!((s.sd - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (1.0, 6.0));
    }

    /// A report with the given (method, train rate, held-out rate) rows: 10 answers each.
    fn report(rows: &[(&str, f64, f64)]) -> LoopReport {
        let eval = |rate: f64| {
            let desirable = (rate * 10.0).round() as usize;
            let judged = crate::world::Metrics {
                total: 10,
                desirable,
                undesirable: 10 - desirable,
                desirable_rate: Some(desirable as f64 / 10.0),
                ..Default::default()
            };
            Evaluation {
                judged,
                kl_to_reference: rate,
                scored: 10,
            }
        };
        let stats = crate::feedback::Stats::of(&[]);
        let rows = rows
            .iter()
            .map(|(m, t, h)| super::super::report::Row::new(*m, "", None, (eval(*t), eval(*h))))
            .collect();
        LoopReport::new(&stats, &stats, Vec::new(), 0, rows)
    }

    #[test]
    fn a_summary_has_one_value_per_seed_in_each_cell() {
        let runs = [
            (1, report(&[("SFT", 0.4, 0.2), ("KTO", 0.9, 0.6)])),
            (2, report(&[("SFT", 0.6, 0.4), ("KTO", 1.0, 0.4)])),
        ];
        let summary = SeedSummary::of(&runs).unwrap();
        assert_eq!(summary.seeds, [1, 2]);
        let kto = &summary.rows[1];
        assert_eq!(kto.method, "KTO");
        assert_eq!(kto.train_prompts, [0.9, 1.0]);
        assert_eq!(kto.held_out, [0.6, 0.4]);
        // 20 answers per run: (9 + 6) / 20 and (10 + 4) / 20.
        assert_eq!(kto.all_prompts, [0.75, 0.7]);
        let md = summary.markdown();
        assert!(md.starts_with("Over 2 seeds (1, 2)"), "{md}");
        assert!(
            md.contains("| KTO | 72.5% ± 3.5 (70.0–75.0) | 95.0% ± 7.1 (90.0–100.0) |"),
            "{md}"
        );

        let other = [runs[0].clone(), (3, report(&[("SFT", 0.5, 0.5)]))];
        let err = SeedSummary::of(&other).unwrap_err();
        assert!(err.starts_with("seed 3: methods"), "{err}");
        assert!(SeedSummary::of(&[]).is_err());
    }

    #[test]
    fn cells_round_and_scale() {
        assert_eq!(cell(&[0.5, 0.7], 100.0, 1, "%"), "60.0% ± 14.1 (50.0–70.0)");
        assert_eq!(cell(&[], 100.0, 1, "%"), "—");
    }
}
