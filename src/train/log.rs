//! Per-step training metrics: kept in memory for charts and reports, appended to a JSON Lines
//! file as they happen (so a crashed run still leaves its curve), and shown on a progress bar.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::TrainError;

/// One optimizer step, as logged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    /// `sft`, `kto`, `dpo`, ...
    pub phase: String,
    /// 0-based step within the phase.
    pub step: usize,
    /// The learning rate used.
    pub lr: f64,
    /// The loss value.
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Whether the gradients were clipped.
    pub clipped: bool,
    /// Completion tokens scored per second of wall time (all forwards of the step).
    pub tokens_per_s: f64,
    /// Loss-specific metrics (KTO's kl, rewards/chosen, ...), named as TRL logs them.
    #[serde(flatten)]
    pub metrics: serde_json::Map<String, serde_json::Value>,
}

/// Where step records go.
pub struct MetricsLog {
    file: Option<(PathBuf, BufWriter<File>)>,
    records: Vec<StepRecord>,
    progress: Option<ProgressBar>,
}

impl MetricsLog {
    /// Keeps records in memory only, no progress bar (tests, notebooks).
    pub fn quiet() -> Self {
        MetricsLog {
            file: None,
            records: Vec::new(),
            progress: None,
        }
    }

    /// Also appends each record to `path` (created, or appended to if it exists) and shows a
    /// progress bar on stderr when it is a terminal.
    pub fn to_file(path: &Path, show_progress: bool) -> Result<Self, TrainError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::io(path, e))?;
        let mut log = MetricsLog::quiet();
        log.file = Some((path.to_owned(), BufWriter::new(file)));
        if show_progress {
            log.progress = Some(ProgressBar::with_draw_target(
                None,
                ProgressDrawTarget::stderr(),
            ));
        }
        Ok(log)
    }

    /// Starts a phase of `steps` steps on the progress bar.
    pub fn start_phase(&mut self, name: &str, steps: usize) {
        if let Some(bar) = &self.progress {
            bar.reset();
            bar.set_length(steps as u64);
            bar.set_position(0);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>5} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(name.to_string());
        }
    }

    /// Records one step.
    pub fn push(&mut self, record: StepRecord) -> Result<(), TrainError> {
        if let Some((path, w)) = &mut self.file {
            let line = serde_json::to_string(&record).unwrap_or_default();
            writeln!(w, "{line}")
                .and_then(|_| w.flush())
                .map_err(|e| TrainError::io(path, e))?;
        }
        if let Some(bar) = &self.progress {
            bar.set_message(format!("loss {:.4}", record.loss));
            bar.inc(1);
        }
        self.records.push(record);
        Ok(())
    }

    /// Ends the current phase on the progress bar.
    pub fn finish_phase(&mut self) {
        if let Some(bar) = &self.progress {
            bar.finish();
        }
    }

    /// Appends another log's records (e.g. from a run on another thread), writing them out.
    pub fn extend(&mut self, other: MetricsLog) -> Result<(), TrainError> {
        let progress = self.progress.take();
        for r in other.records {
            self.push(r)?;
        }
        self.progress = progress;
        Ok(())
    }

    /// A one-line message for whoever watches the progress (nothing when quiet).
    pub fn note(&self, message: &str) {
        if let Some(bar) = &self.progress {
            bar.println(message);
        }
    }

    /// Every record so far.
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// The records of one phase.
    pub fn phase<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a StepRecord> + 'a {
        self.records.iter().filter(move |r| r.phase == name)
    }
}
