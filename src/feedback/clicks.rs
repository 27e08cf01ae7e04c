//! From a chat UI's clicks to feedback records: the last vote on an answer is its label.
//!
//! A user clicks 👍, changes their mind to 👎, clicks 👍 three times, takes a vote back. Written
//! down click by click, that is noise: a flipped vote would leave both labels on one answer, an
//! eager user's answer would count three times (tilting the desirable/undesirable balance that
//! KTO's λ weights are set from), and a withdrawn vote is not a thumbs down — it is no label at
//! all. [`final_votes`] keeps one record per answer (prompt and completion together), with the
//! last vote, in the order the answers were first clicked.

use std::collections::HashMap;

use super::Record;

/// One click on an answer's feedback buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Vote {
    /// 👍
    Up,
    /// 👎
    Down,
    /// The vote taken back.
    Clear,
}

/// A click on the answer `completion` to `prompt`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Click {
    /// The user's message.
    pub prompt: String,
    /// The model's answer that was voted on.
    pub completion: String,
    /// What was clicked.
    pub vote: Vote,
}

impl Click {
    /// A click on `completion` as the answer to `prompt`.
    pub fn new(prompt: impl Into<String>, completion: impl Into<String>, vote: Vote) -> Self {
        Click {
            prompt: prompt.into(),
            completion: completion.into(),
            vote,
        }
    }
}

answer_key! {
    /// One record per answer clicked: its last vote (👍 desirable, 👎 undesirable; an answer whose
    /// last click is [`Vote::Clear`] has none), in the order the answers were first clicked.
    pub fn final_votes(clicks: &[Click]) -> Vec<Record> {
        let mut first_seen: Vec<(&str, &str)> = Vec::new();
        let mut last: HashMap<(&str, &str), Vote> = HashMap::new();
        for click in clicks {
            let answer = (click.prompt.as_str(), click.completion.as_str());
            if last.insert(answer, click.vote).is_none() {
                first_seen.push(answer);
            }
        }
        first_seen
            .into_iter()
            .filter_map(|answer| match last[&answer] {
                Vote::Up => Some(Record::desirable(answer.0, answer.1)),
                Vote::Down => Some(Record::undesirable(answer.0, answer.1)),
                Vote::Clear => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_vote_counts_once_per_answer() {
        let clicks = [
            Click::new("Capital of France?", "Paris.", Vote::Up),
            Click::new("Capital of France?", "Lyon.", Vote::Up),
            Click::new("Capital of France?", "Lyon.", Vote::Down),
            Click::new("Capital of France?", "Paris.", Vote::Up),
            Click::new("Capital of France?", "Marseille.", Vote::Down),
            Click::new("Capital of France?", "Marseille.", Vote::Clear),
            Click::new("Capital of Italy?", "Paris.", Vote::Down),
        ];
        assert_eq!(
            final_votes(&clicks),
            [
                Record::desirable("Capital of France?", "Paris."),
                Record::undesirable("Capital of France?", "Lyon."),
                Record::undesirable("Capital of Italy?", "Paris."),
            ]
        );
        assert!(final_votes(&[]).is_empty());
    }
}
