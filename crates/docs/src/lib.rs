//! ragspin's document pipeline before embedding: uploaded bytes → a
//! [`ParsedDocument`] of structural [`Section`]s → citation-ready [`ChunkDraft`]s.
//!
//! ```
//! use ragspin_docs::{ChunkSettings, FieldMapping, Format, chunk, parse};
//!
//! let format = Format::detect(Some("text/markdown; charset=utf-8"), "guide.md")?;
//! let doc = parse(b"# Install\n\nRun the installer.", format, &FieldMapping::default())?;
//! let chunks = chunk(&doc, &ChunkSettings::default());
//! assert_eq!(chunks[0].heading_path, ["Install"]);
//! assert_eq!(chunks[0].text, "Run the installer.");
//! # Ok::<(), ragspin_core::Error>(())
//! ```
//!
//! # Design
//!
//! The crate is pure (no I/O, no Spin) and builds for native and
//! `wasm32-wasip2`; the ingest component links it, so its weight counts
//! against the component's 2 MB budget.
//!
//! **Two steps, one invariant.** [`parse`] renders every format into one
//! plain text ([`ParsedDocument::text`]) and records its structural units as
//! [`Section`]s with *char* offsets into that text. [`chunk`] never invents
//! text: every [`ChunkDraft`] is a span of `ParsedDocument::text`
//! (`text.chars().skip(start).take(end - start)` equals the chunk's text), so a
//! citation can always be shown in context and checked against the source.
//!
//! **Structure first.** Chunks never cross a heading, a PDF page or a record
//! (CSV row, JSON record), because a chunk is the unit of citation: its
//! `heading_path` and `page` must be true for all of its text. Inside those
//! limits small sections are packed together and large ones are split at the
//! most natural boundary that fits (paragraph, line, sentence, word). See
//! [`chunk`] for how the packing stays stable under edits, which the ingest
//! service's embedding cache (keyed by [`ChunkDraft::content_hash`]) relies on.
//!
//! **Records stay typed.** For CSV and JSON a [`FieldMapping`] says which
//! fields make the text and which stay metadata; metadata values are typed
//! (numbers as JSON numbers), so `rating >= 4 AND price < 100` filters work.
//!
//! # Dependencies, chosen for size (`opt-level = "s"`, LTO, wasm32-wasip2)
//!
//! Measured with a trivial `wasm32-wasip2` program that parses and chunks
//! stdin: 116 KB without this crate, 755 KB with it (+639 KB). Per format,
//! by disabling one parser at a time:
//!
//! | need | crate | adds | why |
//! |---|---|---|---|
//! | Markdown | `pulldown-cmark` 0.13, no default features | 197 KB | the standard CommonMark parser (tables, front matter); most of it is its parser and HTML-entity table |
//! | HTML | `html5gum` 0.9, tokenizer only | 245 KB | a maintained, dependency-free WHATWG tokenizer: entities, raw-text elements and broken markup handled as browsers do. `scraper` (html5ever + selectors + a DOM we do not need) measured +470 KB; `tl` only +21 KB but is not spec-conformant, leaves entities undecoded and has had no release since 2023. If the ingest budget gets tight, a hand-written tag-soup tokenizer would save ≈ 220 KB |
//! | PDF | own reader (`src/pdf`) + `miniz_oxide` 0.8 | 88 KB | `lopdf` 0.47 measured +1.4 MB (encryption, brotli, Unicode normalisation, rand), 0.38 +520 KB, and both have had panics on crafted files (a panic aborts the wasm instance); text extraction needs only objects, streams, fonts' `ToUnicode` maps and the text operators |
//! | CSV | `csv` 1 | 24 KB | the standard reader: quoting, line numbers in errors |
//! | text, JSON, chunker | `serde_json`, `sha2` 0.11 (its `simd128` SHA-256 backend in wasm; the rest of the workspace is on 0.10 with `hmac` and `argon2`) | 75 KB | |
//!
//! # Errors
//!
//! Everything returns [`ragspin_core::Error`]: unreadable content is
//! `BadRequest { field: "content" }` (400) naming the problem (with the line
//! or row for CSV and JSON Lines); a document without text is `Validation`
//! (422); an unknown type is `UnsupportedMediaType` (415). No input makes a
//! parser panic (`tests/robustness.rs` feeds random and mutated bytes to
//! every parser).

mod builder;
mod chunk;
mod format;
mod html;
mod markdown;
mod pdf;
mod structured;
mod text;
mod tokens;

use ragspin_core::Result;
use serde::{Deserialize, Serialize};

pub use chunk::{ChunkDraft, ChunkSettings, chunk};
pub use format::{Format, SUPPORTED_TYPES};
pub use tokens::estimate_tokens;

/// JSON object used for section and chunk metadata.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// Per-index settings for structured formats (CSV, JSON, JSON Lines).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct FieldMapping {
    /// CSV columns / JSON keys (dot paths such as `specs.battery` allowed for
    /// JSON) joined as `field: value` lines into the record's text, in this
    /// order. Empty: every string-valued field (numbers and booleans are left to
    /// `metadata_fields`).
    pub text_fields: Vec<String>,
    /// Fields kept as typed metadata for filtering (`rating`, `price`,
    /// `category`): integers and decimals — also when written as strings — become
    /// JSON numbers, `true`/`false` booleans, anything else a string. Empty
    /// values are left out.
    pub metadata_fields: Vec<String>,
    /// A per-record id, kept in metadata as `record_id`.
    pub id_field: Option<String>,
}

/// A structural unit of a document: a block under a heading, a PDF page's
/// text, one CSV row, one JSON record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// The section's text; equal to `ParsedDocument::text` between `start` and `end` (chars).
    pub text: String,
    /// The headings it is under, outermost first, e.g. `["Install", "Linux"]`.
    pub heading_path: Vec<String>,
    /// 1-based page number (PDF only).
    pub page: Option<u32>,
    /// Char offset of the first char in `ParsedDocument::text`.
    pub start: usize,
    /// Char offset one past the last char in `ParsedDocument::text`.
    pub end: usize,
    /// Typed metadata (records: the mapped fields, `record_id`, `row`/`record`).
    pub metadata: Metadata,
    /// True for CSV rows and JSON records: never packed with neighbours.
    pub atomic: bool,
}

/// A document rendered as plain text plus its structure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParsedDocument {
    /// The whole document as plain text: sections and headings separated by
    /// blank lines. Offsets in [`Section`] and [`ChunkDraft`] are char offsets into it.
    pub text: String,
    /// The structural units in document order; never empty after [`parse`].
    pub sections: Vec<Section>,
    /// The title when the format has one (HTML `<title>`, PDF `/Title`,
    /// Markdown front matter `title:` or first `#` heading).
    pub title: Option<String>,
}

/// Parses `bytes` of the given format into sections.
///
/// # Errors
///
/// * `BadRequest { field: "content" }` when the bytes are not valid for the
///   format: invalid UTF-8 for the text formats, a malformed PDF, a CSV row or
///   JSON line that does not parse (the message names the row or line);
/// * `Validation { field: "content" }` with `document has no text` when
///   nothing readable is left (empty file, PDF without a text layer);
/// * `Validation { field: "text_fields" | "metadata_fields" | "id_field" }`
///   when a mapped CSV column or JSON field exists in no record.
pub fn parse(bytes: &[u8], format: Format, mapping: &FieldMapping) -> Result<ParsedDocument> {
    match format {
        Format::Text => text::parse(bytes),
        Format::Markdown => markdown::parse(bytes),
        Format::Html => html::parse(bytes),
        Format::Pdf => pdf::parse(bytes),
        Format::Csv => structured::parse_csv(bytes, mapping),
        Format::Json => structured::parse_json(bytes, mapping),
        Format::Jsonl => structured::parse_jsonl(bytes, mapping),
    }
}
