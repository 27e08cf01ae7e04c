//! Several losses on one batch, side by side — what labs 1 and 5 show.
//!
//! * [`unpaired()`]: the seed's simplified KTO, the paper's KTO and APO-zero on the same
//!   thumbs-up/down batch: the loss, the reference point each one uses, and how hard each
//!   example is pushed (∂loss/∂log πθ).
//! * [`kto_vs_dpo()`]: the same batch read by DPO, which needs pairs (the k-th thumbs up is
//!   paired with the k-th thumbs down; rows without a partner are left out), next to KTO, which
//!   uses every row.
//!
//! Both return plain data with a `Display` table (and `evcxr_display`, so a notebook cell can
//! end with the value).

use std::fmt;

use serde::Serialize;

use super::example::ExampleBatch;
use super::plain::{self, DpoOutput, LossOutput};
use super::{BatchMeanMetrics, KtoConfig, KtoMetrics, LossError};

/// Three unpaired losses on one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnpairedComparison {
    /// `true` = thumbs up.
    pub labels: Vec<bool>,
    /// r_i = log πθ − log πref per example.
    pub log_ratios: Vec<f32>,
    /// The seed's simplified form ([`super::kto_batch_mean()`]).
    pub simplified: LossOutput<BatchMeanMetrics>,
    /// The paper's / TRL's KTO ([`super::kto()`]).
    pub kto: LossOutput<KtoMetrics>,
    /// APO-zero ([`super::apo_zero_unpaired()`]).
    pub apo_zero: LossOutput<KtoMetrics>,
}

/// Runs the simplified KTO, the paper's KTO and APO-zero on `batch` with `cfg`.
pub fn unpaired(batch: &ExampleBatch, cfg: &KtoConfig) -> Result<UnpairedComparison, LossError> {
    let b = batch.as_batch();
    Ok(UnpairedComparison {
        labels: batch.labels.clone(),
        log_ratios: batch.log_ratios(),
        simplified: plain::kto_batch_mean(&b, cfg)?,
        kto: plain::kto(&b, cfg)?,
        apo_zero: plain::apo_zero_unpaired(&b, cfg)?,
    })
}

fn label(up: bool) -> &'static str {
    if up {
        "up"
    } else {
        "down"
    }
}

impl fmt::Display for UnpairedComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "                   simplified  KTO (paper)   APO-zero")?;
        writeln!(
            f,
            "  loss             {:>10.4}  {:>11.4}  {:>9.4}",
            self.simplified.metrics.loss, self.kto.metrics.loss, self.apo_zero.metrics.loss
        )?;
        writeln!(
            f,
            "  reference point  {:>10}  {:>11}  {:>9}",
            format!("b={:+.3}", self.simplified.metrics.kl_baseline),
            format!("z0={:.3}", self.kto.metrics.kl),
            "0"
        )?;
        writeln!(f, "  ∂loss/∂log πθ per example (negative = pushed up):")?;
        writeln!(
            f,
            "   #  label        r  simplified  KTO (paper)   APO-zero"
        )?;
        for (i, (&up, r)) in self.labels.iter().zip(&self.log_ratios).enumerate() {
            writeln!(
                f,
                "  {i:>2}  {:<5} {r:>+8.3}  {:>+10.5}  {:>+11.5}  {:>+9.5}",
                label(up),
                self.simplified.grad_policy_logps[i],
                self.kto.grad_policy_logps[i],
                self.apo_zero.grad_policy_logps[i],
            )?;
        }
        Ok(())
    }
}

impl UnpairedComparison {
    /// evcxr's rich display: the table as plain text.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/plain\n{self}EVCXR_END_CONTENT");
    }
}

/// DPO and KTO on the same numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedComparison {
    /// `true` = thumbs up.
    pub labels: Vec<bool>,
    /// r_i = log πθ − log πref per example.
    pub log_ratios: Vec<f32>,
    /// The pairs DPO was given: (index of the thumbs up, index of the thumbs down).
    pub pairs: Vec<(usize, usize)>,
    /// DPO on those pairs (`None` when no pair could be formed: a one-class batch).
    pub dpo: Option<DpoOutput>,
    /// KTO on every row.
    pub kto: LossOutput<KtoMetrics>,
}

/// Reads `batch` as DPO would: the k-th thumbs up against the k-th thumbs down (as if they
/// answered the same prompt), rows without a partner left out; and runs KTO on every row.
/// DPO uses `cfg.beta` (it has no class weights).
pub fn kto_vs_dpo(batch: &ExampleBatch, cfg: &KtoConfig) -> Result<PairedComparison, LossError> {
    let kto = plain::kto(&batch.as_batch(), cfg)?;
    let ups = (0..batch.labels.len()).filter(|&i| batch.labels[i]);
    let downs = (0..batch.labels.len()).filter(|&i| !batch.labels[i]);
    let pairs: Vec<(usize, usize)> = ups.zip(downs).collect();
    let pick = |v: &[f32], side: fn(&(usize, usize)) -> usize| -> Vec<f32> {
        pairs.iter().map(|p| v[side(p)]).collect()
    };
    let dpo = if pairs.is_empty() {
        None
    } else {
        Some(plain::dpo(
            &pick(&batch.policy_logps, |p| p.0),
            &pick(&batch.policy_logps, |p| p.1),
            &pick(&batch.reference_logps, |p| p.0),
            &pick(&batch.reference_logps, |p| p.1),
            cfg.beta,
        )?)
    };
    Ok(PairedComparison {
        labels: batch.labels.clone(),
        log_ratios: batch.log_ratios(),
        pairs,
        dpo,
        kto,
    })
}

impl PairedComparison {
    /// DPO's gradient for example `i`, if it is in a pair.
    fn dpo_grad(&self, i: usize) -> Option<f32> {
        let dpo = self.dpo.as_ref()?;
        self.pairs.iter().enumerate().find_map(|(k, &(c, r))| {
            if c == i {
                Some(dpo.grad_policy_chosen_logps[k])
            } else if r == i {
                Some(dpo.grad_policy_rejected_logps[k])
            } else {
                None
            }
        })
    }

    /// evcxr's rich display: the table as plain text.
    pub fn evcxr_display(&self) {
        println!("EVCXR_BEGIN_CONTENT text/plain\n{self}EVCXR_END_CONTENT");
    }
}

impl fmt::Display for PairedComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.labels.len();
        let used = 2 * self.pairs.len();
        writeln!(
            f,
            "  DPO: {} pairs, uses {used} of {n} rows.  KTO: uses all {n} rows.",
            self.pairs.len()
        )?;
        match &self.dpo {
            Some(d) => writeln!(
                f,
                "  loss: DPO {:.4} (pair accuracy {:.2}), KTO {:.4} (z0 = {:.3})",
                d.metrics.loss,
                d.metrics.rewards_accuracies,
                self.kto.metrics.loss,
                self.kto.metrics.kl
            )?,
            None => writeln!(
                f,
                "  loss: DPO — (no pair: it cannot train on one class), KTO {:.4} (z0 = {:.3})",
                self.kto.metrics.loss, self.kto.metrics.kl
            )?,
        }
        writeln!(f, "  ∂loss/∂log πθ per example (negative = pushed up):")?;
        writeln!(f, "   #  label        r   pair      DPO        KTO")?;
        for i in 0..n {
            let pair = self
                .pairs
                .iter()
                .position(|&(c, r)| c == i || r == i)
                .map_or("—".to_string(), |k| format!("#{k}"));
            let dpo = self
                .dpo_grad(i)
                .map_or("—".to_string(), |g| format!("{g:+.5}"));
            writeln!(
                f,
                "  {i:>2}  {:<5} {:>+8.3}  {pair:>5}  {dpo:>9}  {:>+9.5}",
                label(self.labels[i]),
                self.log_ratios[i],
                self.kto.grad_policy_logps[i],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaired_comparison_matches_the_losses_and_prints_every_row() {
        let batch = ExampleBatch::generate(6, 7);
        let cfg = KtoConfig::default();
        let c = unpaired(&batch, &cfg).unwrap();
        let b = batch.as_batch();
        assert_eq!(c.kto, plain::kto(&b, &cfg).unwrap());
        assert_eq!(c.simplified, plain::kto_batch_mean(&b, &cfg).unwrap());
        let text = c.to_string();
        assert_eq!(text.lines().count(), 5 + 6, "{text}");
        assert!(text.contains("z0="), "{text}");
    }

    #[test]
    fn dpo_pairs_up_to_the_smaller_class_and_kto_uses_every_row() {
        let batch = ExampleBatch::from_log_ratios(
            &[1.0, 0.5, 2.0, -1.0, -0.5],
            &[true, true, true, false, false],
            &[0.2; 5],
        );
        let c = kto_vs_dpo(&batch, &KtoConfig::default()).unwrap();
        assert_eq!(c.pairs, vec![(0, 3), (1, 4)]);
        let dpo = c.dpo.as_ref().unwrap();
        assert_eq!(dpo.grad_policy_chosen_logps.len(), 2);
        assert_eq!(c.dpo_grad(2), None);
        assert!(c.dpo_grad(0).unwrap() < 0.0 && c.dpo_grad(3).unwrap() > 0.0);
        let text = c.to_string();
        assert!(text.contains("uses 4 of 5 rows"), "{text}");

        let one_class = ExampleBatch::from_log_ratios(&[1.0, 0.5], &[true, true], &[0.0; 2]);
        let c = kto_vs_dpo(&one_class, &KtoConfig::default()).unwrap();
        assert!(c.dpo.is_none() && c.pairs.is_empty());
        assert!(c.to_string().contains("cannot train on one class"));
    }

    #[test]
    fn from_log_ratios_round_trips() {
        let b = ExampleBatch::from_log_ratios(&[0.5, -1.0], &[true, false], &[0.25, 0.0]);
        assert_eq!(b.log_ratios(), vec![0.5, -1.0]);
        let z0 = super::super::kto::reference_point(&b.kl_policy_logps, &b.kl_reference_logps);
        assert_eq!(z0.unwrap(), 0.125);
        assert_eq!(b.to_string().lines().count(), 3);
    }
}
