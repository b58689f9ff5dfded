//! Golden outputs: each fixture's chunks, as `<fixture>.chunks.json` beside it.
//!
//! After a deliberate change to a parser or the chunker, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p ragspin-docs --test golden` and review the diff:
//! every changed `content_hash` is an embedding the ingest service recomputes.

mod common;

use common::{fixture, fixtures, multi_page_pdf, reviews_mapping};
use ragspin_docs::{ChunkSettings, FieldMapping, Format, chunk, parse};
use serde_json::{Value, json};

fn golden(name: &str, bytes: &[u8], mapping: &FieldMapping, settings: &ChunkSettings) {
    let format = Format::detect(None, name).unwrap();
    let doc = parse(bytes, format, mapping).unwrap();
    let chunks: Vec<Value> = chunk(&doc, settings)
        .into_iter()
        .map(|c| {
            let preview: String = c.text.chars().take(60).collect();
            json!({
                "ordinal": c.ordinal,
                "heading_path": c.heading_path,
                "page": c.page,
                "start": c.start,
                "end": c.end,
                "token_count": c.token_count,
                "content_hash": c.content_hash,
                "metadata": c.metadata,
                "preview": preview,
            })
        })
        .collect();
    let actual = json!({
        "title": doc.title,
        "settings": settings,
        "chunks": chunks,
    });
    let path = fixtures().join(format!("{name}.chunks.json"));
    let rendered = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == rendered,
        "{name}: chunks differ from {}; if the change is deliberate, rerun with UPDATE_GOLDEN=1 and review the diff",
        path.display()
    );
}

#[test]
fn markdown_guide_matches_its_golden_chunks() {
    let small = ChunkSettings {
        max_tokens: 200,
        overlap_tokens: 30,
    };
    golden(
        "guide.md",
        &fixture("guide.md"),
        &FieldMapping::default(),
        &small,
    );
}

#[test]
fn html_page_matches_its_golden_chunks() {
    golden(
        "page.html",
        &fixture("page.html"),
        &FieldMapping::default(),
        &ChunkSettings::default(),
    );
}

#[test]
fn plain_text_notes_match_their_golden_chunks() {
    golden(
        "notes.txt",
        &fixture("notes.txt"),
        &FieldMapping::default(),
        &ChunkSettings::default(),
    );
}

#[test]
fn reviews_csv_matches_its_golden_chunks() {
    golden(
        "reviews.csv",
        &fixture("reviews.csv"),
        &reviews_mapping(),
        &ChunkSettings::default(),
    );
}

#[test]
fn products_json_matches_its_golden_chunks() {
    let mapping = FieldMapping {
        text_fields: vec!["name".into(), "specs.battery".into(), "tags".into()],
        metadata_fields: vec!["price".into(), "category".into(), "in_stock".into()],
        id_field: Some("sku".into()),
    };
    golden(
        "products.json",
        &fixture("products.json"),
        &mapping,
        &ChunkSettings::default(),
    );
}

#[test]
fn events_jsonl_matches_its_golden_chunks() {
    golden(
        "events.jsonl",
        &fixture("events.jsonl"),
        &FieldMapping::default(),
        &ChunkSettings::default(),
    );
}

#[test]
fn pdf_pages_match_their_golden_chunks() {
    golden(
        "pages.pdf",
        &multi_page_pdf(),
        &FieldMapping::default(),
        &ChunkSettings::default(),
    );
}
