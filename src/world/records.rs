//! From judged samples to training data: KTO records for the feedback store, DPO pairs.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::data::Prompt;
use super::judge::Verdict;
use crate::feedback::{Message, PairedRecord, Record, Text};

/// A judged sample as a [`Record`] for the [`FeedbackStore`](crate::feedback::FeedbackStore):
/// TRL's unpaired KTO format in its *conversational* form — the prompt a user turn, the
/// completion an assistant turn — `label` = the verdict's thumbs, plus metadata:
///
/// ```json
/// {"prompt": [{"role": "user", "content": "What is the capital of France?"}],
///  "completion": [{"role": "assistant", "content": "Rome is the capital of France."}],
///  "label": false, "metadata": {...}}
/// ```
///
/// Conversational rather than the prompt pre-formatted as `"Q: …\nA:"`: the file keeps what
/// was asked and answered, and the format stays with the model — the exported checkpoint's
/// chat template ([`CHAT_TEMPLATE`](super::CHAT_TEMPLATE)), which TRL applies to such rows,
/// renders exactly the tokens the model trained on. The same file could train another chat
/// model, under its own template. The metadata:
///
/// ```json
/// {"prompt_id": 0, "template": "capital", "split": "train", "kind": "wrong",
///  "reason": "says Rome instead of Paris", ...extra}
/// ```
///
/// `kind` is `null` for a thumbs up. The keys of `extra` (say `"step"`, the sampling round)
/// come after; an `extra` key with the same name replaces the world's value.
///
/// Returns `Err` — with the reason, e.g. `field "completion": must not be empty` — for a
/// record the store would refuse: a blank completion. Count such samples in your metrics (the
/// judge calls them malformed), but they carry no text to store.
pub fn to_record(
    prompt: &Prompt,
    completion: &str,
    verdict: &Verdict,
    extra: Map<String, Value>,
) -> Result<Record, String> {
    let mut metadata = Map::new();
    metadata.insert("prompt_id".into(), Value::from(prompt.id));
    metadata.insert("template".into(), Value::from(prompt.template.as_str()));
    metadata.insert("split".into(), Value::from(prompt.split.as_str()));
    metadata.insert(
        "kind".into(),
        verdict
            .kind
            .map_or(Value::Null, |k| Value::from(k.as_str())),
    );
    metadata.insert("reason".into(), Value::from(verdict.reason.as_str()));
    metadata.extend(extra);
    let record = Record::new(
        vec![Message::user(prompt.question.as_str())],
        vec![Message::assistant(completion)],
        verdict.label,
    )
    .with_metadata(metadata);
    record.validate()?;
    Ok(record)
}

/// DPO pairs from judged records: for each prompt that has both thumbs-up and thumbs-down
/// records, the i-th desirable completion is paired with the i-th undesirable one (so each
/// record is used at most once, and a prompt with 3 ups and 2 downs gives 2 pairs).
///
/// Prompts come in order of first appearance, records in file order: the result is
/// deterministic. Prompts with only one label give no pair — that data is lost to DPO, which
/// is the point of comparing it with KTO.
pub fn dpo_pairs(records: &[Record]) -> Vec<PairedRecord> {
    // prompt key → (prompt, ups, downs), in first-appearance order.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<(&Text, Vec<&Text>, Vec<&Text>)> = Vec::new();
    for r in records {
        let at = *index.entry(r.prompt.key()).or_insert_with(|| {
            groups.push((&r.prompt, Vec::new(), Vec::new()));
            groups.len() - 1
        });
        let (_, ups, downs) = &mut groups[at];
        if r.label {
            ups.push(&r.completion);
        } else {
            downs.push(&r.completion);
        }
    }
    groups
        .into_iter()
        .flat_map(|(prompt, ups, downs)| {
            ups.into_iter()
                .zip(downs)
                .map(move |(chosen, rejected)| {
                    PairedRecord::new(prompt.clone(), chosen.clone(), rejected.clone())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
