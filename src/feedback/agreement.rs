//! How often two raters agree on thumbs up / down, beyond chance: Cohen's κ.
//!
//! Raw agreement flatters: two raters who both say 👍 to 90% of answers, independently at
//! random, agree 82% of the time. Cohen's κ = (p_o − p_e) / (1 − p_e) subtracts what chance
//! alone would give, p_e = pA(up)·pB(up) + pA(down)·pB(down): 1 is perfect agreement, 0 is
//! chance, below 0 is worse than chance (Cohen 1960).

use serde::Serialize;
use std::fmt;

/// Agreement of two raters on the same answers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agreement {
    /// Answers both rated.
    pub n: usize,
    /// Both 👍.
    pub both_up: usize,
    /// Both 👎.
    pub both_down: usize,
    /// The first 👍, the second 👎.
    pub first_only_up: usize,
    /// The first 👎, the second 👍.
    pub second_only_up: usize,
    /// Share of answers with the same label (`None` with no answers).
    pub observed: Option<f64>,
    /// Cohen's κ (`None` with no answers, or when chance agreement is 1 — both raters gave one
    /// and the same label to everything, so κ is undefined).
    pub kappa: Option<f64>,
}

impl Agreement {
    /// The agreement of paired labels `(first, second)`, `true` = 👍.
    pub fn of(pairs: impl IntoIterator<Item = (bool, bool)>) -> Agreement {
        let (mut uu, mut dd, mut ud, mut du) = (0, 0, 0, 0);
        for pair in pairs {
            match pair {
                (true, true) => uu += 1,
                (false, false) => dd += 1,
                (true, false) => ud += 1,
                (false, true) => du += 1,
            }
        }
        let n = uu + dd + ud + du;
        let (observed, kappa) = if n == 0 {
            (None, None)
        } else {
            let nf = n as f64;
            let po = (uu + dd) as f64 / nf;
            let first_up = (uu + ud) as f64 / nf;
            let second_up = (uu + du) as f64 / nf;
            let pe = first_up * second_up + (1.0 - first_up) * (1.0 - second_up);
            let kappa = (pe < 1.0).then(|| (po - pe) / (1.0 - pe));
            (Some(po), kappa)
        };
        Agreement {
            n,
            both_up: uu,
            both_down: dd,
            first_only_up: ud,
            second_only_up: du,
            observed,
            kappa,
        }
    }
}

impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.observed, self.kappa) {
            (None, _) => write!(f, "no answers rated by both"),
            (Some(po), kappa) => {
                write!(
                    f,
                    "{} answers: agree on {:.0}%, Cohen's κ ",
                    self.n,
                    100.0 * po
                )?;
                match kappa {
                    Some(k) => write!(f, "{k:.2}"),
                    None => f.write_str("undefined (one label throughout)"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kappa_matches_a_worked_example() {
        // Wikipedia's example: 20 both yes, 15 both no, 5 A-yes/B-no, 10 A-no/B-yes:
        // p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5, κ = 0.4.
        let pairs = std::iter::repeat_n((true, true), 20)
            .chain(std::iter::repeat_n((false, false), 15))
            .chain(std::iter::repeat_n((true, false), 5))
            .chain(std::iter::repeat_n((false, true), 10));
        let a = Agreement::of(pairs);
        assert_eq!(a.n, 50);
        assert!((a.observed.unwrap() - 0.7).abs() < 1e-12);
        assert!((a.kappa.unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(a.to_string(), "50 answers: agree on 70%, Cohen's κ 0.40");
    }

    #[test]
    fn degenerate_cases_say_so() {
        assert_eq!(Agreement::of([]).kappa, None);
        let all_up = Agreement::of([(true, true), (true, true)]);
        assert_eq!((all_up.observed, all_up.kappa), (Some(1.0), None));
        let opposite = Agreement::of([(true, false), (false, true)]);
        assert_eq!(opposite.kappa, Some(-1.0));
    }
}
