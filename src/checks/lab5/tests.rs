use super::super::Status;
use super::*;
use crate::math::{log_sigmoid, sigmoid};
use std::io::Write;

fn margins(pc: &[f32], pr: &[f32], rc: &[f32], rr: &[f32], beta: f32) -> Vec<f64> {
    (0..pc.len())
        .map(|i| f64::from(beta) * (f64::from(pc[i] - rc[i]) - f64::from(pr[i] - rr[i])))
        .collect()
}

fn solution_5_1(pc: &[f32], pr: &[f32], rc: &[f32], rr: &[f32], beta: f32) -> Option<f32> {
    if pc.is_empty() {
        return None;
    }
    let m = margins(pc, pr, rc, rr, beta);
    Some((m.iter().map(|&x| -log_sigmoid(x)).sum::<f64>() / m.len() as f64) as f32)
}

fn solution_5_2(pc: &[f32], pr: &[f32], rc: &[f32], rr: &[f32], beta: f32) -> (Vec<f32>, Vec<f32>) {
    let m = margins(pc, pr, rc, rr, beta);
    let n = m.len() as f64;
    let push: Vec<f64> = m
        .iter()
        .map(|&x| f64::from(beta) * sigmoid(-x) / n)
        .collect();
    (
        push.iter().map(|&g| -g as f32).collect(),
        push.iter().map(|&g| g as f32).collect(),
    )
}

fn solution_5_3(path: &Path, rows: &[(&str, &str, bool)]) -> std::io::Result<()> {
    let mut out = String::new();
    for (prompt, completion, label) in rows {
        let line = serde_json::json!({"prompt": prompt, "completion": completion, "label": label});
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    std::fs::write(path, out)
}

#[test]
fn the_solutions_pass() {
    for r in [
        dpo_loss(solution_5_1),
        dpo_grads(solution_5_2),
        write_feedback(solution_5_3),
    ] {
        assert_eq!(r.status, Status::Passed, "{r}");
    }
}

#[test]
fn todo_is_not_done_yet() {
    assert_eq!(dpo_loss(|_, _, _, _, _| todo!()).status, Status::NotDone);
    assert_eq!(dpo_grads(|_, _, _, _, _| todo!()).status, Status::NotDone);
    assert_eq!(
        write_feedback(|_, _| todo!("write it")).status,
        Status::NotDone
    );
}

#[test]
fn a_sum_instead_of_a_mean_fails() {
    let r = dpo_loss(|pc, pr, rc, rr, b| {
        let n = pc.len().max(1) as f32;
        solution_5_1(pc, pr, rc, rr, b).map(|l| l * n)
    });
    assert_eq!(r.status, Status::Failed);
    let failed = r.failed_cases();
    assert!(
        failed.contains(&"lab 1's batch as 4 pairs (up i vs down i)"),
        "{failed:?}"
    );
    assert!(!failed.contains(&"a pair on the wrong side"), "{failed:?}");
    assert!(r.to_string().contains("hint: per pair"));
}

#[test]
fn zero_instead_of_none_for_no_pairs_fails_that_case() {
    let r = dpo_loss(|pc, pr, rc, rr, b| solution_5_1(pc, pr, rc, rr, b).or(Some(0.0)));
    let failed = r.failed_cases();
    assert_eq!(failed, ["no pairs"]);
}

#[test]
fn forgetting_the_mean_in_the_gradient_fails() {
    let r = dpo_grads(|pc, pr, rc, rr, b| {
        let n = pc.len() as f32;
        let (c, r) = solution_5_2(pc, pr, rc, rr, b);
        (
            c.iter().map(|g| g * n).collect(),
            r.iter().map(|g| g * n).collect(),
        )
    });
    assert_eq!(r.status, Status::Failed);
    // One pair: n = 1, so those cases still pass.
    assert!(r
        .cases
        .iter()
        .any(|c| c.ok && c.name.starts_with("a pair on the wrong side")));
    assert!(r
        .cases
        .iter()
        .any(|c| !c.ok && c.name.ends_with("∂/∂chosen")));
}

#[test]
fn format_without_escaping_fails_on_the_tricky_rows() {
    let r = write_feedback(|path, rows| {
        let mut f = std::fs::File::create(path)?;
        for (p, c, l) in rows {
            writeln!(
                f,
                "{{\"prompt\": \"{p}\", \"completion\": \"{c}\", \"label\": {l}}}"
            )?;
        }
        Ok(())
    });
    assert_eq!(r.status, Status::Failed);
    let failed = r.failed_cases();
    assert!(
        failed
            .iter()
            .all(|n| n.starts_with("text that needs escaping")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|n| n.ends_with("each line is {prompt, completion, label}")),
        "{r}"
    );
}

#[test]
fn appending_instead_of_replacing_fails() {
    let r = write_feedback(|path, rows| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        for (p, c, l) in rows {
            let line = serde_json::json!({"prompt": p, "completion": c, "label": l});
            writeln!(f, "{line}")?;
        }
        Ok(())
    });
    assert_eq!(r.status, Status::Failed);
    assert!(
        r.cases
            .iter()
            .any(|c| !c.ok
                && c.name == "text that needs escaping, over an old file: number of lines"),
        "{r}"
    );
}

#[test]
fn an_io_error_is_reported() {
    let r = write_feedback(|_, _| Err(std::io::Error::other("disk full")));
    assert_eq!(r.status, Status::Failed);
    assert!(r.cases[0].got.contains("disk full"));
}

#[test]
fn seed_feedback_counts() {
    assert_eq!(SEED_FEEDBACK.len(), 9);
    assert_eq!(SEED_FEEDBACK.iter().filter(|r| r.2).count(), 4);
}
