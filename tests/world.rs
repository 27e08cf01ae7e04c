//! Integration tests for `kto_lab::world` (lab 3's toy world).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use kto_lab::feedback::{FeedbackStore, Message, PairedRecord, Record, Text};
use kto_lab::world::{
    accepted_answers, all_bad_answers, bad_answer, cut_at_eos, desirable_rate, dpo_pairs,
    find_prompt, good_answer, judge, lm_text, normalize, prompts, prompts_in, sft_corpus,
    to_record, tokenizer_corpus, wrong_answers, Metrics, Split, Template, UndesirableKind, Verdict,
    EOS, SFT_COPIES,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

fn france() -> &'static kto_lab::world::Prompt {
    find_prompt("What is the capital of France?").expect("France is in the world")
}

/// Words as a word-level tokenizer would see them: split on whitespace, punctuation apart.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in s.split_whitespace() {
        let mut word = String::new();
        for c in chunk.chars() {
            if c.is_alphanumeric() || c == '\'' || c == '-' {
                word.push(c);
            } else {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                out.push(c.to_string());
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out
}

// ---- data -------------------------------------------------------------------------------

#[test]
fn data_sizes_and_split() {
    assert_eq!(prompts().len(), 75);
    assert_eq!(prompts_in(Split::Train).len(), 60);
    assert_eq!(prompts_in(Split::Eval).len(), 15);
    for (i, p) in prompts().iter().enumerate() {
        assert_eq!(p.id, i);
        assert_eq!(find_prompt(&p.question), Some(p));
    }
    assert_eq!(find_prompt("What is the capital of Atlantis?"), None);
}

#[test]
fn no_duplicate_prompts() {
    let questions: HashSet<&str> = prompts().iter().map(|p| p.question()).collect();
    assert_eq!(questions.len(), prompts().len());
}

#[test]
fn every_template_in_train_and_eval() {
    for t in Template::ALL {
        for split in [Split::Train, Split::Eval] {
            let n = prompts_in(split).iter().filter(|p| p.template == t).count();
            assert!(n > 0, "{t} has no {split} prompt");
        }
    }
}

#[test]
fn prompts_are_short_and_answers_are_one_word() {
    for p in prompts() {
        let n = words(&p.question).len() + words(&good_answer(p)).len();
        assert!(n <= 20, "{} → {} is {n} tokens", p.question, good_answer(p));
        assert!(!p.answer.contains(' '), "{}", p.answer);
        assert!(!wrong_answers(p).is_empty());
        assert!(!wrong_answers(p).contains(&p.answer));
    }
}

#[test]
fn examples_from_every_template() {
    let pairs: Vec<(String, String)> = Template::ALL
        .iter()
        .map(|t| {
            let p = prompts()
                .iter()
                .find(|p| p.template == *t)
                .expect("non-empty template");
            (p.question.clone(), good_answer(p))
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (
                "What is the capital of France?",
                "Paris is the capital of France."
            ),
            ("What is 2 plus 3?", "2 plus 3 is 5."),
            ("What color is the sky?", "The sky is blue."),
            ("What does the cow say?", "The cow says moo."),
            (
                "What is the opposite of hot?",
                "The opposite of hot is cold."
            ),
        ]
        .map(|(q, a)| (q.to_string(), a.to_string()))
    );
}

#[test]
fn arithmetic_is_right() {
    for p in prompts()
        .iter()
        .filter(|p| p.template == Template::Arithmetic)
    {
        let nums: Vec<u32> = p
            .subject
            .split(" plus ")
            .map(|n| n.parse().expect("a number"))
            .collect();
        assert_eq!(nums.iter().sum::<u32>().to_string(), p.answer);
    }
}

// ---- judge ------------------------------------------------------------------------------

#[test]
fn every_accepted_answer_is_up() {
    for p in prompts() {
        for a in accepted_answers(p) {
            let v = judge(p, &a);
            assert!(v.label, "{} / {a}: {v}", p.question);
            assert_eq!(v.kind, None);
        }
    }
}

#[test]
fn every_bad_answer_is_down_with_its_kind() {
    for p in prompts() {
        for kind in UndesirableKind::ALL {
            let all = all_bad_answers(p, kind);
            assert!(!all.is_empty());
            for a in all {
                let v = judge(p, &a);
                assert!(!v.label, "{} / {a} judged up", p.question);
                assert_eq!(v.kind, Some(kind), "{} / {a}: {v}", p.question);
            }
        }
    }
}

#[test]
fn bad_answer_draws_from_all_bad_answers_deterministically() {
    let p = france();
    for kind in UndesirableKind::ALL {
        let all = all_bad_answers(p, kind);
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20)
                .map(|_| bad_answer(p, kind, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert!(draw(7).iter().all(|a| all.contains(a)));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let wrong: BTreeSet<String> = (0..200)
        .map(|_| bad_answer(p, UndesirableKind::Wrong, &mut rng))
        .collect();
    assert!(wrong.contains("Rome is the capital of France."));
    assert!(!wrong.contains("Paris is the capital of France."));
}

#[test]
fn normalization() {
    let p = france();
    for ok in [
        "Paris is the capital of France.",
        "paris is the capital of france",
        "PARIS IS THE CAPITAL OF FRANCE!",
        "  Paris   is\tthe capital\nof France ?! ",
        "The capital of France is Paris.",
    ] {
        assert!(judge(p, ok).label, "{ok:?}");
    }
    assert_eq!(normalize(" A  b. "), "a b");
    assert_eq!(normalize("I don’t know."), "i don't know");
    assert_eq!(
        judge(p, "I don’t KNOW").kind,
        Some(UndesirableKind::Evasive)
    );
}

#[test]
fn right_answer_with_junk_is_down() {
    let p = france();
    let cases = [
        (
            "Paris is the capital of France. Paris",
            UndesirableKind::Malformed,
        ),
        (
            "Paris is the capital of France and Italy.",
            UndesirableKind::Malformed,
        ),
        (
            "Yes. Paris is the capital of France.",
            UndesirableKind::Malformed,
        ),
        (
            "Paris, is the capital of France.",
            UndesirableKind::Malformed,
        ),
        (
            "Paris is the capital of France lol",
            UndesirableKind::Flippant,
        ),
        ("Paris", UndesirableKind::Malformed),
        ("Paris is the capital of Italy.", UndesirableKind::Wrong),
        ("The sky is blue.", UndesirableKind::Wrong),
        ("Rome is the capital of France.", UndesirableKind::Wrong),
        ("Just don't get sick lol", UndesirableKind::Flippant),
        ("Its computers doing stuff.", UndesirableKind::Malformed),
    ];
    for (text, kind) in cases {
        let v = judge(p, text);
        assert!(!v.label, "{text:?} judged up");
        assert_eq!(v.kind, Some(kind), "{text:?}: {v}");
    }
}

#[test]
fn garbage_never_panics_and_is_down() {
    let p = france();
    let fixed = [
        "",
        " ",
        "\n\t",
        "...",
        "?!",
        "\u{0}",
        "🙂🙂🙂",
        "Paris est la capitale de la France.",
        "Парис is the capital of France.",
        "İ",
        "{a} is the capital of France.",
        "{s}",
        "\u{2019}\u{2019}",
        "e\u{301}",
    ];
    let long = "ß".repeat(1000);
    for text in fixed.into_iter().chain([long.as_str()]) {
        let v = judge(p, text);
        assert!(!v.label, "{text:?}");
        assert!(v.kind.is_some());
    }
    assert_eq!(judge(p, "").kind, Some(UndesirableKind::Malformed));
    assert_eq!(judge(p, "   ").reason, "empty completion");

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let alphabet: Vec<char> = "abc Paris.!? \n\t'’😀ßİ\u{0}\u{301}éЖ中".chars().collect();
    for _ in 0..2000 {
        let len = rng.gen_range(0..40);
        let s: String = (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect();
        for p in prompts().iter().step_by(7) {
            let v = judge(p, &s);
            assert!(!v.label || !s.is_empty());
            assert_eq!(v.label, v.kind.is_none());
        }
        // Random unicode scalars too.
        let s: String = (0..len)
            .filter_map(|_| char::from_u32(rng.gen_range(0..0x11_0000)))
            .collect();
        let v = judge(p, &s);
        assert!(!v.label, "{s:?}");
    }
}

#[test]
fn judge_is_deterministic() {
    for p in prompts() {
        for a in all_bad_answers(p, UndesirableKind::Wrong) {
            assert_eq!(judge(p, &a), judge(p, &a));
        }
    }
}

// ---- format -----------------------------------------------------------------------------

#[test]
fn prompt_format() {
    assert_eq!(
        lm_text("What is 2 plus 3?", None),
        "Q: What is 2 plus 3?\nA:"
    );
    let full = lm_text("What is 2 plus 3?", Some("2 plus 3 is 5."));
    assert_eq!(full, "Q: What is 2 plus 3?\nA: 2 plus 3 is 5.\n");
    assert!(full.ends_with(EOS));
    let prompt = lm_text("What is 2 plus 3?", None);
    assert_eq!(cut_at_eos(&full[prompt.len()..]), "2 plus 3 is 5.");
    assert_eq!(cut_at_eos(""), "");
    assert_eq!(cut_at_eos("no eos "), "no eos");
}

// ---- corpora ----------------------------------------------------------------------------

#[test]
fn sft_corpus_is_deterministic() {
    assert_eq!(sft_corpus(42, 0.5), sft_corpus(42, 0.5));
    assert_ne!(sft_corpus(42, 0.5), sft_corpus(43, 0.5));
}

#[test]
fn sft_corpus_good_fraction() {
    for f in [0.0, 0.1, 0.3, 0.5, 0.77, 1.0] {
        let corpus = sft_corpus(1, f);
        assert_eq!(corpus.len(), prompts().len() * SFT_COPIES);
        let good = corpus.iter().filter(|e| e.kind.is_none()).count();
        let got = good as f64 / corpus.len() as f64;
        assert!((got - f).abs() <= 1.0 / corpus.len() as f64, "{f}: {got}");
        // The labels the corpus claims are the judge's.
        for e in &corpus {
            let p = &prompts()[e.prompt_id];
            assert_eq!(p.question, e.prompt);
            assert_eq!(judge(p, &e.completion).kind, e.kind, "{e:?}");
        }
    }
    // Out-of-range fractions are clamped, NaN counts as 0.
    assert!(sft_corpus(1, 2.0).iter().all(|e| e.kind.is_none()));
    assert!(sft_corpus(1, f64::NAN).iter().all(|e| e.kind.is_some()));
    assert!(sft_corpus(1, -1.0).iter().all(|e| e.kind.is_some()));
}

#[test]
fn sft_corpus_mixes_every_prompt_and_every_sft_kind() {
    let corpus = sft_corpus(42, 0.5);
    let mut per_prompt: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    let mut kinds: BTreeMap<Option<UndesirableKind>, usize> = BTreeMap::new();
    for e in &corpus {
        let entry = per_prompt.entry(e.prompt_id).or_default();
        if e.kind.is_none() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        *kinds.entry(e.kind).or_default() += 1;
    }
    assert_eq!(per_prompt.len(), prompts().len());
    assert!(per_prompt.values().all(|&(g, b)| g == 4 && b == 4));
    assert_eq!(kinds[&None], 300);
    for k in UndesirableKind::IN_SFT {
        assert_eq!(kinds[&Some(k)], 100, "{k}");
    }
    assert!(!kinds.contains_key(&Some(UndesirableKind::Malformed)));
}

#[test]
fn tokenizer_corpus_covers_every_word() {
    let corpus = tokenizer_corpus();
    let vocab: HashSet<String> = corpus.iter().flat_map(|s| words(s)).collect();
    let covered = |s: &str| {
        for w in words(s) {
            assert!(
                vocab.contains(&w),
                "{w:?} of {s:?} not in the tokenizer corpus"
            );
        }
    };
    for p in prompts() {
        covered(&lm_text(&p.question, Some(&good_answer(p))));
        for a in accepted_answers(p) {
            covered(&a);
        }
        for kind in UndesirableKind::ALL {
            for a in all_bad_answers(p, kind) {
                covered(&a);
            }
        }
    }
    for e in sft_corpus(5, 0.5) {
        covered(&e.text());
    }
    assert!(corpus.iter().any(|s| s.contains(EOS)));
    let mut sorted = corpus.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, corpus);
}

// ---- records and pairs ------------------------------------------------------------------

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn to_record_round_trips_through_the_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FeedbackStore::new(dir.path().join("feedback.jsonl"));
    let p = france();
    let mut written = Vec::new();
    for (step, completion) in [
        "Paris is the capital of France.",
        "Rome is the capital of France.",
    ]
    .into_iter()
    .enumerate()
    {
        let v = judge(p, completion);
        let r =
            to_record(p, completion, &v, meta(json!({"step": step}))).expect("a storable record");
        store.append(&r).expect("append");
        written.push(r);
    }
    let loaded = store.load().expect("load");
    assert_eq!(loaded.records, written);
    assert_eq!(loaded.torn_tail, None);
    let first = &loaded.records[0];
    assert!(first.label);
    // Conversational: the exported model's chat template gives the format (tests/export.rs).
    assert_eq!(
        first.prompt,
        Text::from(vec![Message::user("What is the capital of France?")])
    );
    assert_eq!(
        Value::Object(first.metadata.clone().unwrap_or_default()),
        json!({"prompt_id": 0, "template": "capital", "split": "train", "kind": null,
               "reason": "states the right answer, Paris", "step": 0})
    );
    let second = &loaded.records[1];
    assert!(!second.label);
    assert_eq!(
        second.metadata.as_ref().and_then(|m| m.get("kind")),
        Some(&json!("wrong"))
    );
    assert_eq!(
        second.to_training_line(),
        r#"{"prompt":[{"role":"user","content":"What is the capital of France?"}],"completion":[{"role":"assistant","content":"Rome is the capital of France."}],"label":false}"#
    );
}

#[test]
fn to_record_refuses_blank_completions() {
    let p = france();
    let v = judge(p, "  ");
    assert!(!v.label);
    let err = to_record(p, "  ", &v, Map::new()).expect_err("blank is not storable");
    assert!(err.contains("completion"), "{err}");
}

#[test]
fn extra_metadata_replaces_world_keys() {
    let p = france();
    let v = judge(p, "I don't know.");
    let r = to_record(p, "I don't know.", &v, meta(json!({"reason": "mine"}))).expect("ok");
    assert_eq!(
        r.metadata.and_then(|m| m.get("reason").cloned()),
        Some(json!("mine"))
    );
}

#[test]
fn pairs_only_where_both_labels_exist() {
    let records = vec![
        Record::desirable("A?", "a1"),
        Record::undesirable("B?", "b-bad"),
        Record::undesirable("A?", "a-bad1"),
        Record::desirable("C?", "c1"),
        Record::desirable("A?", "a2"),
        Record::undesirable("A?", "a-bad2"),
        Record::desirable("A?", "a3"),
        Record::undesirable("D?", "d-bad"),
        Record::desirable("D?", "d1"),
    ];
    assert_eq!(
        dpo_pairs(&records),
        vec![
            PairedRecord::new("A?", "a1", "a-bad1"),
            PairedRecord::new("A?", "a2", "a-bad2"),
            PairedRecord::new("D?", "d1", "d-bad"),
        ]
    );
    assert!(dpo_pairs(&[]).is_empty());
    assert!(dpo_pairs(&records[..2]).is_empty());
}

#[test]
fn pairs_from_judged_samples() {
    let mut records = Vec::new();
    for e in sft_corpus(9, 0.5).iter().take(100) {
        let p = &prompts()[e.prompt_id];
        let v = judge(p, &e.completion);
        records.push(to_record(p, &e.completion, &v, Map::new()).expect("storable"));
    }
    let pairs = dpo_pairs(&records);
    assert!(!pairs.is_empty());
    // The single turn of a conversational text.
    let turn = |t: &Text| match t {
        Text::Messages(m) if m.len() == 1 => m[0].content.clone(),
        other => panic!("one conversational turn, not {other:?}"),
    };
    for pair in &pairs {
        let p = find_prompt(&turn(&pair.prompt)).expect("a world prompt");
        let (c, r) = (turn(&pair.chosen), turn(&pair.rejected));
        assert!(judge(p, &c).label);
        assert!(!judge(p, &r).label);
    }
    assert_eq!(pairs, dpo_pairs(&records));
}

// ---- metrics ----------------------------------------------------------------------------

#[test]
fn metrics_count_by_kind() {
    let p = france();
    let verdicts: Vec<Verdict> = [
        "Paris is the capital of France.",
        "The capital of France is Paris.",
        "Rome is the capital of France.",
        "I don't know.",
        "Who cares lol.",
        "",
    ]
    .iter()
    .map(|c| judge(p, c))
    .collect();
    let m = Metrics::of(&verdicts);
    assert_eq!((m.total, m.desirable, m.undesirable), (6, 2, 4));
    assert_eq!(m.desirable_rate, Some(2.0 / 6.0));
    assert_eq!(desirable_rate(&verdicts), Some(2.0 / 6.0));
    for kind in UndesirableKind::ALL {
        assert_eq!(m.by_kind.get(kind), 1, "{kind}");
    }
    assert_eq!(
        m.to_string(),
        "2/6 desirable (33.3%); down: 1 wrong, 1 evasive, 1 flippant, 1 malformed"
    );
    assert_eq!(
        serde_json::to_value(m).expect("serializes")["by_kind"],
        json!({"wrong": 1, "evasive": 1, "flippant": 1, "malformed": 1})
    );
    let empty = Metrics::of(&[]);
    assert_eq!(empty.desirable_rate, None);
    assert_eq!(
        empty.to_string(),
        "0/0 desirable; down: 0 wrong, 0 evasive, 0 flippant, 0 malformed"
    );
}

#[test]
fn sft_corpus_verdicts_match_its_good_fraction() {
    let corpus = sft_corpus(42, 0.5);
    let verdicts: Vec<Verdict> = corpus
        .iter()
        .map(|e| judge(&prompts()[e.prompt_id], &e.completion))
        .collect();
    assert_eq!(desirable_rate(&verdicts), Some(0.5));
}

// ---- snapshot ---------------------------------------------------------------------------

#[test]
fn sft_sample_snapshot() {
    let sample: Vec<Value> = sft_corpus(42, 0.5)
        .into_iter()
        .take(10)
        .map(|e| {
            let v = judge(&prompts()[e.prompt_id], &e.completion);
            json!({"prompt": e.prompt, "completion": e.completion, "kind": e.kind, "verdict": v})
        })
        .collect();
    insta::assert_json_snapshot!("world_sft_sample", sample);
}
