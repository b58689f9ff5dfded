//! The extractive answer: what ragspin says when no chat model can be used
//! (offline mode, or the model failed): the sentences of the sources that
//! share the most content words with the question, each cited.

use crate::model::Source;
use crate::text::{content_words, overlap, sentences};

/// Sentences in an extractive answer, at most.
pub const MAX_SENTENCES: usize = 3;

/// Put ` [n]` before a sentence's final punctuation: `"Opens at 8 [1]."`.
pub fn cite(sentence: &str, n: u32) -> String {
    match sentence.char_indices().last() {
        Some((i, c)) if matches!(c, '.' | '!' | '?') => {
            format!("{} [{n}]{c}", sentence[..i].trim_end())
        }
        _ => format!("{sentence} [{n}]"),
    }
}

/// The best (at most [`MAX_SENTENCES`]) sentences for `question`, best
/// first (ties: lower source number, then earlier sentence), each cited.
/// With no sentence sharing a word, the first sentence of the first source.
/// `None` only when there are no sources.
pub fn answer(question: &str, sources: &[Source]) -> Option<String> {
    let q = content_words(question);
    let mut scored: Vec<(usize, u32, usize, String)> = Vec::new();
    for source in sources {
        for (position, sentence) in sentences(&source.text).into_iter().enumerate() {
            let shared = overlap(&q, &content_words(&sentence));
            if shared > 0 {
                scored.push((shared, source.id, position, sentence));
            }
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut picked: Vec<String> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (_, n, _, sentence) in &scored {
        if picked.len() == MAX_SENTENCES {
            break;
        }
        if seen.contains(&sentence.as_str()) {
            continue;
        }
        seen.push(sentence);
        picked.push(cite(sentence, *n));
    }
    if picked.is_empty() {
        let first = sources.first()?;
        let sentence = sentences(&first.text).into_iter().next()?;
        picked.push(cite(&sentence, first.id));
    }
    Some(picked.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceScores;

    fn source(id: u32, text: &str) -> Source {
        Source {
            id,
            chunk_id: i64::from(id),
            document_id: "d".into(),
            filename: "f.md".into(),
            page: None,
            heading_path: vec![],
            text: text.into(),
            scores: SourceScores {
                bm25: None,
                vector: None,
                fused: 0.0,
            },
        }
    }

    #[test]
    fn picks_the_sentences_sharing_most_words_with_the_question_and_cites_them() {
        let sources = [
            source(1, "The café opens at 8. It closes at noon."),
            source(2, "Parking is free. The café serves tea."),
        ];
        assert_eq!(
            answer("When does the café open?", &sources).unwrap(),
            "The café opens at 8 [1]. The café serves tea [2]."
        );
    }

    #[test]
    fn falls_back_to_the_first_sentence_of_the_best_source() {
        let sources = [source(3, "Unrelated words here. More.")];
        assert_eq!(
            answer("zebra?", &sources).unwrap(),
            "Unrelated words here [3]."
        );
        assert_eq!(answer("zebra?", &[]), None);
    }
}
