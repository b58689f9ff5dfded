//! Small text utilities shared by retrieval relevance, extractive answers,
//! citation checks and the cache key: content words, sentences, question
//! normalisation and a token estimate.

/// Words that carry no topic (questions are full of them).
const STOPWORDS: &[&str] = &[
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but",
    "by", "can", "could", "did", "do", "doe", "does", "for", "from", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "me", "more", "most", "my",
    "no", "not", "of", "on", "one", "or", "our", "she", "should", "so", "some", "than", "that",
    "the", "their", "them", "then", "there", "these", "they", "thi", "this", "those", "to", "too",
    "u", "up", "wa", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "why",
    "will", "with", "would", "you", "your", "tell", "explain", "please", "give", "list",
];

/// Lowercase alphanumeric words, in order.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// A word reduced to a crude stem: a plural `s` dropped.
pub fn stem(word: &str) -> String {
    if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

/// Content words: lowercase, stemmed, stopwords out, sorted, unique.
pub fn content_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = words(text)
        .map(|w| stem(&w))
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The words of `text` worth a full-text match: lowercase, stopwords out,
/// unstemmed (the index tokenises without stemming), in order, unique.
/// Stopwords would match nearly every chunk, costing time and adding noise.
pub fn keywords(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in words(text) {
        if !STOPWORDS.contains(&word.as_str())
            && !STOPWORDS.contains(&stem(&word).as_str())
            && !out.contains(&word)
        {
            out.push(word);
        }
    }
    out
}

/// How many of `words` (sorted, unique) occur in `other` (sorted, unique).
pub fn overlap(words: &[String], other: &[String]) -> usize {
    words
        .iter()
        .filter(|w| other.binary_search(w).is_ok())
        .count()
}

/// Split a text into sentences after `.`, `!` or `?` followed by
/// whitespace (or the end), and at line breaks.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            current.push(c);
            if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()) {
                push_trimmed(&mut out, &current);
                current.clear();
            }
        }
        push_trimmed(&mut out, &current);
    }
    out
}

fn push_trimmed(out: &mut Vec<String>, s: &str) {
    let s = s.trim();
    if !s.is_empty() {
        out.push(s.to_owned());
    }
}

/// One line: every run of whitespace (newlines included) becomes a space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The cache's view of a question: lowercase, whitespace collapsed,
/// trailing `?`, `!`, `.` and spaces dropped.
pub fn normalise_question(question: &str) -> String {
    one_line(&question.to_lowercase())
        .trim_end_matches(['?', '!', '.', ' '])
        .to_owned()
}

/// Tokens of a text, estimated like the Azure client does (bytes / 4).
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(4).max(1)
}

/// At most `max_bytes` of `text`, cut at a char boundary, with `…` when cut.
pub fn truncate(text: &str, max_bytes: usize) -> String {
    if text.len() <= max_bytes {
        return text.to_owned();
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_words_drop_stopwords_and_plural_s() {
        assert_eq!(
            content_words("What is the battery life of phones?"),
            ["battery", "life", "phone"]
        );
        assert_eq!(content_words("Is it the class?"), ["class"]);
    }

    #[test]
    fn keywords_keep_topic_words_unstemmed_in_order() {
        assert_eq!(
            keywords("How long does the battery of phones last? The battery!"),
            ["long", "battery", "phones", "last"]
        );
        assert!(keywords("what is it?").is_empty());
    }

    #[test]
    fn sentences_split_at_final_punctuation_and_lines() {
        assert_eq!(
            sentences("Opens at 8. Closes at 5.5 pm!\nNo dogs"),
            ["Opens at 8.", "Closes at 5.5 pm!", "No dogs"]
        );
    }

    #[test]
    fn questions_normalise_case_space_and_final_punctuation() {
        assert_eq!(
            normalise_question("  What   is\tRAG ?? "),
            normalise_question("what is rag")
        );
        assert_ne!(
            normalise_question("what is rag"),
            normalise_question("what is rug")
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo wörld", 2), "h…");
        assert_eq!(truncate("short", 10), "short");
    }
}
