//! The prompt: numbered sources within a token budget, the conversation so
//! far, and the (standalone) question.
//!
//! Each source is one line `[n] text` followed by a line naming where it
//! comes from; a model cites `[n]`. (The fake Azure server's extractive
//! chat reads exactly these `[n]` lines.) Changing the wording changes
//! answers, so it is versioned: [`PROMPT_VERSION`] is part of every
//! answer's provenance and of the answer-cache key.

use ragspin_core::{ChatMessage, ChatRequest, Role};

use crate::model::Source;
use crate::text::{estimate_tokens, one_line, truncate};

/// The version of the prompt below.
pub const PROMPT_VERSION: &str = "ragspin-rag-1";

const INSTRUCTIONS: &str = "You answer questions using only the numbered sources below. \
Cite the source of every statement with its number in square brackets, like [1] or [2][3], \
placed before the sentence's final punctuation. If the sources do not contain the answer, \
say that the documents do not contain it and cite nothing. Do not use outside knowledge. \
Answer in the language of the question.";

/// A previous exchange of a session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    /// What the user asked.
    pub question: String,
    /// The standalone form retrieval used.
    pub standalone: String,
    /// What ragspin answered (markers removed).
    pub answer: String,
}

/// Limits of the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptLimits {
    /// Estimated tokens for the sources (bytes / 4).
    pub source_tokens: usize,
    /// Previous turns included.
    pub history_turns: usize,
    /// Cap of the answer.
    pub max_answer_tokens: u32,
}

impl Default for PromptLimits {
    fn default() -> Self {
        Self {
            source_tokens: 3000,
            history_turns: 3,
            max_answer_tokens: 800,
        }
    }
}

/// Keep the sources (already in rank order) that fit in `budget` tokens:
/// each source's text on one line; the first is shortened to fit, later
/// ones that do not fit are left out. Renumbers them 1, 2, ...
pub fn fit_sources(sources: Vec<Source>, budget: usize) -> Vec<Source> {
    let mut out = Vec::new();
    let mut used = 0;
    for mut source in sources {
        source.text = one_line(&source.text);
        let cost = estimate_tokens(&source.text) + 12;
        if used + cost > budget {
            if out.is_empty() {
                source.text = truncate(&source.text, budget.saturating_sub(12).max(16) * 4);
            } else {
                continue;
            }
        }
        used += estimate_tokens(&source.text) + 12;
        source.id = u32::try_from(out.len() + 1).unwrap_or(u32::MAX);
        out.push(source);
    }
    out
}

fn origin(source: &Source) -> String {
    let mut parts = vec![source.filename.clone()];
    if let Some(page) = source.page {
        parts.push(format!("page {page}"));
    }
    if !source.heading_path.is_empty() {
        parts.push(format!("section \"{}\"", source.heading_path.join(" > ")));
    }
    format!("(source {} from {})", source.id, parts.join(", "))
}

/// The chat request for `question` over `sources` after `history`.
pub fn build(
    question: &str,
    sources: &[Source],
    history: &[Turn],
    limits: &PromptLimits,
) -> ChatRequest {
    let mut system = String::from(INSTRUCTIONS);
    system.push_str("\n\nSources:\n");
    for source in sources {
        system.push_str(&format!(
            "[{}] {}\n{}\n",
            source.id,
            source.text,
            origin(source)
        ));
    }
    let mut messages = vec![ChatMessage::new(Role::System, system)];
    let skip = history.len().saturating_sub(limits.history_turns);
    for turn in &history[skip..] {
        messages.push(ChatMessage::new(Role::User, one_line(&turn.question)));
        messages.push(ChatMessage::new(Role::Assistant, one_line(&turn.answer)));
    }
    messages.push(ChatMessage::new(Role::User, one_line(question)));
    ChatRequest {
        messages,
        max_tokens: Some(limits.max_answer_tokens),
        temperature: Some(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceScores;

    fn source(id: u32, text: &str) -> Source {
        Source {
            id,
            chunk_id: 1,
            document_id: "d".into(),
            filename: "guide.md".into(),
            page: Some(2),
            heading_path: vec!["Intro".into(), "Hours".into()],
            text: text.into(),
            scores: SourceScores {
                bm25: None,
                vector: None,
                fused: 0.0,
            },
        }
    }

    #[test]
    fn numbers_sources_on_single_lines_with_their_origin() {
        let sources = fit_sources(vec![source(9, "Opens\nat 8.")], 1000);
        let request = build("When?", &sources, &[], &PromptLimits::default());
        let system = &request.messages[0].content;
        assert!(
            system.contains(
                "\n[1] Opens at 8.\n(source 1 from guide.md, page 2, section \"Intro > Hours\")\n"
            ),
            "{system}"
        );
        assert_eq!(request.messages.last().unwrap().content, "When?");
        assert_eq!(request.messages.last().unwrap().role, Role::User);
    }

    #[test]
    fn keeps_sources_within_the_token_budget_and_shortens_a_huge_first_one() {
        let long = "word ".repeat(2000);
        let kept = fit_sources(vec![source(1, &long), source(2, "small")], 100);
        assert_eq!(kept.len(), 1);
        assert!(kept[0].text.len() <= 100 * 4 + 4, "{}", kept[0].text.len());
        let kept = fit_sources(
            vec![source(1, "a b c"), source(2, &long), source(3, "d e f")],
            100,
        );
        assert_eq!(
            kept.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(),
            ["a b c", "d e f"]
        );
        assert_eq!(kept.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn includes_only_the_last_history_turns() {
        let turns: Vec<Turn> = (0..5)
            .map(|k| Turn {
                question: format!("q{k}"),
                standalone: format!("q{k}"),
                answer: format!("a{k}"),
            })
            .collect();
        let request = build("now?", &[], &turns, &PromptLimits::default());
        let texts: Vec<&str> = request.messages[1..]
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(texts, ["q2", "a2", "q3", "a3", "q4", "a4", "now?"]);
    }
}
