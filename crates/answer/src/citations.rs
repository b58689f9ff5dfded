//! Citation verification: every `[n]` the model wrote is checked against
//! the numbered sources it was given.
//!
//! * `n` must name a source (else `unknown_source`);
//! * the sentence citing it must share at least one content word with that
//!   source (else `unsupported` — a citation pointing at an unrelated
//!   chunk is worse than none).
//!
//! Failing markers are removed from the answer text and reported; each kept
//! source becomes one [`Citation`] carrying the source sentence that best
//! supports the citing sentence (the snippet). Markers may be `[1]`,
//! `[1][2]`, `[1, 2]` or `[1,2]`; anything else in brackets is text.

use crate::model::{Citation, DroppedCitation, Source};
use crate::text::{content_words, overlap, sentences, truncate};

/// Longest snippet, in bytes.
pub const MAX_SNIPPET_BYTES: usize = 400;

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Marker(Vec<u32>),
}

/// Split `text` into plain text and citation markers.
fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let numbers = after.find(']').and_then(|close| {
            let inside = &after[..close];
            let numbers: Option<Vec<u32>> = inside
                .split(',')
                .map(|n| {
                    let n = n.trim();
                    if n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
                        None
                    } else {
                        n.parse().ok()
                    }
                })
                .collect();
            numbers.map(|n| (n, close))
        });
        match numbers {
            Some((numbers, close)) => {
                plain.push_str(&rest[..open]);
                if !plain.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut plain)));
                }
                out.push(Piece::Marker(numbers));
                rest = &after[close + 1..];
            }
            None => {
                plain.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    plain.push_str(rest);
    if !plain.is_empty() {
        out.push(Piece::Text(plain));
    }
    out
}

/// The source numbers cited in `text`, in order, with repeats.
pub fn markers(text: &str) -> Vec<u32> {
    pieces(text)
        .into_iter()
        .flat_map(|p| match p {
            Piece::Marker(n) => n,
            Piece::Text(_) => Vec::new(),
        })
        .collect()
}

/// `text` without any citation marker (for session history).
pub fn strip_markers(text: &str) -> String {
    let mut out = String::new();
    for piece in pieces(text) {
        if let Piece::Text(t) = piece {
            push_text(&mut out, &t);
        }
    }
    out.trim().to_owned()
}

/// Append `t`, avoiding a space before punctuation left by a removed marker.
fn push_text(out: &mut String, t: &str) {
    if t.starts_with(['.', ',', ';', ':', '!', '?', ' ', '\n']) {
        while out.ends_with(' ') {
            out.pop();
        }
    }
    out.push_str(t);
}

/// The content words of the sentence each marker belongs to.
///
/// A sentence ends at `.`, `!` or `?` followed by whitespace, or at a line
/// break; a marker placed right after the final punctuation (`... at 8. [1]`)
/// belongs to the sentence before it.
fn marker_contexts(pieces: &[Piece]) -> Vec<Vec<String>> {
    let mut contexts = Vec::new();
    let mut current = String::new();
    let mut previous = String::new();
    let mut pending_end = false;
    for piece in pieces {
        match piece {
            Piece::Text(t) => {
                for c in t.chars() {
                    if pending_end && c.is_whitespace() && !current.trim().is_empty() {
                        previous = std::mem::take(&mut current);
                    }
                    pending_end = false;
                    current.push(c);
                    if matches!(c, '.' | '!' | '?') {
                        pending_end = true;
                    } else if c == '\n' && !current.trim().is_empty() {
                        previous = std::mem::take(&mut current);
                    }
                }
            }
            Piece::Marker(_) => {
                let mut words = content_words(&current);
                if words.is_empty() {
                    words = content_words(&previous);
                }
                contexts.push(words);
            }
        }
    }
    contexts
}

/// The sentence of `source` sharing most words with `context` (the first
/// sentence on a tie or when none shares any).
fn snippet(source: &Source, context: &[String]) -> String {
    let mut best: Option<(usize, String)> = None;
    for sentence in sentences(&source.text) {
        let score = overlap(context, &content_words(&sentence));
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, sentence));
        }
    }
    truncate(
        &best.map(|(_, s)| s).unwrap_or_else(|| source.text.clone()),
        MAX_SNIPPET_BYTES,
    )
}

/// The verified answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The answer without the dropped markers.
    pub text: String,
    pub citations: Vec<Citation>,
    pub dropped: Vec<DroppedCitation>,
}

/// Check every marker of `answer` against `sources`.
pub fn verify(answer: &str, sources: &[Source]) -> Verified {
    let pieces = pieces(answer);
    let contexts = marker_contexts(&pieces);
    let mut text = String::new();
    let mut citations: Vec<Citation> = Vec::new();
    let mut dropped: Vec<DroppedCitation> = Vec::new();
    let mut marker_index = 0;
    for piece in &pieces {
        match piece {
            Piece::Text(t) => push_text(&mut text, t),
            Piece::Marker(numbers) => {
                let context = &contexts[marker_index];
                marker_index += 1;
                let mut kept = Vec::new();
                for &n in numbers {
                    let Some(source) = sources.iter().find(|s| s.id == n) else {
                        dropped.push(DroppedCitation {
                            source: n,
                            reason: "unknown_source".into(),
                        });
                        continue;
                    };
                    let supported =
                        context.is_empty() || overlap(context, &content_words(&source.text)) > 0;
                    if !supported {
                        dropped.push(DroppedCitation {
                            source: n,
                            reason: "unsupported".into(),
                        });
                        continue;
                    }
                    if !kept.contains(&n) {
                        kept.push(n);
                    }
                    if !citations.iter().any(|c| c.source == n) {
                        citations.push(Citation {
                            source: n,
                            chunk_id: source.chunk_id,
                            document_id: source.document_id.clone(),
                            filename: source.filename.clone(),
                            page: source.page,
                            heading_path: source.heading_path.clone(),
                            snippet: snippet(source, context),
                        });
                    }
                }
                if !kept.is_empty() {
                    if !text.is_empty() && !text.ends_with([' ', '\n']) {
                        text.push(' ');
                    }
                    for n in kept {
                        text.push_str(&format!("[{n}]"));
                    }
                }
            }
        }
    }
    Verified {
        text: text.trim().to_owned(),
        citations,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceScores;

    fn source(id: u32, text: &str) -> Source {
        Source {
            id,
            chunk_id: i64::from(id) * 10,
            document_id: format!("doc{id}"),
            filename: format!("file{id}.md"),
            page: Some(i64::from(id)),
            heading_path: vec![],
            text: text.into(),
            scores: SourceScores {
                bm25: None,
                vector: None,
                fused: 0.0,
            },
        }
    }

    fn sources() -> Vec<Source> {
        vec![
            source(1, "The café opens at 8. It closes at noon."),
            source(2, "Parking is free for visitors."),
        ]
    }

    #[test]
    fn keeps_supported_citations_with_the_best_supporting_sentence() {
        let v = verify(
            "The café closes at noon [1]. Parking is free [2].",
            &sources(),
        );
        assert_eq!(v.text, "The café closes at noon [1]. Parking is free [2].");
        assert_eq!(v.dropped, []);
        assert_eq!(v.citations.len(), 2);
        assert_eq!(v.citations[0].snippet, "It closes at noon.");
        assert_eq!(v.citations[0].filename, "file1.md");
        assert_eq!(v.citations[0].page, Some(1));
        assert_eq!(v.citations[1].snippet, "Parking is free for visitors.");
    }

    #[test]
    fn drops_and_reports_unknown_source_numbers() {
        let v = verify(
            "The café opens at 8 [1][7]. Parking is free [9].",
            &sources(),
        );
        assert_eq!(v.text, "The café opens at 8 [1]. Parking is free.");
        assert_eq!(
            v.dropped,
            [
                DroppedCitation {
                    source: 7,
                    reason: "unknown_source".into()
                },
                DroppedCitation {
                    source: 9,
                    reason: "unknown_source".into()
                }
            ]
        );
        assert_eq!(
            v.citations.iter().map(|c| c.source).collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn drops_citations_of_sources_sharing_no_word_with_the_sentence() {
        let v = verify("Parking is free [1].", &sources());
        assert_eq!(v.text, "Parking is free.");
        assert_eq!(v.dropped[0].reason, "unsupported");
        assert!(v.citations.is_empty());
    }

    #[test]
    fn understands_grouped_markers_and_markers_after_the_full_stop() {
        let v = verify(
            "The café opens at 8 and parking is free. [1, 2]",
            &sources(),
        );
        assert_eq!(v.citations.len(), 2, "{v:?}");
        assert_eq!(v.text, "The café opens at 8 and parking is free. [1][2]");
        assert_eq!(markers("a [1,2] b [3] [x] [ ] [12345678]"), [1, 2, 3]);
    }

    #[test]
    fn decimal_points_do_not_end_the_citing_sentence() {
        let sources = [source(1, "The tariff is 5.5 euros per hour.")];
        let v = verify("Parking costs 5.5 euros per hour [1].", &sources);
        assert_eq!(v.citations.len(), 1, "{v:?}");
    }

    #[test]
    fn leaves_bracketed_text_that_is_not_a_marker_alone() {
        let v = verify("See the [appendix] and [a, 1].", &sources());
        assert_eq!(v.text, "See the [appendix] and [a, 1].");
        assert!(v.citations.is_empty() && v.dropped.is_empty());
    }

    #[test]
    fn strips_markers_for_history() {
        assert_eq!(
            strip_markers("Opens at 8 [1]. Free [2][3]."),
            "Opens at 8. Free."
        );
    }
}
