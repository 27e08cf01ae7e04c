//! Feedback records in TRL's formats.
//!
//! * [`Record`] — one *unpaired* example, TRL's KTO format: a prompt, one completion and a
//!   thumbs-up (`"label": true`, *desirable*) or thumbs-down (`"label": false`, *undesirable*).
//! * [`PairedRecord`] — one *paired* example, TRL's DPO format: a prompt, the `chosen`
//!   completion and the `rejected` one.
//!
//! Prompts and completions are [`Text`]: either a plain string (the "standard" form) or a list
//! of chat [`Message`]s (the "conversational" form). Both serialize to exactly the JSON TRL reads:
//!
//! ```json
//! {"prompt":"What is Python?","completion":"A snake.","label":false}
//! {"prompt":[{"role":"user","content":"What is Python?"}],"completion":[{"role":"assistant","content":"A snake."}],"label":false}
//! ```
//!
//! Parsing goes through [`serde_json::Value`] and checks every field by hand, so a bad line
//! gives an error naming the file, the line and the field (see [`FeedbackError`](super::FeedbackError)).

use std::fmt;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::{FeedbackError, Problem};

/// Who speaks in a chat [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person asking.
    User,
    /// The model answering. Conversational completions contain only assistant messages.
    Assistant,
}

impl Role {
    /// The role as written in JSON: `"system"`, `"user"` or `"assistant"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One turn of a conversation: `{"role": "user", "content": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What they say (must not be blank).
    pub content: String,
}

impl Message {
    /// A message with any role.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A prompt or a completion: a plain string, or a conversation.
///
/// Serialized *untagged*: `Plain` becomes a JSON string, `Messages` a JSON list of
/// `{"role", "content"}` objects — exactly the shapes TRL accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Text {
    /// The standard form: `"What is Python?"`.
    Plain(String),
    /// The conversational form: `[{"role": "user", "content": "What is Python?"}]`.
    Messages(Vec<Message>),
}

impl Text {
    /// `true` for the conversational form.
    pub fn is_conversational(&self) -> bool {
        matches!(self, Text::Messages(_))
    }

    /// A canonical JSON string for this text: equal texts give equal keys, so it can be used
    /// to group rows by prompt.
    pub fn key(&self) -> String {
        match self {
            Text::Plain(s) => Value::String(s.clone()).to_string(),
            Text::Messages(_) => serde_json::to_value(self)
                .map(|v| v.to_string())
                .unwrap_or_default(),
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::Plain(s.to_string())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Plain(s)
    }
}

impl From<Vec<Message>> for Text {
    fn from(m: Vec<Message>) -> Self {
        Text::Messages(m)
    }
}

/// One unpaired feedback example (TRL's KTO format) plus optional metadata.
///
/// On disk in a [`FeedbackStore`](super::FeedbackStore):
/// `{"prompt": ..., "completion": ..., "label": true, "metadata": {...}}` — `metadata` is
/// omitted when `None`. In a *training* file ([`Record::to_training_line`]) metadata is always
/// dropped, because TRL's KTO trainer expects exactly `prompt`, `completion`, `label`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// What the model was asked.
    pub prompt: Text,
    /// What the model answered.
    pub completion: Text,
    /// `true` = thumbs up (desirable), `false` = thumbs down (undesirable).
    pub label: bool,
    /// Anything else worth keeping (user id, timestamp, model version): any JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// The fields a [`Record`] line may have.
pub(crate) const RECORD_FIELDS: &str = "prompt, completion, label, metadata";
/// The fields a [`PairedRecord`] line may have.
pub(crate) const PAIRED_FIELDS: &str = "prompt, chosen, rejected";

/// The exact row TRL's KTO trainer reads (no metadata). Field order is the JSON key order.
#[derive(Serialize)]
struct TrainingRow<'a> {
    prompt: &'a Text,
    completion: &'a Text,
    label: bool,
}

impl Record {
    /// A record without metadata.
    pub fn new(prompt: impl Into<Text>, completion: impl Into<Text>, label: bool) -> Self {
        Record {
            prompt: prompt.into(),
            completion: completion.into(),
            label,
            metadata: None,
        }
    }

    /// A thumbs-up record (`label: true`).
    pub fn desirable(prompt: impl Into<Text>, completion: impl Into<Text>) -> Self {
        Self::new(prompt, completion, true)
    }

    /// A thumbs-down record (`label: false`).
    pub fn undesirable(prompt: impl Into<Text>, completion: impl Into<Text>) -> Self {
        Self::new(prompt, completion, false)
    }

    /// The same record with `metadata` attached.
    pub fn with_metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The record as one JSON line (no trailing newline) in the store's format: TRL's keys
    /// plus `metadata` when present.
    pub fn to_store_line(&self) -> String {
        // Serializing strings, bools, lists and JSON maps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    answer_key! {
        /// The record as one JSON line (no trailing newline) in TRL's KTO training format:
        /// exactly `{"prompt":...,"completion":...,"label":...}`, metadata dropped.
        pub fn to_training_line(&self) -> String {
            let row = TrainingRow {
                prompt: &self.prompt,
                completion: &self.completion,
                label: self.label,
            };
            serde_json::to_string(&row).unwrap_or_default()
        }
    }

    /// Check the rules a parsed line must also obey: no blank text, prompt and completion in
    /// the same form, conversational completions only from the assistant.
    ///
    /// Returns a description naming the field, e.g. `field "prompt": must not be empty`.
    pub fn validate(&self) -> Result<(), String> {
        self.check().map_err(|p| p.to_string())
    }

    pub(crate) fn check(&self) -> Result<(), Problem> {
        check_text(&self.prompt, "prompt")?;
        check_text(&self.completion, "completion")?;
        check_exchange(&self.prompt, &self.completion, "completion")
    }

    answer_key! {
        /// Parse one line of a JSONL file; errors name `path:line` and the field.
        pub fn parse_line(text: &str, path: &Path, line: usize) -> Result<Record, FeedbackError> {
            Record::from_value(&json_line(text, path, line)?).map_err(|p| p.at(path, line))
        }
    }

    pub(crate) fn from_value(value: &Value) -> Result<Record, Problem> {
        let obj = as_row(value, "an object with prompt, completion and label")?;
        check_fields(
            obj,
            &["prompt", "completion", "label", "metadata"],
            RECORD_FIELDS,
        )?;
        let prompt = parse_text(required(obj, "prompt")?, "prompt")?;
        let completion = parse_text(required(obj, "completion")?, "completion")?;
        let label = match required(obj, "label")? {
            Value::Bool(b) => *b,
            other => {
                return Err(Problem::WrongType {
                    field: Some("label".into()),
                    expected: "true or false".into(),
                    found: describe(other),
                })
            }
        };
        let metadata = match obj.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(other) => {
                return Err(Problem::WrongType {
                    field: Some("metadata".into()),
                    expected: "a JSON object".into(),
                    found: describe(other),
                })
            }
        };
        let record = Record {
            prompt,
            completion,
            label,
            metadata,
        };
        check_exchange(&record.prompt, &record.completion, "completion")?;
        Ok(record)
    }
}

/// One paired preference example (TRL's DPO format): `{"prompt", "chosen", "rejected"}`.
///
/// Only the *explicit-prompt* form is supported: TRL also accepts rows whose prompt is folded
/// into `chosen`/`rejected`, but those cannot be unpaired without guessing where the prompt ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedRecord {
    /// What the model was asked.
    pub prompt: Text,
    /// The preferred completion.
    pub chosen: Text,
    /// The dispreferred completion.
    pub rejected: Text,
}

impl PairedRecord {
    /// A paired row.
    pub fn new(
        prompt: impl Into<Text>,
        chosen: impl Into<Text>,
        rejected: impl Into<Text>,
    ) -> Self {
        PairedRecord {
            prompt: prompt.into(),
            chosen: chosen.into(),
            rejected: rejected.into(),
        }
    }

    /// The row as one JSON line (no trailing newline), keys prompt, chosen, rejected.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse one line of a JSONL file; errors name `path:line` and the field.
    pub fn parse_line(text: &str, path: &Path, line: usize) -> Result<PairedRecord, FeedbackError> {
        PairedRecord::from_value(&json_line(text, path, line)?).map_err(|p| p.at(path, line))
    }

    pub(crate) fn from_value(value: &Value) -> Result<PairedRecord, Problem> {
        let obj = as_row(value, "an object with prompt, chosen and rejected")?;
        check_fields(obj, &["prompt", "chosen", "rejected"], PAIRED_FIELDS)?;
        let prompt = parse_text(required(obj, "prompt")?, "prompt")?;
        let chosen = parse_text(required(obj, "chosen")?, "chosen")?;
        let rejected = parse_text(required(obj, "rejected")?, "rejected")?;
        check_exchange(&prompt, &chosen, "chosen")?;
        check_exchange(&prompt, &rejected, "rejected")?;
        Ok(PairedRecord {
            prompt,
            chosen,
            rejected,
        })
    }
}

/// A JSON value as shown in an error: compact, and cut after 40 characters.
pub(crate) fn describe(value: &Value) -> String {
    let full = value.to_string();
    const MAX: usize = 40;
    if full.chars().count() <= MAX {
        full
    } else {
        let cut: String = full.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

fn as_row<'a>(value: &'a Value, expected: &str) -> Result<&'a Map<String, Value>, Problem> {
    value.as_object().ok_or_else(|| Problem::WrongType {
        field: None,
        expected: expected.to_string(),
        found: describe(value),
    })
}

/// Unknown fields first (they explain a "missing" field when it is a typo), then missing ones.
fn check_fields(
    obj: &Map<String, Value>,
    known: &[&str],
    allowed: &'static str,
) -> Result<(), Problem> {
    if let Some(key) = obj.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Problem::Unknown {
            field: key.clone(),
            allowed,
        });
    }
    Ok(())
}

fn required<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a Value, Problem> {
    obj.get(field)
        .ok_or_else(|| Problem::Missing(field.to_string()))
}

fn parse_text(value: &Value, field: &str) -> Result<Text, Problem> {
    let text = match value {
        Value::String(s) => Text::Plain(s.clone()),
        Value::Array(items) => {
            let mut messages = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                messages.push(parse_message(item, &format!("{field}[{i}]"))?);
            }
            Text::Messages(messages)
        }
        other => {
            return Err(Problem::WrongType {
                field: Some(field.to_string()),
                expected: "a string or a list of {\"role\", \"content\"} messages".into(),
                found: describe(other),
            })
        }
    };
    check_text(&text, field)?;
    Ok(text)
}

fn parse_message(value: &Value, field: &str) -> Result<Message, Problem> {
    let obj = value.as_object().ok_or_else(|| Problem::WrongType {
        field: Some(field.to_string()),
        expected: "a message {\"role\", \"content\"}".into(),
        found: describe(value),
    })?;
    if let Some(key) = obj.keys().find(|k| *k != "role" && *k != "content") {
        return Err(Problem::Unknown {
            field: format!("{field}.{key}"),
            allowed: "role, content",
        });
    }
    let role_field = format!("{field}.role");
    let role = match obj.get("role") {
        None => return Err(Problem::Missing(role_field)),
        Some(Value::String(s)) => Role::parse(s).ok_or_else(|| Problem::WrongType {
            field: Some(role_field.clone()),
            expected: "\"system\", \"user\" or \"assistant\"".into(),
            found: describe(&Value::String(s.clone())),
        })?,
        Some(other) => {
            return Err(Problem::WrongType {
                field: Some(role_field),
                expected: "\"system\", \"user\" or \"assistant\"".into(),
                found: describe(other),
            })
        }
    };
    let content_field = format!("{field}.content");
    let content = match obj.get("content") {
        None => return Err(Problem::Missing(content_field)),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(Problem::WrongType {
                field: Some(content_field),
                expected: "a string".into(),
                found: describe(other),
            })
        }
    };
    Ok(Message { role, content })
}

/// No blank strings, no empty conversations, no blank message contents.
fn check_text(text: &Text, field: &str) -> Result<(), Problem> {
    match text {
        Text::Plain(s) if s.trim().is_empty() => Err(Problem::Invalid {
            field: Some(field.to_string()),
            message: "must not be empty".into(),
        }),
        Text::Plain(_) => Ok(()),
        Text::Messages(m) if m.is_empty() => Err(Problem::Invalid {
            field: Some(field.to_string()),
            message: "must not be an empty list of messages".into(),
        }),
        Text::Messages(m) => {
            for (i, msg) in m.iter().enumerate() {
                if msg.content.trim().is_empty() {
                    return Err(Problem::Invalid {
                        field: Some(format!("{field}[{i}].content")),
                        message: "must not be empty".into(),
                    });
                }
            }
            Ok(())
        }
    }
}

/// Prompt and answer must use the same form, and a conversational answer must come from the
/// assistant (TRL appends it to the prompt's conversation).
fn check_exchange(prompt: &Text, answer: &Text, field: &str) -> Result<(), Problem> {
    match (prompt, answer) {
        (Text::Plain(_), Text::Messages(_)) => Err(Problem::Invalid {
            field: Some(field.to_string()),
            message:
                "is a list of messages but \"prompt\" is a plain string; use the same form for both"
                    .into(),
        }),
        (Text::Messages(_), Text::Plain(_)) => Err(Problem::Invalid {
            field: Some(field.to_string()),
            message:
                "is a plain string but \"prompt\" is a list of messages; use the same form for both"
                    .into(),
        }),
        (Text::Plain(_), Text::Plain(_)) => Ok(()),
        (Text::Messages(_), Text::Messages(m)) => {
            match m.iter().position(|msg| msg.role != Role::Assistant) {
                Some(i) => Err(Problem::Invalid {
                    field: Some(format!("{field}[{i}].role")),
                    message: format!(
                        "a conversational {field} holds only \"assistant\" messages, got \"{}\"",
                        m[i].role
                    ),
                }),
                None => Ok(()),
            }
        }
    }
}

/// One line of a JSONL file as JSON; a syntax error names `path:line`.
fn json_line(text: &str, path: &Path, line: usize) -> Result<Value, FeedbackError> {
    serde_json::from_str(text).map_err(|e| FeedbackError::InvalidJson {
        path: path.to_path_buf(),
        line,
        field: None,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_and_conversational_texts_serialize_untagged() {
        let r = Record::new("hi", "hello", true);
        assert_eq!(
            r.to_store_line(),
            r#"{"prompt":"hi","completion":"hello","label":true}"#
        );
        let r = Record::new(
            vec![Message::user("hi")],
            vec![Message::assistant("hello")],
            false,
        );
        assert_eq!(
            r.to_training_line(),
            r#"{"prompt":[{"role":"user","content":"hi"}],"completion":[{"role":"assistant","content":"hello"}],"label":false}"#
        );
    }

    #[test]
    fn problems_name_the_field() {
        let p = Record::from_value(&json!({"prompt": "a", "completion": "b", "label": "yes"}));
        assert_eq!(
            p.unwrap_err().to_string(),
            r#"field "label": expected true or false, got "yes""#
        );
        let p = Record::from_value(&json!({
            "prompt": [{"role": "bot", "content": "x"}], "completion": "b", "label": true
        }));
        assert_eq!(p.unwrap_err().field().as_deref(), Some("prompt[0].role"));
        let p = Record::from_value(&json!({"prompt": "a", "completion": "b", "lable": true}));
        assert!(matches!(p, Err(Problem::Unknown { ref field, .. }) if field == "lable"));
    }

    #[test]
    fn describe_shortens_long_values() {
        let long = Value::String("x".repeat(100));
        assert_eq!(describe(&long).chars().count(), 41);
    }
}
