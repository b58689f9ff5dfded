//! The fake's "models": pure, deterministic functions.
//!
//! * [`embed`]: feature hashing of lowercase word unigrams (weight 1) and
//!   their character trigrams (weight 0.5, with `^`/`$` word boundaries)
//!   into `dimensions` signed buckets, L2-normalised. Texts sharing words
//!   (or word pieces: "embedding" / "embeddings") have a clearly positive
//!   cosine similarity; unrelated texts are near 0.
//! * [`answer`]: an extractive stand-in for a chat model; see the crate
//!   documentation for the prompt format it expects.
//! * [`estimate_tokens`]: bytes / 4, rounded up, at least 1 — the same
//!   estimate `ragspin-azure` batches with.

/// Tokens of a text, estimated as the client does.
pub fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.len().div_ceil(4).max(1)).unwrap_or(u32::MAX)
}

/// The fake embedding of `text`: `dimensions` floats, unit length.
///
/// Each feature is hashed as the bytes of `w:{word}` or `t:{trigram}`
/// (FNV-1a, then [`mix`]), fed piece by piece: no string is built per
/// feature (the fake answers a 10 MB ingest's 7,000 texts in a fraction of
/// the time that formatting every feature took).
pub fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let dimensions = dimensions.max(1);
    let mut v = vec![0f32; dimensions];
    let mut add = |hash: u64, weight: f32| {
        let h = mix(hash);
        // The modulo keeps the bucket below `dimensions`, a usize.
        #[allow(clippy::cast_possible_truncation)]
        let bucket = (h % dimensions as u64) as usize;
        v[bucket] += if h >> 63 == 0 { weight } else { -weight };
    };
    let mut any = false;
    // `^{word}$` and the byte offset of each of its chars, reused.
    let mut padded = String::new();
    let mut starts: Vec<usize> = Vec::new();
    let (word_seed, trigram_seed) = (fnv1a(b"w:"), fnv1a(b"t:"));
    for word in word_pieces(text) {
        any = true;
        padded.clear();
        padded.push('^');
        if word.is_ascii() {
            padded.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
        } else {
            padded.push_str(&word.to_lowercase());
        }
        padded.push('$');
        let lower = &padded[1..padded.len() - 1];
        add(fnv1a_from(word_seed, lower.as_bytes()), 1.0);
        starts.clear();
        starts.extend(padded.char_indices().map(|(i, _)| i));
        starts.push(padded.len());
        for w in starts.windows(4) {
            add(
                fnv1a_from(trigram_seed, &padded.as_bytes()[w[0]..w[3]]),
                0.5,
            );
        }
    }
    if !any {
        add(fnv1a_from(fnv1a(b"raw:"), text.as_bytes()), 1.0);
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two vectors of equal length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Lowercase alphanumeric words.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    word_pieces(text).map(str::to_lowercase)
}

/// The runs of alphanumeric chars of `text`, as written.
fn word_pieces(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// The answer text when no source shares a word with the question.
pub const I_DONT_KNOW: &str = "I don't know.";

/// Sentences cited at most in one answer.
pub const MAX_ANSWER_SENTENCES: usize = 2;

/// One message as the fake sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool` or `developer`.
    pub role: String,
    /// Text content.
    pub content: String,
}

/// A numbered source found in the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The number in `[n]`.
    pub number: u32,
    /// The text after it.
    pub text: String,
}

/// The numbered sources: every line `[n] text` of the system, developer and
/// user messages, in order.
pub fn sources(messages: &[Message]) -> Vec<Source> {
    messages
        .iter()
        .filter(|m| matches!(m.role.as_str(), "system" | "developer" | "user"))
        .flat_map(|m| m.content.lines())
        .filter_map(source_line)
        .collect()
}

fn source_line(line: &str) -> Option<Source> {
    let rest = line.trim().strip_prefix('[')?;
    let (number, text) = rest.split_once(']')?;
    let number = number.trim().parse().ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| Source {
        number,
        text: text.to_owned(),
    })
}

/// The question: the last user message without its source lines.
pub fn question(messages: &[Message]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| {
            m.content
                .lines()
                .filter(|l| source_line(l).is_none())
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

const STOPWORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "doe", "does",
    "for", "from", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "that",
    "the", "thi", "this", "to", "wa", "was", "were", "what", "when", "where", "which", "who",
    "why", "with", "you", "your",
];

/// Content words: lowercase, a trailing plural `s` dropped, stopwords out.
fn content_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = words(text)
        .map(|w| {
            if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w[..w.len() - 1].to_owned()
            } else {
                w
            }
        })
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Split a text after `.`, `!` or `?` followed by whitespace.
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()) {
            let s = current.trim();
            if !s.is_empty() {
                out.push(s.to_owned());
            }
            current.clear();
        }
    }
    let s = current.trim();
    if !s.is_empty() {
        out.push(s.to_owned());
    }
    out
}

/// Put ` [n]` before a sentence's final punctuation: `"Opens at 8 [1]."`.
fn cite(sentence: &str, number: u32) -> String {
    match sentence.char_indices().last() {
        Some((i, c)) if matches!(c, '.' | '!' | '?') => {
            format!("{} [{number}]{c}", sentence[..i].trim_end())
        }
        _ => format!("{sentence} [{number}]"),
    }
}

/// The extractive answer: the (at most [`MAX_ANSWER_SENTENCES`]) source
/// sentences sharing the most content words with the question, best first
/// (ties: lower source number, then earlier sentence), each cited `[n]`;
/// [`I_DONT_KNOW`] when none shares a word.
pub fn answer(messages: &[Message]) -> String {
    let question = content_words(&question(messages));
    let mut scored: Vec<(usize, u32, usize, String)> = Vec::new();
    for source in sources(messages) {
        for (position, sentence) in sentences(&source.text).into_iter().enumerate() {
            let shared = content_words(&sentence)
                .iter()
                .filter(|w| question.binary_search(w).is_ok())
                .count();
            if shared > 0 {
                scored.push((shared, source.number, position, sentence));
            }
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut picked: Vec<String> = Vec::new();
    let mut texts: Vec<&str> = Vec::new();
    for (_, number, _, sentence) in &scored {
        if picked.len() == MAX_ANSWER_SENTENCES {
            break;
        }
        if texts.contains(&sentence.as_str()) {
            continue;
        }
        texts.push(sentence);
        picked.push(cite(sentence, *number));
    }
    if picked.is_empty() {
        I_DONT_KNOW.to_owned()
    } else {
        picked.join(" ")
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(0xcbf2_9ce4_8422_2325, bytes)
}

/// FNV-1a continued over `bytes` from the hash of what came before them.
fn fnv1a_from(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// splitmix64's finaliser: spreads FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    /// The embedding as first written: a string per feature.
    fn embed_by_strings(text: &str, dimensions: usize) -> Vec<f32> {
        let mut v = vec![0f32; dimensions];
        let mut add = |feature: &str, weight: f32| {
            let h = mix(fnv1a(feature.as_bytes()));
            #[allow(clippy::cast_possible_truncation)]
            let bucket = (h % dimensions as u64) as usize;
            v[bucket] += if h >> 63 == 0 { weight } else { -weight };
        };
        let mut any = false;
        for word in words(text) {
            any = true;
            add(&format!("w:{word}"), 1.0);
            let padded: Vec<char> = format!("^{word}$").chars().collect();
            for tri in padded.windows(3) {
                add(&format!("t:{}", tri.iter().collect::<String>()), 0.5);
            }
        }
        if !any {
            add(&format!("raw:{text}"), 1.0);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }

    #[test]
    fn embeddings_are_the_same_as_with_a_string_per_feature() {
        // Recorded fixtures and golden numbers depend on the exact vectors:
        // ASCII, mixed case, one-letter words, accents, a final sigma
        // (lowercased by the whole word), Turkish dotted I (two chars
        // lowercase), CJK, emoji, digits, punctuation only, empty.
        let texts = [
            "Battery life: 12 hours; the BEST budget phone!",
            "a I x 9",
            "Crème brûlée à la carte, naïve façade",
            "ΟΔΟΣ Σίσυφος ΣΑΣ",
            "İstanbul DİYARBAKIR",
            "日本語のテキスト 和 中文",
            "emoji 🚀 rockets🚀go",
            "--- ... !!!",
            "",
        ];
        for text in texts {
            for dimensions in [1, 7, 256, 1536] {
                assert_eq!(
                    embed(text, dimensions),
                    embed_by_strings(text, dimensions),
                    "{text:?} at {dimensions}"
                );
            }
        }
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors_of_the_asked_length() {
        let a = embed("Hello world", 64);
        assert_eq!(a, embed("Hello world", 64));
        assert_eq!(a.len(), 64);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(embed("!!!", 8).len(), 8);
        assert!(embed("!!!", 8).iter().any(|x| *x != 0.0));
    }

    #[test]
    fn texts_sharing_words_are_closer_than_unrelated_ones() {
        let q = embed("How do I rotate the API key?", 1536);
        let near = embed("Rotate the API key every 90 days from the portal.", 1536);
        let far = embed("The cafeteria serves soup on Fridays.", 1536);
        assert!(cosine(&q, &near) > 0.3, "{}", cosine(&q, &near));
        assert!(cosine(&q, &far) < 0.15, "{}", cosine(&q, &far));
        let plural = cosine(&embed("embedding", 1536), &embed("embeddings", 1536));
        assert!(plural > 0.5, "{plural}");
    }

    #[test]
    fn finds_numbered_sources_in_system_and_user_messages() {
        let messages = [
            msg(
                "system",
                "Use the sources.\n[1] First fact.\n  [2]  Second fact.  \n[x] not a source",
            ),
            msg("assistant", "[3] assistants do not provide sources"),
            msg("user", "[4] Fourth fact.\nWhat is the fact?"),
        ];
        let numbers: Vec<u32> = sources(&messages).iter().map(|s| s.number).collect();
        assert_eq!(numbers, [1, 2, 4]);
        assert_eq!(question(&messages), "What is the fact?");
    }

    #[test]
    fn answers_with_the_best_matching_sentences_cited() {
        let messages = [
            msg(
                "system",
                "Answer from the sources.\n[1] The café opens at 8. It closes at noon.\n[2] Parking is free. The café serves tea.",
            ),
            msg("user", "When does the café open?"),
        ];
        assert_eq!(
            answer(&messages),
            "The café opens at 8 [1]. The café serves tea [2]."
        );
    }

    #[test]
    fn says_i_dont_know_when_no_source_shares_a_word() {
        let messages = [
            msg("system", "[1] The café opens at 8."),
            msg("user", "Who won the 1998 world cup?"),
        ];
        assert_eq!(answer(&messages), I_DONT_KNOW);
        assert_eq!(answer(&[msg("user", "Anything?")]), I_DONT_KNOW);
    }
}
