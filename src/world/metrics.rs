//! How good are the answers? The desirable rate, and what went wrong.

use std::fmt;

use serde::Serialize;

use super::answers::UndesirableKind;
use super::judge::Verdict;

/// How many thumbs-down verdicts of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// Well-formed but wrong.
    pub wrong: usize,
    /// Dodged the question.
    pub evasive: usize,
    /// Did not take it seriously.
    pub flippant: usize,
    /// Not a clean one-sentence answer.
    pub malformed: usize,
}

impl KindCounts {
    /// The count for one kind.
    pub fn get(&self, kind: UndesirableKind) -> usize {
        match kind {
            UndesirableKind::Wrong => self.wrong,
            UndesirableKind::Evasive => self.evasive,
            UndesirableKind::Flippant => self.flippant,
            UndesirableKind::Malformed => self.malformed,
        }
    }

    fn add(&mut self, kind: UndesirableKind) {
        match kind {
            UndesirableKind::Wrong => self.wrong += 1,
            UndesirableKind::Evasive => self.evasive += 1,
            UndesirableKind::Flippant => self.flippant += 1,
            UndesirableKind::Malformed => self.malformed += 1,
        }
    }
}

/// A summary of verdicts: the number to watch before and after KTO is `desirable_rate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// All verdicts.
    pub total: usize,
    /// Thumbs up.
    pub desirable: usize,
    /// Thumbs down.
    pub undesirable: usize,
    /// `desirable / total`, or `None` (JSON `null`) when there are no verdicts.
    pub desirable_rate: Option<f64>,
    /// The thumbs down, by kind.
    pub by_kind: KindCounts,
}

impl Metrics {
    /// Count the verdicts.
    pub fn of<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Metrics {
        let mut m = Metrics::default();
        for v in verdicts {
            m.total += 1;
            if v.label {
                m.desirable += 1;
            } else {
                m.undesirable += 1;
                // A thumbs down always has a kind from the judge; one built by hand without
                // a kind counts as malformed.
                m.by_kind.add(v.kind.unwrap_or(UndesirableKind::Malformed));
            }
        }
        m.desirable_rate = (m.total > 0).then(|| m.desirable as f64 / m.total as f64);
        m
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} desirable", self.desirable, self.total)?;
        if let Some(rate) = self.desirable_rate {
            write!(f, " ({:.1}%)", 100.0 * rate)?;
        }
        let k = &self.by_kind;
        write!(
            f,
            "; down: {} wrong, {} evasive, {} flippant, {} malformed",
            k.wrong, k.evasive, k.flippant, k.malformed
        )
    }
}

/// The share of thumbs up among `verdicts`, or `None` when there are none.
pub fn desirable_rate(verdicts: &[Verdict]) -> Option<f64> {
    Metrics::of(verdicts).desirable_rate
}
