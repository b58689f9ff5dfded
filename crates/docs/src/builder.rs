//! Accumulates a [`ParsedDocument`]: the rendered text and its sections, with
//! char offsets kept consistent by construction.

use crate::{Metadata, ParsedDocument, Section};
use ragspin_core::{Error, Result};

/// What every parser writes into.
#[derive(Default)]
pub(crate) struct Builder {
    text: String,
    chars: usize,
    sections: Vec<Section>,
    pub(crate) title: Option<String>,
}

impl Builder {
    /// A builder whose text has room for `bytes` without growing: a parser
    /// passes its input's length, which bounds the text of Markdown and
    /// plain text (growing by doubling instead took up to twice the final
    /// size in fresh memory, and copied each time).
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Builder {
            text: String::with_capacity(bytes),
            ..Builder::default()
        }
    }

    /// Appends a heading line: part of the text, not of any section.
    pub(crate) fn heading(&mut self, heading: &str) {
        let heading = clean(heading);
        if !heading.is_empty() {
            self.append(&heading);
        }
    }

    /// Appends a section (skipped when it has no visible text).
    pub(crate) fn section(
        &mut self,
        text: &str,
        heading_path: &[String],
        page: Option<u32>,
        metadata: Metadata,
        atomic: bool,
    ) {
        let text = clean(text);
        if text.is_empty() {
            return;
        }
        let (start, end) = self.append(&text);
        self.sections.push(Section {
            text,
            heading_path: heading_path.to_vec(),
            page,
            start,
            end,
            metadata,
            atomic,
        });
    }

    /// A plain, non-atomic section.
    pub(crate) fn block(&mut self, text: &str, heading_path: &[String]) {
        self.section(text, heading_path, None, Metadata::new(), false);
    }

    fn append(&mut self, text: &str) -> (usize, usize) {
        if !self.text.is_empty() {
            self.text.push_str("\n\n");
            self.chars += 2;
        }
        let start = self.chars;
        self.text.push_str(text);
        self.chars += text.chars().count();
        (start, self.chars)
    }

    /// The document, or `Validation` when it has no text.
    pub(crate) fn finish(self) -> Result<ParsedDocument> {
        self.finish_or(no_text(""))
    }

    /// The document, or `error` when it has no text.
    pub(crate) fn finish_or(self, error: Error) -> Result<ParsedDocument> {
        if self.sections.is_empty() {
            return Err(error);
        }
        Ok(ParsedDocument {
            text: self.text,
            sections: self.sections,
            title: self.title.map(|t| clean(&t)).filter(|t| !t.is_empty()),
        })
    }
}

/// The error for a document without text; `hint` explains why, when known.
/// Writes a list item's indent and marker (`- ` or `N. `) for the innermost
/// of `lists` (the next number of each open ordered list, `None` for
/// bullets), advancing its number. Shared by the Markdown and HTML readers.
pub(crate) fn push_list_marker(buf: &mut String, lists: &mut [Option<u64>]) {
    buf.push_str(&"  ".repeat(lists.len().saturating_sub(1)));
    match lists.last_mut() {
        Some(Some(n)) => {
            buf.push_str(&format!("{n}. "));
            *n = n.saturating_add(1);
        }
        _ => buf.push_str("- "),
    }
}

pub(crate) fn no_text(hint: &str) -> Error {
    Error::validation("content", format!("document has no text{hint}"))
}

/// Normalises text for a section: `\r\n` and `\r` become `\n`, other control
/// characters (and the BOM) are dropped, trailing spaces of each line are
/// removed, and the whole is trimmed.
///
/// Scans bytes and copies the runs between special characters whole: the
/// special ones are the C0 controls but tab, DEL, the C1 controls (`C2 80`
/// to `C2 9F` in UTF-8) — together exactly `char::is_control` — and the BOM
/// (`EF BB BF`). Each starts at a char boundary (an ASCII byte or a lead
/// byte), so the runs are valid slices.
pub(crate) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let (mut i, mut run) = (0, 0);
    while i < bytes.len() {
        // Most text has none of the special bytes: skip to the next one
        // that may be (a tab is found too, and passed on below).
        i = MAY_BE_SPECIAL.find(bytes, i);
        let Some(&b) = bytes.get(i) else { break };
        let special = match b {
            b'\t' => 0,
            0x00..=0x1f | 0x7f => 1,
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => 2,
            0xef if bytes.get(i + 1) == Some(&0xbb) && bytes.get(i + 2) == Some(&0xbf) => 3,
            _ => 0,
        };
        if special == 0 {
            i += 1;
            continue;
        }
        out.push_str(&text[run..i]);
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            push_newline(&mut out);
        }
        i += special;
        run = i;
    }
    out.push_str(&text[run..]);
    let trimmed_end = out.trim_end().len();
    out.truncate(trimmed_end);
    let leading = out.len() - out.trim_start().len();
    out.drain(..leading);
    out
}

/// The bytes that can start a special character for [`clean`]: C0 controls
/// (tab included), DEL, the C1 lead byte and the BOM's first byte.
const MAY_BE_SPECIAL: ragspin_core::bytescan::ByteSet =
    ragspin_core::bytescan::ByteSet::new(0x20, [0x7f, 0xc2, 0xef]);

fn push_newline(out: &mut String) {
    let kept = out.trim_end_matches([' ', '\t']).len();
    out.truncate(kept);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_line_endings_controls_and_trailing_spaces() {
        assert_eq!(clean("\u{feff}  a \r\nb\rc\u{0}\t \n\n"), "a\nb\nc");
    }

    /// The char-by-char form `clean` had before it copied runs.
    fn clean_by_chars(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' if chars.peek() != Some(&'\n') => push_newline(&mut out),
                '\r' | '\u{feff}' => {}
                '\n' => push_newline(&mut out),
                '\t' => out.push('\t'),
                c if c.is_control() => {}
                c => out.push(c),
            }
        }
        out.trim().to_owned()
    }

    #[test]
    fn cleaning_by_runs_matches_cleaning_by_chars() {
        let pieces = [
            "a",
            " ",
            "\t",
            "\r",
            "\n",
            "\r\n",
            "\u{feff}",
            "\u{0}",
            "\u{7f}",
            "\u{80}",
            "\u{9f}",
            "\u{a0}",
            "é",
            "¿",
            "漢",
            "😀",
            "\u{fefe}",
            "﻿x",
            // Long runs without special bytes: the 16-byte blocks `clean` skips.
            "the quick brown fox",
            "jumps over the lazy dog. ",
        ];
        let mut texts = ragspin_testkit::PieceTexts::new(&pieces, 40, 7);
        for _ in 0..5000 {
            let text = texts.next_text();
            assert_eq!(clean(&text), clean_by_chars(&text), "{text:?}");
        }
    }

    #[test]
    fn keeps_offsets_in_chars_consistent_with_the_text() {
        let mut b = Builder::default();
        b.heading("Über");
        b.block("naïve café", &["Über".to_owned()]);
        b.block("  ", &[]);
        b.block("ß", &[]);
        let doc = b.finish().unwrap();
        assert_eq!(doc.sections.len(), 2);
        for s in &doc.sections {
            let span: String = doc
                .text
                .chars()
                .skip(s.start)
                .take(s.end - s.start)
                .collect();
            assert_eq!(span, s.text);
        }
    }

    #[test]
    fn refuses_a_document_without_sections() {
        let err = Builder::default().finish().unwrap_err();
        assert_eq!(ragspin_core::status_for(&err), 422);
        assert!(err.to_string().contains("document has no text"));
    }
}
