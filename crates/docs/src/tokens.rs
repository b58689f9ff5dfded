//! A tokenizer-free estimate of how many `cl100k_base` tokens a text has.

/// Estimates the number of `cl100k_base` (GPT-4 / `text-embedding-3-*`) tokens in `text`.
///
/// The estimate is deterministic, needs no vocabulary table, and slightly
/// over-estimates English rather than under-estimating it (chunks must stay
/// under the embedding model's limit). It mirrors how cl100k's pre-tokenizer
/// and merges behave on common text:
///
/// * a run of ASCII letters (a word) is 1 token up to 8 letters — cl100k has
///   whole-word tokens for almost every common word, leading space included —
///   and 1 more per further 4 letters (`internationalization`, 20 letters:
///   4; cl100k: 2). An apostrophe between letters (`don't`) is free, as cl100k
///   merges `'t`, `'s`, `'re` into one token;
/// * a run of digits is 1 token per 3 digits (cl100k splits numbers into
///   groups of at most three);
/// * every other letter (accented, Greek, Cyrillic, CJK) is 1 token;
/// * a run of ASCII punctuation is 1 token per 4 characters when it repeats
///   one character (`...`, `---`) and 1 per 2 otherwise (cl100k merges `()`,
///   `);`, `":`, `</`); other symbols are 1 token each, and characters outside
///   the Basic Multilingual Plane (emoji) 2;
/// * a single space is free (merged into the next word); a run of spaces or
///   tabs (indentation) is 1; a run of line breaks is 1.
///
/// Calibrated against the real `cl100k_base` (tiktoken): the estimate is
/// 0.95–1.11× the true count on the fixtures under `tests/fixtures/docs/`
/// (Markdown 1.05, prose 0.95, CSV 1.02, JSON 1.01, HTML source 1.11) and
/// 1.08× on the GPL-3 text; the test `estimate_tracks_cl100k_on_reference_samples`
/// pins those counts. It is not a tokenizer: a budget of `max_tokens` should
/// keep ~10 % headroom below a model's hard limit.
pub fn estimate_tokens(text: &str) -> usize {
    // ASCII text (most of it) skips UTF-8 decoding: its bytes are its chars.
    if text.is_ascii() {
        count_ascii(text.as_bytes())
    } else {
        count(text.chars().peekable())
    }
}

/// What [`count`] does with an ASCII character.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    Letter,
    Digit,
    LineBreak,
    Blank,
    /// Vertical tab, form feed: whitespace that counts nothing.
    Space,
    Punctuation,
    Other,
}

const fn class_of(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b'\n' | b'\r' => Class::LineBreak,
        b' ' | b'\t' => Class::Blank,
        0x0B | 0x0C => Class::Space,
        b'!'..=b'/' | b':'..=b'@' | b'['..=b'`' | b'{'..=b'~' => Class::Punctuation,
        _ => Class::Other,
    }
}

const CLASSES: [Class; 128] = {
    let mut table = [Class::Other; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = class_of(b as u8);
        b += 1;
    }
    table
};

/// [`count`] over ASCII bytes: the same rules, a table lookup per byte
/// instead of a peekable `char` iterator, and a tight loop for the runs of
/// letters and spaces most text is made of (the estimate was ≈ 10 % of a
/// Markdown ingest's component time).
fn count_ascii(bytes: &[u8]) -> usize {
    let letter = |b: u8| (b | 0x20).wrapping_sub(b'a') < 26;
    let mut tokens = 0;
    let mut prev_letter = false;
    let mut k = 0;
    while k < bytes.len() {
        let b = bytes[k];
        let start = k;
        k += 1;
        if letter(b) {
            while k < bytes.len() && letter(bytes[k]) {
                k += 1;
            }
            tokens += word_tokens(k - start);
            prev_letter = true;
            continue;
        }
        let c = CLASSES[usize::from(b & 0x7F)];
        let run_end = |mut k: usize| {
            while k < bytes.len() && CLASSES[usize::from(bytes[k] & 0x7F)] == c {
                k += 1;
            }
            k
        };
        match c {
            Class::Digit => {
                k = run_end(k);
                tokens += (k - start).div_ceil(3);
            }
            Class::LineBreak => {
                k = run_end(k);
                tokens += 1;
            }
            Class::Blank => {
                // One space (before most words) is free: no run to walk.
                if b == b' ' && bytes.get(k).is_none_or(|&n| n != b' ' && n != b'\t') {
                    prev_letter = false;
                    continue;
                }
                k = run_end(k);
                if k - start > 1 || b == b'\t' {
                    tokens += 1;
                }
            }
            // Letters were taken above; vertical tab and form feed count nothing.
            Class::Letter | Class::Space => {}
            Class::Punctuation => {
                if b == b'\'' && prev_letter && bytes.get(k).is_some_and(|&n| letter(n)) {
                    // A contraction: `'t`, `'s`, `'re` merge with the letters after.
                    continue;
                }
                let mut same = true;
                while k < bytes.len() && CLASSES[usize::from(bytes[k] & 0x7F)] == Class::Punctuation
                {
                    same &= bytes[k] == b;
                    k += 1;
                }
                tokens += if same {
                    (k - start).div_ceil(4)
                } else {
                    (k - start).div_ceil(2)
                };
            }
            Class::Other => tokens += 1,
        }
        prev_letter = false;
    }
    tokens
}

fn count(mut chars: std::iter::Peekable<impl Iterator<Item = char>>) -> usize {
    let mut tokens = 0;
    let mut prev_letter = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_alphabetic() {
            let mut letters = 1;
            while chars.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                chars.next();
                letters += 1;
            }
            tokens += word_tokens(letters);
            prev_letter = true;
            continue;
        }
        if c.is_ascii_digit() {
            let mut digits: usize = 1;
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
                digits += 1;
            }
            tokens += digits.div_ceil(3);
            prev_letter = false;
            continue;
        }
        if c == '\n' || c == '\r' {
            while chars.peek().is_some_and(|&c| c == '\n' || c == '\r') {
                chars.next();
            }
            tokens += 1;
            prev_letter = false;
            continue;
        }
        if c == ' ' || c == '\t' {
            let mut run = 1;
            while chars.peek().is_some_and(|&c| c == ' ' || c == '\t') {
                chars.next();
                run += 1;
            }
            if run > 1 || c == '\t' {
                tokens += 1;
            }
            prev_letter = false;
            continue;
        }
        if c.is_whitespace() {
            prev_letter = false;
            continue;
        }
        if (c == '\'' || c == '’') && prev_letter && chars.peek().is_some_and(|c| c.is_alphabetic())
        {
            // A contraction: `'t`, `'s`, `'re` merge with the letters after.
            continue;
        }
        if c.is_alphanumeric() {
            tokens += 1;
            prev_letter = true;
            continue;
        }
        if (c as u32) > 0xFFFF {
            tokens += 2;
            prev_letter = false;
            continue;
        }
        if c.is_ascii_punctuation() {
            // cl100k merges common punctuation pairs (`()`, `);`, `":`, `</`)
            // and runs of one character (`...`, `---`).
            let mut run: usize = 1;
            let mut same = true;
            while let Some(&next) = chars.peek() {
                if !next.is_ascii_punctuation() {
                    break;
                }
                same &= next == c;
                chars.next();
                run += 1;
            }
            tokens += if same {
                run.div_ceil(4)
            } else {
                run.div_ceil(2)
            };
            prev_letter = false;
            continue;
        }
        tokens += 1;
        prev_letter = false;
    }
    tokens
}

fn word_tokens(letters: usize) -> usize {
    if letters <= 8 {
        1
    } else {
        1 + (letters - 8).div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nothing_in_empty_or_blank_text() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens(" "), 0);
    }

    #[test]
    fn counts_common_words_and_punctuation_like_cl100k() {
        // cl100k: "Hello", ",", " world", "!" = 4
        assert_eq!(estimate_tokens("Hello, world!"), 4);
        // cl100k: "I", " don", "'t", " know", "." = 5
        assert_eq!(estimate_tokens("I don't know."), 5);
        // cl100k splits digits in threes: "123", "456", "7"
        assert_eq!(estimate_tokens("1234567"), 3);
    }

    #[test]
    fn splits_long_words() {
        assert_eq!(estimate_tokens("internationalization"), 4);
        assert!(estimate_tokens(&"a".repeat(400)) >= 80);
    }

    #[test]
    fn the_ascii_path_counts_as_the_char_path_does() {
        // Every ASCII class, runs of each, contractions and mixed punctuation.
        let pieces = [
            "a",
            "Zq",
            "internationalization",
            "7",
            "1234567",
            "\n",
            "\r\n\n",
            " ",
            "  ",
            "\t",
            " \t",
            "\u{0B}",
            "\u{0C}",
            "'",
            "don't",
            "x'",
            "'s",
            "...",
            "();",
            "--",
            "\"",
            "\0",
            "\u{1}",
            "\u{7F}",
            "\u{1F}",
            "~",
            "@#",
            "A1b2",
        ];
        let mut texts = ragspin_testkit::PieceTexts::new(&pieces, 12, 0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let text = texts.next_text();
            assert!(text.is_ascii());
            assert_eq!(
                count_ascii(text.as_bytes()),
                count(text.chars().peekable()),
                "{text:?}"
            );
        }
        for b in 0..128u8 {
            let text = format!("a{}b{}{}", char::from(b), char::from(b), char::from(b));
            assert_eq!(
                count_ascii(text.as_bytes()),
                count(text.chars().peekable()),
                "{b}"
            );
        }
    }

    #[test]
    fn is_deterministic_and_additive_over_spaces() {
        let a = "The battery lasts two days.";
        let b = "Charging takes an hour.";
        assert_eq!(estimate_tokens(a), estimate_tokens(a));
        assert_eq!(
            estimate_tokens(&format!("{a} {b}")),
            estimate_tokens(a) + estimate_tokens(b)
        );
    }
}
