//! Plain text: paragraphs separated by blank lines become sections.

use crate::ParsedDocument;
use crate::builder::Builder;
use ragspin_core::{Error, Result};

/// Decodes UTF-8 (a leading BOM is allowed), or names the first bad byte.
pub(crate) fn decode(bytes: &[u8]) -> Result<&str> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        Error::bad_field(
            "content",
            format!(
                "content is not valid UTF-8 (invalid byte at offset {}); re-save the file as UTF-8",
                e.valid_up_to()
            ),
        )
    })
}

/// Splits `text` at blank lines (lines with only whitespace count as blank).
pub(crate) fn paragraphs(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut current = String::new();
    let mut lines = text.lines().peekable();
    std::iter::from_fn(move || {
        while let Some(line) = lines.next() {
            if line.trim().is_empty() {
                if !current.trim().is_empty() {
                    return Some(std::mem::take(&mut current));
                }
                current.clear();
            } else {
                if !current.is_empty() {
                    current.push('\n');
                }
                current.push_str(line);
            }
            if lines.peek().is_none() && !current.trim().is_empty() {
                return Some(std::mem::take(&mut current));
            }
        }
        None
    })
}

pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
    let text = decode(bytes)?;
    let mut doc = Builder::with_capacity(text.len());
    for paragraph in paragraphs(text) {
        doc.block(&paragraph, &[]);
    }
    doc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_one_section_per_paragraph() {
        let doc = parse(b"First line\nsame paragraph.\n\n  \n\nSecond.\r\n\r\nThird.").unwrap();
        let texts: Vec<_> = doc.sections.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["First line\nsame paragraph.", "Second.", "Third."]);
        assert_eq!(doc.title, None);
    }

    #[test]
    fn rejects_invalid_utf8_naming_the_offset() {
        let err = parse(b"caf\xe9 au lait").unwrap_err();
        assert_eq!(ragspin_core::status_for(&err), 400);
        assert!(err.to_string().contains("offset 3"), "{err}");
        assert!(err.to_string().starts_with("content:"), "{err}");
    }

    #[test]
    fn rejects_whitespace_only_text_as_having_no_text() {
        let err = parse(b" \n\t\n").unwrap_err();
        assert_eq!(ragspin_core::status_for(&err), 422);
    }
}
