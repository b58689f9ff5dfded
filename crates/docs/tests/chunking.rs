//! The chunker's guarantees, on the fixtures and on crafted documents.

mod common;

use common::{assert_chunk_invariants, fixture, multi_page_pdf, reviews_mapping, span};
use ragspin_docs::{
    ChunkDraft, ChunkSettings, FieldMapping, Format, ParsedDocument, chunk, estimate_tokens, parse,
};
use std::collections::HashSet;

fn all_fixtures() -> Vec<(&'static str, ParsedDocument)> {
    let plain = FieldMapping::default();
    vec![
        (
            "guide.md",
            parse(&fixture("guide.md"), Format::Markdown, &plain).unwrap(),
        ),
        (
            "notes.txt",
            parse(&fixture("notes.txt"), Format::Text, &plain).unwrap(),
        ),
        (
            "page.html",
            parse(&fixture("page.html"), Format::Html, &plain).unwrap(),
        ),
        (
            "reviews.csv",
            parse(&fixture("reviews.csv"), Format::Csv, &reviews_mapping()).unwrap(),
        ),
        (
            "products.json",
            parse(&fixture("products.json"), Format::Json, &plain).unwrap(),
        ),
        (
            "events.jsonl",
            parse(&fixture("events.jsonl"), Format::Jsonl, &plain).unwrap(),
        ),
        (
            "pages.pdf",
            parse(&multi_page_pdf(), Format::Pdf, &plain).unwrap(),
        ),
    ]
}

fn settings(max_tokens: usize, overlap_tokens: usize) -> ChunkSettings {
    ChunkSettings {
        max_tokens,
        overlap_tokens,
    }
}

#[test]
fn every_chunk_is_a_span_of_the_text_within_one_heading_page_and_record() {
    for (name, doc) in all_fixtures() {
        for s in [
            ChunkSettings::default(),
            settings(32, 0),
            settings(32, 15),
            settings(64, 20),
            settings(200, 30),
            settings(8000, 1000),
        ] {
            let chunks = chunk(&doc, &s);
            assert!(!chunks.is_empty(), "{name}");
            assert_chunk_invariants(&doc, &chunks, &s);
        }
    }
}

#[test]
fn packs_small_sections_under_the_same_heading() {
    let doc = parse(
        b"# A\n\none.\n\ntwo.\n\n# B\n\nthree.\n\nfour.",
        Format::Markdown,
        &FieldMapping::default(),
    )
    .unwrap();
    let chunks = chunk(&doc, &ChunkSettings::default());
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["one.\n\ntwo.", "three.\n\nfour."]);
    assert_eq!(chunks[1].heading_path, ["B"]);
}

#[test]
fn splits_a_long_section_at_sentences_with_overlap_from_the_same_section() {
    let doc = parse(
        &fixture("guide.md"),
        Format::Markdown,
        &FieldMapping::default(),
    )
    .unwrap();
    let s = settings(200, 30);
    let chunks = chunk(&doc, &s);
    let long: Vec<&ChunkDraft> = chunks
        .iter()
        .filter(|c| c.heading_path.last().map(String::as_str) == Some("How synchronisation works"))
        .collect();
    assert!(long.len() >= 2, "the long section is split: {}", long.len());
    for pair in long.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(b.start < a.end, "consecutive pieces overlap");
        let overlap = span(&doc, b.start, a.end);
        let tokens = estimate_tokens(&overlap);
        assert!(
            tokens <= s.overlap_tokens && tokens * 2 >= s.overlap_tokens,
            "overlap of {tokens} tokens: {overlap:?}"
        );
        assert!(
            b.text.starts_with(|c: char| c.is_alphanumeric()),
            "starts at a word"
        );
        assert!(a.text.ends_with('.'), "pieces end at a sentence");
    }
}

#[test]
fn splits_oversized_records_and_keeps_their_metadata_on_every_piece() {
    let long_review = "The battery lasts. ".repeat(120);
    let csv =
        format!("product_name,rating,review_text\nAurora,4,\"{long_review}\"\nPulse,5,short\n");
    let mapping = FieldMapping {
        text_fields: vec!["product_name".into(), "review_text".into()],
        metadata_fields: vec!["rating".into()],
        id_field: None,
    };
    let doc = parse(csv.as_bytes(), Format::Csv, &mapping).unwrap();
    let s = settings(128, 16);
    let chunks = chunk(&doc, &s);
    assert_chunk_invariants(&doc, &chunks, &s);
    let pieces: Vec<_> = chunks.iter().filter(|c| c.metadata["row"] == 1).collect();
    assert!(pieces.len() > 3);
    assert!(pieces.iter().all(|c| c.metadata["rating"] == 4));
    assert_eq!(
        chunks.last().unwrap().text,
        "product_name: Pulse\nreview_text: short"
    );
}

#[test]
fn splits_text_without_spaces_inside_words_as_a_last_resort() {
    let doc = parse(
        "x".repeat(5000).as_bytes(),
        Format::Text,
        &FieldMapping::default(),
    )
    .unwrap();
    let s = settings(32, 8);
    let chunks = chunk(&doc, &s);
    assert!(chunks.len() > 10);
    assert_chunk_invariants(&doc, &chunks, &s);
    let cjk = "数据在这里。".repeat(400);
    let doc = parse(cjk.as_bytes(), Format::Text, &FieldMapping::default()).unwrap();
    assert_chunk_invariants(&doc, &chunk(&doc, &s), &s);
}

#[test]
fn keeps_pdf_page_numbers_on_chunks() {
    let doc = parse(&multi_page_pdf(), Format::Pdf, &FieldMapping::default()).unwrap();
    let chunks = chunk(&doc, &ChunkSettings::default());
    let pages: Vec<Option<u32>> = chunks.iter().map(|c| c.page).collect();
    assert_eq!(pages, [Some(1), Some(2), Some(4)]);
}

#[test]
fn is_deterministic() {
    for (name, doc) in all_fixtures() {
        let s = settings(64, 9);
        assert_eq!(chunk(&doc, &s), chunk(&doc, &s), "{name}");
    }
}

/// Chunks of a plain-text document, with the parsed document.
fn chunks_of(text: &str, s: &ChunkSettings) -> (ParsedDocument, Vec<ChunkDraft>) {
    let doc = parse(text.as_bytes(), Format::Text, &FieldMapping::default()).unwrap();
    let chunks = chunk(&doc, s);
    (doc, chunks)
}

#[test]
fn editing_one_paragraph_keeps_the_hashes_of_chunks_away_from_it() {
    // The ingest service's embedding cache is keyed by content hash: an edit
    // must not shift every chunk after it. Every paragraph of notes.txt is
    // edited twice (a sentence added, a word changed).
    let original = String::from_utf8(fixture("notes.txt")).unwrap();
    let paragraphs: Vec<&str> = original.split("\n\n").collect();
    for s in [settings(256, 38), ChunkSettings::default()] {
        let (_, before) = chunks_of(&original, &s);
        let before_hashes: HashSet<&str> = before.iter().map(|c| c.content_hash.as_str()).collect();
        let mut collateral_total = 0;
        let mut edits = 0;
        for k in 0..paragraphs.len() {
            for grow in [true, false] {
                let mut edited: Vec<String> = paragraphs.iter().map(|p| p.to_string()).collect();
                if grow {
                    edited[k].push_str(" It was rebuilt again in 1999, after the storm.");
                } else {
                    edited[k] = edited[k].replacen(" the ", " The ", 1);
                }
                let (doc, after) = chunks_of(&edited.join("\n\n"), &s);
                let section = &doc.sections[k];
                let covers = |c: &ChunkDraft| c.start < section.end && section.start < c.end;
                // Chunks that do not contain the edited paragraph keep their
                // hashes, except at most two next to it: the edit can change
                // whether it packs with the chunk before, and the packing after
                // it re-synchronises at the next anchor.
                let collateral: Vec<u32> = after
                    .iter()
                    .filter(|c| !covers(c) && !before_hashes.contains(c.content_hash.as_str()))
                    .map(|c| c.ordinal)
                    .collect();
                assert!(
                    collateral.len() <= 2,
                    "paragraph {k}: chunks {collateral:?} changed too"
                );
                collateral_total += collateral.len();
                edits += 1;
            }
        }
        assert!(
            collateral_total * 4 <= edits,
            "{collateral_total} collateral changes for {edits} edits"
        );
    }
}

#[test]
fn editing_under_one_heading_never_changes_chunks_under_other_headings() {
    let original = String::from_utf8(fixture("guide.md")).unwrap();
    let edited = original.replace(
        "drag it into *Applications*.",
        "drag it into *Applications*. Apple silicon and Intel Macs use the same image.",
    );
    assert_ne!(original, edited);
    let s = settings(128, 19);
    let run = |md: &str| {
        chunk(
            &parse(md.as_bytes(), Format::Markdown, &FieldMapping::default()).unwrap(),
            &s,
        )
    };
    let (before, after) = (run(&original), run(&edited));
    let before_hashes: HashSet<&str> = before.iter().map(|c| c.content_hash.as_str()).collect();
    for c in &after {
        if c.heading_path != ["Lumen Sync", "Install", "macOS"] {
            assert!(
                before_hashes.contains(c.content_hash.as_str()),
                "{:?}",
                c.heading_path
            );
        }
    }
}

#[test]
fn clamps_out_of_range_settings_instead_of_failing() {
    let doc = parse(
        &fixture("guide.md"),
        Format::Markdown,
        &FieldMapping::default(),
    )
    .unwrap();
    for s in [settings(0, 0), settings(10, 100), settings(100_000, 99_999)] {
        let chunks = chunk(&doc, &s);
        assert_chunk_invariants(&doc, &chunks, &s.clamped());
    }
}

#[test]
fn estimate_tracks_cl100k_on_reference_samples() {
    // True counts from tiktoken's cl100k_base on the raw fixture files.
    for (name, cl100k) in [
        ("guide.md", 1244),
        ("notes.txt", 2691),
        ("reviews.csv", 707),
        ("products.json", 216),
        ("page.html", 641),
    ] {
        let text = String::from_utf8(fixture(name)).unwrap();
        let ratio = estimate_tokens(&text) as f64 / cl100k as f64;
        assert!((0.9..=1.2).contains(&ratio), "{name}: {ratio:.3}");
    }
}
