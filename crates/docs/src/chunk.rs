//! The structure-aware chunker: sections in, citation-ready chunks out.

use crate::tokens::estimate_tokens;
use crate::{Metadata, ParsedDocument, Section};
use ragspin_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2_simd::{Digest, Sha256};
use std::ops::Range;

/// How big chunks are.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChunkSettings {
    /// Upper bound of a chunk's [`estimate_tokens`], overlap included.
    pub max_tokens: usize,
    /// Tokens repeated from the end of the previous chunk when a section is
    /// split (≈ 15 % of `max_tokens` by default).
    pub overlap_tokens: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        Self {
            max_tokens: 512,
            overlap_tokens: 77,
        }
    }
}

impl ChunkSettings {
    /// Smallest accepted `max_tokens`.
    pub const MIN_TOKENS: usize = 32;
    /// Largest accepted `max_tokens` (under the 8191-token input limit of
    /// Azure OpenAI's embedding models, with room for the estimate's error).
    pub const MAX_TOKENS: usize = 8000;

    /// Checks the bounds: `32 ≤ max_tokens ≤ 8000` and `overlap_tokens < max_tokens / 2`.
    ///
    /// # Errors
    ///
    /// `Validation` naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if !(Self::MIN_TOKENS..=Self::MAX_TOKENS).contains(&self.max_tokens) {
            return Err(Error::validation(
                "max_tokens",
                format!(
                    "must be between {} and {}, got {}",
                    Self::MIN_TOKENS,
                    Self::MAX_TOKENS,
                    self.max_tokens
                ),
            ));
        }
        if self.overlap_tokens >= self.max_tokens / 2 {
            return Err(Error::validation(
                "overlap_tokens",
                format!(
                    "must be less than half of max_tokens ({}), got {}",
                    self.max_tokens / 2,
                    self.overlap_tokens
                ),
            ));
        }
        Ok(())
    }

    /// The settings moved into the valid range (what [`chunk`] uses).
    pub fn clamped(&self) -> ChunkSettings {
        let max_tokens = self.max_tokens.clamp(Self::MIN_TOKENS, Self::MAX_TOKENS);
        ChunkSettings {
            max_tokens,
            overlap_tokens: self.overlap_tokens.min(max_tokens / 2 - 1),
        }
    }
}

/// A chunk before it has an id and an embedding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkDraft {
    /// Position in the document, `0..n`.
    pub ordinal: u32,
    /// The chunk's text: exactly `ParsedDocument::text` between `start` and `end` (chars).
    pub text: String,
    /// The headings the text is under (all of it), outermost first.
    pub heading_path: Vec<String>,
    /// The PDF page the text is on (all of it), 1-based.
    pub page: Option<u32>,
    /// Char offset of the first char in `ParsedDocument::text` (overlap included).
    pub start: usize,
    /// Char offset one past the last char in `ParsedDocument::text`.
    pub end: usize,
    /// [`estimate_tokens`] of `text`; at most `max_tokens`.
    pub token_count: usize,
    /// Lowercase hex SHA-256 of `text`: the embedding cache key.
    pub content_hash: String,
    /// The section's metadata (for records: typed fields, `record_id`, `row`).
    pub metadata: Metadata,
}

/// Cuts a parsed document into chunks of at most `settings.max_tokens`
/// estimated tokens (settings outside the valid range are
/// [clamped](ChunkSettings::clamped); validate them first to report errors).
///
/// * A chunk never spans two heading paths, two PDF pages, or an atomic
///   section (CSV row, JSON record) and anything else, so its `heading_path`,
///   `page` and `metadata` are true for all of its text.
/// * Consecutive small sections under the same heading path are packed into
///   one chunk while they fit.
/// * A section larger than `max_tokens` (atomic ones included) is split at the
///   most natural boundary that fits: blank line, line break, end of sentence,
///   space, and as a last resort inside a word. Every piece after the first
///   repeats ≈ `overlap_tokens` from the end of the previous one, starting at a
///   sentence when that gives at least half the overlap, else at a word.
/// * Each chunk is one span of `doc.text` (`start..end` in chars), overlap
///   and the blank lines between packed sections included.
///
/// **Stable under edits.** The output depends only on the document, so the
/// same input gives the same chunks and hashes, and a chunk's hash changes only
/// when its text does. Greedy packing alone is not local: growing one paragraph
/// can push every later boundary under the same heading. So a packed chunk
/// also ends before an *anchor* section — one whose own SHA-256 starts with
/// two zero bits (one section in four) — once it holds a quarter of
/// `max_tokens`. Anchors depend on content only, so after an edit the old and
/// new packings meet again at the next anchor and later chunks keep their
/// hashes (the embedding cache hits). On the fixture `notes.txt` (30
/// paragraphs, each edited twice) at most two chunks besides those containing
/// the edited paragraph change, 0.2 on average, where plain greedy packing
/// changed up to eight. Headings, pages and records
/// are hard boundaries, so an edit never reaches past them, and overlap never
/// crosses sections, so it never carries an edit over. Packing fills chunks to
/// about 60–70 % of `max_tokens` on prose.
pub fn chunk(doc: &ParsedDocument, settings: &ChunkSettings) -> Vec<ChunkDraft> {
    let settings = settings.clamped();
    let text = doc.text.as_str();
    let mut offsets = Offsets::new(text);
    let mut out = Chunks {
        text,
        drafts: Vec::new(),
    };
    let mut pack: Option<Pack> = None;
    for section in &doc.sections {
        let Some(span) = offsets.byte_range(section.start, section.end) else {
            continue;
        };
        let trimmed = trim(text, span);
        if trimmed.is_empty() {
            continue;
        }
        let tokens = estimate_tokens(&text[trimmed.clone()]);
        if section.atomic || tokens > settings.max_tokens {
            if let Some(done) = pack.take() {
                out.push(done.span, done.section, Some(done.tokens), &mut offsets);
            }
            if tokens > settings.max_tokens {
                for piece in split_with_overlap(text, trimmed, &settings) {
                    out.push(piece, section, None, &mut offsets);
                }
            } else {
                out.push(trimmed, section, Some(tokens), &mut offsets);
            }
            continue;
        }
        if let Some(current) = &mut pack {
            let gap = &text[current.span.end..trimmed.start];
            // The estimate is additive across whitespace, so sums are exact.
            let joined = current.tokens + estimate_tokens(gap) + tokens;
            let fits = current.section.heading_path == section.heading_path
                && current.section.page == section.page
                && gap.trim().is_empty()
                && joined <= settings.max_tokens
                && !(current.tokens >= settings.max_tokens / 4
                    && is_anchor(&text[trimmed.clone()]));
            if fits {
                current.tokens = joined;
                current.span.end = trimmed.end;
                continue;
            }
        }
        if let Some(done) = pack.take() {
            out.push(done.span, done.section, Some(done.tokens), &mut offsets);
        }
        pack = Some(Pack {
            span: trimmed,
            section,
            tokens,
        });
    }
    if let Some(done) = pack.take() {
        out.push(done.span, done.section, Some(done.tokens), &mut offsets);
    }
    out.drafts
}

/// Sections being packed into one chunk.
struct Pack<'d> {
    span: Range<usize>,
    section: &'d Section,
    tokens: usize,
}

struct Chunks<'t> {
    text: &'t str,
    drafts: Vec<ChunkDraft>,
}

impl Chunks<'_> {
    /// `tokens`: the span's estimate when already known (a packed chunk's
    /// sum is exact, see [`chunk`]).
    fn push(
        &mut self,
        span: Range<usize>,
        section: &Section,
        tokens: Option<usize>,
        offsets: &mut Offsets<'_>,
    ) {
        let text = &self.text[span.clone()];
        debug_assert!(tokens.is_none_or(|n| n == estimate_tokens(text)));
        let start = offsets.char_at(span.start);
        let end = start + text.chars().count();
        self.drafts.push(ChunkDraft {
            ordinal: u32::try_from(self.drafts.len()).unwrap_or(u32::MAX),
            text: text.to_owned(),
            heading_path: section.heading_path.clone(),
            page: section.page,
            start,
            end,
            token_count: tokens.unwrap_or_else(|| estimate_tokens(text)),
            content_hash: sha256_hex(text),
            metadata: section.metadata.clone(),
        });
    }
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 15)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One section in four, chosen by content, ends a packed chunk early (see [`chunk`]).
fn is_anchor(text: &str) -> bool {
    Sha256::digest(text.as_bytes())[0] < 64
}

/// Splits `span` into pieces of at most `max_tokens`, each after the first
/// starting ≈ `overlap_tokens` before the previous one ends.
fn split_with_overlap(
    text: &str,
    span: Range<usize>,
    settings: &ChunkSettings,
) -> Vec<Range<usize>> {
    let budget = settings.max_tokens - settings.overlap_tokens;
    let pieces = split(text, span, budget, Level::Paragraph);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let Some(previous) = i.checked_sub(1).map(|p| &pieces[p]) else {
            out.push(piece.clone());
            continue;
        };
        let mut start = overlap_start(text, previous.clone(), settings.overlap_tokens);
        // The estimate is not exactly additive: give up overlap words until it fits.
        while start < piece.start && estimate_tokens(&text[start..piece.end]) > settings.max_tokens
        {
            start = next_word_start(text, start, piece.start);
        }
        out.push(start.min(piece.start)..piece.end);
    }
    out
}

/// Where the overlap copied from the end of `previous` starts.
fn overlap_start(text: &str, previous: Range<usize>, overlap: usize) -> usize {
    if overlap == 0 {
        return previous.end;
    }
    // The earliest boundary whose suffix still fits, walking back from the end.
    let earliest_fitting = |level: Level| {
        segments(text, previous.clone(), level)
            .into_iter()
            .rev()
            .map(|s| s.start)
            .take_while(|&start| estimate_tokens(&text[start..previous.end]) <= overlap)
            .last()
    };
    if let Some(start) = earliest_fitting(Level::Sentence)
        && estimate_tokens(&text[start..previous.end]) * 2 >= overlap
    {
        return start;
    }
    earliest_fitting(Level::Word).unwrap_or(previous.end)
}

fn next_word_start(text: &str, from: usize, limit: usize) -> usize {
    let rest = &text[from..limit];
    let after_word = rest.find(char::is_whitespace).map_or(limit, |i| from + i);
    let rest = &text[after_word..limit];
    rest.find(|c: char| !c.is_whitespace())
        .map_or(limit, |i| after_word + i)
}

/// Boundaries to split at, most natural first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Level {
    Paragraph,
    Line,
    Sentence,
    Word,
    Char,
}

impl Level {
    fn finer(self) -> Level {
        match self {
            Level::Paragraph => Level::Line,
            Level::Line => Level::Sentence,
            Level::Sentence => Level::Word,
            Level::Word | Level::Char => Level::Char,
        }
    }
}

/// Splits `span` into trimmed pieces of at most `budget` tokens, greedily
/// packing segments of `level` and splitting oversized ones at a finer level.
fn split(text: &str, span: Range<usize>, budget: usize, level: Level) -> Vec<Range<usize>> {
    if level == Level::Char {
        return split_chars(text, span, budget);
    }
    let mut pieces = Vec::new();
    let mut current: Option<(Range<usize>, usize)> = None;
    for segment in segments(text, span, level) {
        let tokens = estimate_tokens(&text[segment.clone()]);
        if let Some((range, sum)) = &mut current {
            let joined = *sum + estimate_tokens(&text[range.end..segment.start]) + tokens;
            if joined <= budget {
                range.end = segment.end;
                *sum = joined;
                continue;
            }
            pieces.push(range.clone());
            current = None;
        }
        if tokens > budget {
            pieces.extend(split(text, segment, budget, level.finer()));
        } else {
            current = Some((segment, tokens));
        }
    }
    pieces.extend(current.map(|(range, _)| range));
    pieces
}

/// The longest prefixes (on char boundaries) that fit `budget`, one after another.
fn split_chars(text: &str, span: Range<usize>, budget: usize) -> Vec<Range<usize>> {
    // No char costs less than a quarter token except whitespace, which
    // `segments` already split at: a piece never needs more chars than this.
    let window = budget.saturating_mul(4).saturating_add(16);
    let mut pieces = Vec::new();
    let mut start = span.start;
    while start < span.end {
        let boundaries: Vec<usize> = text[start..span.end]
            .char_indices()
            .take(window)
            .map(|(i, c)| start + i + c.len_utf8())
            .collect();
        // Binary search for the last boundary whose prefix fits (at least one char).
        let (mut lo, mut hi) = (0, boundaries.len() - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if estimate_tokens(&text[start..boundaries[mid]]) <= budget {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let end = boundaries[lo];
        pieces.push(start..end);
        start = end;
    }
    pieces
}

/// The trimmed, non-empty segments of `span` at `level`.
fn segments(text: &str, span: Range<usize>, level: Level) -> Vec<Range<usize>> {
    let slice = &text[span.clone()];
    let mut cuts = vec![0];
    match level {
        Level::Paragraph => {
            let mut offset = 0;
            let mut blank_run = false;
            for line in slice.split_inclusive('\n') {
                let blank = line.trim().is_empty();
                if !blank && blank_run {
                    cuts.push(offset);
                }
                blank_run = blank;
                offset += line.len();
            }
        }
        Level::Line => {
            cuts.extend(slice.match_indices('\n').map(|(i, _)| i + 1));
        }
        Level::Sentence => cuts.extend(sentence_starts(slice)),
        Level::Word => {
            let mut previous_space = false;
            for (i, c) in slice.char_indices() {
                let space = c.is_whitespace();
                if previous_space && !space {
                    cuts.push(i);
                }
                previous_space = space;
            }
        }
        Level::Char => {}
    }
    cuts.push(slice.len());
    cuts.windows(2)
        .map(|w| trim(text, span.start + w[0]..span.start + w[1]))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Byte offsets in `slice` where a new sentence starts: after `.`, `!`, `?`
/// or `…` (and any closing quotes or brackets) followed by whitespace, or
/// right after a CJK full stop.
fn sentence_starts(slice: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut chars = slice.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        let cjk = matches!(c, '。' | '！' | '？');
        if !(cjk || matches!(c, '.' | '!' | '?' | '…')) {
            continue;
        }
        while let Some(&(_, next)) = chars.peek() {
            if matches!(
                next,
                '"' | '\'' | ')' | ']' | '”' | '’' | '»' | '」' | '.' | '!' | '?'
            ) {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(i, next)) = chars.peek() else {
            break;
        };
        if next.is_whitespace() {
            while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                chars.next();
            }
            if let Some(&(i, _)) = chars.peek() {
                starts.push(i);
            }
        } else if cjk {
            starts.push(i);
        }
    }
    starts
}

/// `span` without leading and trailing whitespace.
fn trim(text: &str, span: Range<usize>) -> Range<usize> {
    let slice = &text[span.clone()];
    let start = span.start + (slice.len() - slice.trim_start().len());
    let end = span.start + slice.trim_end().len();
    start..end.max(start)
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// Converts between char and byte offsets of one text, fast for nearby lookups.
struct Offsets<'t> {
    text: &'t str,
    byte: usize,
    char: usize,
    chars: usize,
    /// All ASCII: char and byte offsets are the same (no walk).
    ascii: bool,
}

impl<'t> Offsets<'t> {
    fn new(text: &'t str) -> Self {
        let ascii = text.is_ascii();
        Self {
            text,
            byte: 0,
            char: 0,
            chars: if ascii {
                text.len()
            } else {
                text.chars().count()
            },
            ascii,
        }
    }

    /// The byte range of chars `start..end`, or `None` when out of bounds.
    fn byte_range(&mut self, start: usize, end: usize) -> Option<Range<usize>> {
        if start > end || end > self.chars {
            return None;
        }
        let start = self.byte_at(start);
        let end = self.byte_at(end);
        Some(start..end)
    }

    /// Walks bytes, not decoded chars: a char starts at every byte that is
    /// not a UTF-8 continuation byte (`10xxxxxx`).
    fn byte_at(&mut self, char: usize) -> usize {
        let bytes = self.text.as_bytes();
        if self.ascii {
            self.byte = char.min(bytes.len());
            self.char = self.byte;
            return self.byte;
        }
        while self.char < char && self.byte < bytes.len() {
            self.byte += 1;
            while bytes.get(self.byte).is_some_and(|b| is_continuation(*b)) {
                self.byte += 1;
            }
            self.char += 1;
        }
        while self.char > char && self.byte > 0 {
            self.byte -= 1;
            while self.byte > 0 && is_continuation(bytes[self.byte]) {
                self.byte -= 1;
            }
            self.char -= 1;
        }
        self.byte
    }

    /// The char offset of byte offset `byte` (which must be a char boundary).
    fn char_at(&mut self, byte: usize) -> usize {
        let bytes = self.text.as_bytes();
        let byte = byte.min(bytes.len());
        if self.ascii {
            self.byte = byte;
            self.char = byte;
            return byte;
        }
        let starts = |range: &[u8]| range.iter().filter(|b| !is_continuation(**b)).count();
        if byte >= self.byte {
            self.char += starts(&bytes[self.byte..byte]);
        } else {
            self.char -= starts(&bytes[byte..self.byte]);
        }
        self.byte = byte;
        self.char
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_default_settings_and_rejects_out_of_range_ones() {
        assert_eq!(ChunkSettings::default().validate(), Ok(()));
        for (max, overlap, field) in [
            (31, 0, "max_tokens"),
            (8001, 0, "max_tokens"),
            (512, 256, "overlap_tokens"),
            (100, 60, "overlap_tokens"),
        ] {
            let err = ChunkSettings {
                max_tokens: max,
                overlap_tokens: overlap,
            }
            .validate()
            .unwrap_err();
            assert!(
                matches!(&err, Error::Validation { field: Some(f), .. } if f == field),
                "{err:?}"
            );
        }
        assert!(
            ChunkSettings {
                max_tokens: 32,
                overlap_tokens: 15
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn finds_sentence_starts_after_terminators_and_closing_quotes() {
        let s = "One. \"Two?\" Three!  Four… 五。六";
        let starts: Vec<&str> = sentence_starts(s).into_iter().map(|i| &s[i..]).collect();
        assert_eq!(
            starts,
            [
                "\"Two?\" Three!  Four… 五。六",
                "Three!  Four… 五。六",
                "Four… 五。六",
                "五。六",
                "六"
            ]
        );
    }

    #[test]
    fn splits_into_trimmed_segments_per_level() {
        let text = "a b\nc\n\n \nd. E f";
        let all = 0..text.len();
        let show = |level| -> Vec<&str> {
            segments(text, all.clone(), level)
                .into_iter()
                .map(|r| &text[r])
                .collect()
        };
        assert_eq!(show(Level::Paragraph), ["a b\nc", "d. E f"]);
        assert_eq!(show(Level::Line), ["a b", "c", "d. E f"]);
        assert_eq!(show(Level::Sentence), ["a b\nc\n\n \nd.", "E f"]);
        assert_eq!(show(Level::Word), ["a", "b", "c", "d.", "E", "f"]);
    }

    #[test]
    fn splits_a_wordless_run_at_chars_within_budget() {
        let text = "x".repeat(1000);
        let pieces = split_chars(&text, 0..text.len(), 10);
        assert!(pieces.len() > 1);
        assert!(
            pieces
                .iter()
                .all(|p| estimate_tokens(&text[p.clone()]) <= 10)
        );
        assert_eq!(pieces.last().unwrap().end, text.len());
    }

    #[test]
    fn hashes_as_lowercase_hex_sha256() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn converts_offsets_both_ways_over_multibyte_text() {
        let text = "aé漢😀b";
        let mut o = Offsets::new(text);
        assert_eq!(o.byte_range(1, 4), Some(1..10));
        assert_eq!(o.char_at(0), 0);
        assert_eq!(o.char_at(10), 4);
        assert_eq!(o.byte_range(0, 6), None);
    }

    #[test]
    fn ascii_offsets_match_the_walk() {
        let text = "Install the agent.\n\nThen restart it: twice.";
        let mut fast = Offsets::new(text);
        let mut walk = Offsets::new(text);
        walk.ascii = false;
        assert!(fast.ascii);
        for (start, end) in [(0, 7), (5, 20), (20, 44), (3, 3), (0, 44), (10, 12)] {
            assert_eq!(fast.byte_range(start, end), walk.byte_range(start, end));
        }
        for byte in [44, 0, 17, 30, 2, 99] {
            assert_eq!(fast.char_at(byte), walk.char_at(byte), "byte {byte}");
        }
        assert_eq!(fast.byte_range(0, 45), None);
    }
}
