//! KTO on a rater's own thumbs moves the model toward *their* taste, not the judge's.
//!
//! A **scripted rater** (a program, not a person) with a taste the judge does not share: it
//! likes answers that admit not knowing ("I don't know.", "I am not sure." — the judge's
//! *evasive* kind, a thumbs down for the judge) and dislikes everything else, correct answers
//! included. It rates the classroom SFT model's answers through lab 4's click model
//! ([`final_records`] of its clicks); KTO trains on them. On held-out questions it never rated,
//! over 3 seeds, the model gives more of the answers it likes — measured directly with its own
//! rule, and by the report's estimate from its votes.

use kto_lab::classroom::{new_model, RECORDED_VOTES};
use kto_lab::feedback::{final_records, Click, RatedClick, Vote, VoteLog};
use kto_lab::pipeline::{train_sft_model, LoopConfig, RatingModel};
use kto_lab::train::MetricsLog;
use kto_lab::world;

/// The scripted rater's rule: 👍 to an answer the judge calls evasive, 👎 to anything else.
fn likes(question: &str, answer: &str) -> bool {
    let prompt = world::find_prompt(question).expect("a world question");
    world::judge(prompt, answer).kind == Some(world::UndesirableKind::Evasive)
}

#[test]
fn a_scripted_raters_taste_is_learned_over_three_seeds() {
    let config = LoopConfig::classroom();
    let (tokenizer, model) =
        train_sft_model(new_model, &config, &mut MetricsLog::quiet()).expect("SFT trains");
    let mut rating = RatingModel {
        model,
        tokenizer,
        config,
        description: "classroom".into(),
    };
    let mut lines = Vec::new();
    for seed in [1u64, 2, 3] {
        rating.config.seed = seed;
        rating.config.kto.seed = seed;
        let pool = rating.pool(8, seed).expect("answers to rate");
        let clicks: Vec<RatedClick> = pool
            .answers
            .iter()
            .map(|a| RatedClick {
                answer: a.id.clone(),
                rater: "scripted".into(),
                time_ms: 0,
                click: Click::new(
                    a.prompt.as_str(),
                    a.completion.as_str(),
                    if likes(&a.prompt, &a.completion) {
                        Vote::Up
                    } else {
                        Vote::Down
                    },
                ),
                undo: false,
            })
            .collect();
        let rows = final_records(&clicks);
        let ups = rows.iter().filter(|r| r.label).count();
        assert!(
            ups > 0 && ups < rows.len(),
            "seed {seed}: {ups} of {} liked",
            rows.len()
        );
        let (_, report) = rating.train_on(&rows).expect("KTO on the votes");
        let direct =
            |s: &kto_lab::pipeline::Scored| s.categories["evasive"] as f64 / s.answers as f64;
        let (before, after) = (direct(&report.before), direct(&report.after));
        let (est_before, est_after) = (
            report.before.taste_rate.unwrap(),
            report.after.taste_rate.unwrap(),
        );
        lines.push(format!(
            "seed {seed}: {} votes ({ups} up); liked answers {:.1}% → {:.1}%; estimated {:.1}% → {:.1}%; judge {:.1}% → {:.1}%; κ {:?}",
            rows.len(),
            100.0 * before,
            100.0 * after,
            100.0 * est_before,
            100.0 * est_after,
            100.0 * report.before.judge_rate.unwrap(),
            100.0 * report.after.judge_rate.unwrap(),
            report.agreement.kappa,
        ));
        assert!(after > before, "{}", lines.join("\n"));
        assert!(est_after > est_before, "{}", lines.join("\n"));
        // The rater and the judge disagree on every evasive and every correct answer.
        assert!(
            report.agreement.kappa.is_some_and(|k| k < 0.5),
            "{}",
            lines.join("\n")
        );
    }
    println!("{}", lines.join("\n"));
}

/// The rule of the scripted rater whose votes lab 4 ships ([`RECORDED_VOTES`]): 👍 to correct
/// answers and to answers that admit not knowing, 👎 to wrong, flippant and malformed ones.
fn recorded_raters_rule(question: &str, answer: &str) -> bool {
    let prompt = world::find_prompt(question).expect("a world question");
    let verdict = world::judge(prompt, answer);
    verdict.label || verdict.kind == Some(world::UndesirableKind::Evasive)
}

/// The shipped recording is what its label says: one scripted rater, every vote its rule's.
#[test]
fn the_recorded_votes_are_the_scripted_raters() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDED_VOTES);
    let loaded = VoteLog::new(&path).load().expect("the recording loads");
    assert!(loaded.torn_tail.is_none());
    assert_eq!(loaded.clicks.len(), RECORDED_COUNT);
    for c in &loaded.clicks {
        assert_eq!(c.rater, RECORDED_RATER);
        let expected = if recorded_raters_rule(&c.click.prompt, &c.click.completion) {
            Vote::Up
        } else {
            Vote::Down
        };
        assert_eq!(c.click.vote, expected, "{c:?}");
    }
    let rows = final_records(&loaded.clicks);
    assert_eq!(rows.len(), RECORDED_COUNT);
    let ups = rows.iter().filter(|r| r.label).count();
    assert!(ups > 0 && ups < rows.len());
}

const RECORDED_RATER: &str = "scripted rater";
const RECORDED_COUNT: usize = 24;

/// Records [`RECORDED_VOTES`] anew through the real page: the classroom model's session
/// answers (as `kto-lab rate` makes them), the scripted rater voting on the first 24 over HTTP
/// as the page's script does. Run by hand after removing the old file:
/// `cargo test --test votes -- --ignored record_the_scripted_raters_votes`.
#[test]
#[ignore = "writes labs/data/recorded-votes.jsonl; run by hand"]
fn record_the_scripted_raters_votes() {
    use std::io::{Read, Write};
    let dest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(RECORDED_VOTES);
    assert!(!dest.exists(), "{} exists: remove it first", dest.display());
    let pool = kto_lab::classroom::rating_model()
        .expect("the classroom SFT")
        .pool(6, 42)
        .expect("answers");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("votes.jsonl");
    let page = kto_lab::rate::start(kto_lab::rate::RateOptions {
        pool: pool.clone(),
        log: VoteLog::new(&log),
        bind: "127.0.0.1:0".parse().unwrap(),
        names_required: false,
    })
    .expect("the page starts");
    let host = format!("127.0.0.1:{}", page.addr().port());
    for a in pool.answers.iter().take(RECORDED_COUNT) {
        let vote = if recorded_raters_rule(&a.prompt, &a.completion) {
            "up"
        } else {
            "down"
        };
        let body = format!(
            r#"{{"rater":"{RECORDED_RATER}","answer":"{}","vote":"{vote}"}}"#,
            a.id
        );
        let mut s = std::net::TcpStream::connect(page.addr()).unwrap();
        write!(
            s,
            "POST /api/vote HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\nContent-Type: application/json\r\nX-Rate-Token: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            page.token(),
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        // A person takes a few seconds per answer; the recording need not.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    page.stop();
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(&log, &dest).unwrap();
}
