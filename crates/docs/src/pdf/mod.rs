//! PDF: the text of each page, with its page number.
//!
//! A small reader of its own instead of `lopdf` (see the crate doc for the
//! size and robustness reasons). It reads what text extraction needs:
//!
//! * objects, found by scanning for `N G obj` rather than trusting the
//!   cross-reference table, so files with a damaged table still open;
//!   compressed object streams (PDF 1.5+) are unpacked; the last definition
//!   of an object wins (incremental updates);
//! * stream filters `FlateDecode` (with PNG predictors), `ASCIIHexDecode`,
//!   `ASCII85Decode`; other filters are images and skipped;
//! * the page tree in order (inherited resources included), falling back to
//!   every `/Type /Page` object when the tree is broken;
//! * fonts' `ToUnicode` CMaps, else simple encodings (WinAnsi, MacRoman,
//!   Standard, `/Differences` glyph names);
//! * the text operators, positioned with the text and transformation
//!   matrices, and form XObjects.
//!
//! Not supported: encrypted files (rejected with a clear message), `LZWDecode`
//! content (pre-2000 files), CID fonts without a `ToUnicode` map (their text is
//! lost), and reading order of multi-column layouts (text comes in drawing
//! order). Decoding is bounded (64 MB per stream, 256 MB per file) and every
//! recursion is depth-limited, so no file can exhaust the instance.

mod content;
mod file;
mod font;
mod lexer;

use crate::ParsedDocument;
use crate::builder::{Builder, no_text};
use file::File;
use lexer::{Dict, Object};
use ragspin_core::{Error, Result};
use std::collections::HashSet;

const MAX_PAGES: usize = 100_000;
const MAX_TREE_DEPTH: usize = 64;

pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
    let header = &bytes[..bytes.len().min(1024)];
    if file::find(header, 0, b"%PDF-").is_none() {
        return Err(malformed("not a PDF: the %PDF- header is missing"));
    }
    let file = File::load(bytes);
    if file.trailer.get(b"Encrypt").is_some() {
        return Err(malformed(
            "the PDF is encrypted; remove its password protection and upload it again",
        ));
    }
    let pages = pages(&file);
    if pages.is_empty() {
        return Err(malformed("malformed PDF: no pages found"));
    }
    let mut extractor = content::Extractor::new(&file);
    let mut doc = Builder::default();
    for (index, (page, resources)) in pages.iter().enumerate() {
        let content = page_content(&file, page);
        let text = extractor.page_text(&content, resources.as_ref());
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        doc.section(&text, &[], Some(number), crate::Metadata::new(), false);
    }
    doc.title = title(&file);
    doc.finish_or(no_text(
        " (the PDF has no text layer; scanned pages need OCR first)",
    ))
}

fn malformed(message: &str) -> Error {
    Error::bad_field("content", message)
}

/// The pages in order, each with its (possibly inherited) resources.
fn pages(file: &File) -> Vec<(Dict, Option<Dict>)> {
    let mut out = Vec::new();
    let root = file.get_dict(&file.trailer, b"Root");
    if let Some(tree) = root.and_then(|r| r.get(b"Pages")) {
        let mut visited = HashSet::new();
        walk(file, tree, None, &mut visited, &mut out, 0);
    }
    if out.is_empty() {
        // A broken tree: every page object, in object-number order.
        for (_, object) in file.objects_by_number() {
            if let Some(dict) = object.as_dict()
                && dict.get(b"Type").and_then(Object::as_name) == Some(b"Page")
            {
                let resources = file.get_dict(dict, b"Resources").cloned();
                out.push((dict.clone(), resources));
                if out.len() >= MAX_PAGES {
                    break;
                }
            }
        }
    }
    out
}

fn walk(
    file: &File,
    node: &Object,
    inherited: Option<&Dict>,
    visited: &mut HashSet<u32>,
    out: &mut Vec<(Dict, Option<Dict>)>,
    depth: usize,
) {
    if depth > MAX_TREE_DEPTH || out.len() >= MAX_PAGES {
        return;
    }
    if let Object::Ref(number) = node
        && !visited.insert(*number)
    {
        return;
    }
    let Some(dict) = file.resolve(node).as_dict() else {
        return;
    };
    let resources = file.get_dict(dict, b"Resources").or(inherited);
    match file.get(dict, b"Kids") {
        Some(Object::Array(kids))
            if dict.get(b"Type").and_then(Object::as_name) != Some(b"Page") =>
        {
            for kid in kids {
                walk(file, kid, resources, visited, out, depth + 1);
            }
        }
        _ => out.push((dict.clone(), resources.cloned())),
    }
}

/// A page's content streams, decoded and joined.
fn page_content(file: &File, page: &Dict) -> Vec<u8> {
    let mut content = Vec::new();
    let streams: Vec<&Object> = match page.get(b"Contents").map(|c| file.resolve(c)) {
        Some(Object::Array(parts)) => parts.iter().map(|p| file.resolve(p)).collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    for stream in streams {
        if let Object::Stream(stream) = stream
            && let Some(data) = file.decode(stream)
        {
            content.extend_from_slice(&data);
            content.push(b'\n');
        }
    }
    content
}

/// `/Info /Title`, decoded as a PDF text string.
fn title(file: &File) -> Option<String> {
    let info = file.get_dict(&file.trailer, b"Info")?;
    match file.get(info, b"Title")? {
        Object::Str(bytes) => Some(text_string(bytes)),
        _ => None,
    }
}

/// A PDF text string: UTF-16BE with a BOM, UTF-8 with a BOM, else PDFDocEncoding (≈ Latin-1).
fn text_string(bytes: &[u8]) -> String {
    if let Some(utf16) = bytes.strip_prefix(b"\xfe\xff") {
        return font::utf16(utf16);
    }
    if let Some(utf8) = bytes.strip_prefix(b"\xef\xbb\xbf") {
        return String::from_utf8_lossy(utf8).into_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pdf_text_strings() {
        assert_eq!(text_string(b"\xfe\xff\x00H\x00\xe9"), "Hé");
        assert_eq!(text_string(b"Caf\xe9"), "Café");
        assert_eq!(text_string(b"\xef\xbb\xbfCaf\xc3\xa9"), "Café");
    }

    #[test]
    fn rejects_bytes_without_a_pdf_header() {
        let err = parse(b"hello").unwrap_err();
        assert_eq!(
            err.to_string(),
            "content: not a PDF: the %PDF- header is missing"
        );
    }
}
