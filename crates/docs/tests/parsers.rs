//! Each parser on its fixture under `tests/fixtures/docs/`.

mod common;

use common::{fixture, fixtures, multi_page_pdf, reviews_mapping, span};
use ragspin_core::{Error, status_for};
use ragspin_docs::{ChunkSettings, FieldMapping, Format, ParsedDocument, chunk, parse};
use serde_json::{Value, json};

fn parse_fixture(name: &str, mapping: &FieldMapping) -> ParsedDocument {
    let format = Format::detect(None, name).unwrap();
    let doc = parse(&fixture(name), format, mapping).unwrap();
    for section in &doc.sections {
        assert_eq!(span(&doc, section.start, section.end), section.text);
    }
    doc
}

#[test]
fn markdown_guide_keeps_heading_paths_code_and_tables() {
    let doc = parse_fixture("guide.md", &FieldMapping::default());
    assert_eq!(
        doc.title.as_deref(),
        Some("Lumen Sync — Administrator Guide")
    );
    let paths: Vec<Vec<&str>> = doc
        .sections
        .iter()
        .map(|s| s.heading_path.iter().map(String::as_str).collect())
        .collect();
    assert!(paths.contains(&vec!["Lumen Sync", "Install", "Linux"]));
    assert!(paths.contains(&vec!["Lumen Sync", "Configure", "Bandwidth limits"]));
    assert!(paths.contains(&vec!["Lumen Sync", "Troubleshooting", "Reading the log"]));
    let code = doc
        .sections
        .iter()
        .find(|s| s.text.starts_with("curl -fsSL"))
        .unwrap();
    assert!(code.text.contains("\nsudo apt-get update"));
    let table = doc
        .sections
        .iter()
        .find(|s| s.text.starts_with("setting | default | meaning"))
        .unwrap();
    assert!(
        table
            .text
            .contains("\nlisten | 0.0.0.0:7443 | address the service accepts peers on")
    );
    assert!(
        !doc.text.contains("tags: [sync, admin]"),
        "front matter is dropped"
    );
    assert!(doc.sections.iter().all(|s| !s.atomic && s.page.is_none()));
}

#[test]
fn html_page_keeps_main_content_and_drops_chrome() {
    let doc = parse_fixture("page.html", &FieldMapping::default());
    assert_eq!(
        doc.title.as_deref(),
        Some("Battery care & charging — Aurora X2 Support")
    );
    for dropped in [
        "dataLayer",
        "font-family",
        "Phones",
        "Save 20%",
        "Privacy",
        "Enable JavaScript",
        "Support\n",
    ] {
        assert!(
            !doc.text.contains(dropped),
            "{dropped:?} leaked into {:?}",
            doc.text
        );
    }
    let wireless = doc
        .sections
        .iter()
        .find(|s| s.text.starts_with("Qi chargers"))
        .unwrap();
    assert_eq!(
        wireless.heading_path,
        ["Battery care & charging", "Charging", "Wireless charging"]
    );
    assert!(doc.text.contains("- Turn on Battery Saver below 20 %."));
    assert!(doc.text.contains("Video streaming | 22"));
}

#[test]
fn product_reviews_csv_yields_atomic_rows_with_numeric_rating_and_price() {
    let doc = parse_fixture("reviews.csv", &reviews_mapping());
    assert_eq!(doc.sections.len(), 20);
    let first = &doc.sections[0];
    assert!(first.atomic);
    assert_eq!(
        first.text,
        "product_name: Aurora X2\nreview_text: Battery life is outstanding: I get two full days of normal use, and the camera is sharp even at night."
    );
    assert_eq!(
        Value::Object(first.metadata.clone()),
        json!({"rating": 5, "price": 799.0, "category": "phones", "record_id": "r01", "row": 1})
    );
    let chunks = chunk(&doc, &ChunkSettings::default());
    assert_eq!(chunks.len(), 20, "one chunk per review");
    for chunk in &chunks {
        assert!(chunk.metadata["rating"].is_i64(), "{:?}", chunk.metadata);
        assert!(chunk.metadata["price"].is_f64(), "{:?}", chunk.metadata);
        assert!(chunk.metadata["category"].is_string());
    }
    let cheap_with_battery = chunks
        .iter()
        .filter(|c| c.metadata["price"].as_f64().unwrap() < 500.0)
        .filter(|c| c.text.to_lowercase().contains("battery"))
        .count();
    assert!(cheap_with_battery >= 3);
}

#[test]
fn json_products_use_dot_paths_and_type_numeric_strings() {
    let mapping = FieldMapping {
        text_fields: vec!["name".into(), "specs.battery".into(), "tags".into()],
        metadata_fields: vec!["price".into(), "category".into(), "in_stock".into()],
        id_field: Some("sku".into()),
    };
    let doc = parse_fixture("products.json", &mapping);
    assert_eq!(doc.sections.len(), 3);
    assert_eq!(
        doc.sections[1].text,
        "name: Pulse ANC\nspecs.battery: 30 hours with ANC\ntags: noise cancelling"
    );
    assert_eq!(
        Value::Object(doc.sections[1].metadata.clone()),
        json!({"price": 349.0, "category": "headphones", "in_stock": false, "record_id": "PANC-1", "record": 2})
    );
    assert_eq!(
        doc.sections[2].text,
        "name: Nimbus 14\nspecs.battery: 12 hours of browsing"
    );
}

#[test]
fn json_lines_events_skip_blank_lines_and_keep_line_numbers() {
    let mapping = FieldMapping {
        text_fields: vec!["title".into(), "body".into()],
        metadata_fields: vec!["severity".into()],
        id_field: Some("id".into()),
    };
    let doc = parse_fixture("events.jsonl", &mapping);
    let lines: Vec<&Value> = doc.sections.iter().map(|s| &s.metadata["line"]).collect();
    assert_eq!(lines, [&json!(1), &json!(2), &json!(4)]);
    assert_eq!(doc.sections[2].metadata["record_id"], json!("e3"));
}

#[test]
fn pdf_pages_come_out_in_order_with_their_page_numbers() {
    let doc = parse(&multi_page_pdf(), Format::Pdf, &FieldMapping::default()).unwrap();
    assert_eq!(doc.title.as_deref(), Some("Lumen Field Manual"));
    let pages: Vec<(Option<u32>, &str)> = doc
        .sections
        .iter()
        .map(|s| (s.page, s.text.as_str()))
        .collect();
    assert_eq!(
        pages,
        [
            (
                Some(1),
                "Field Manual\nChapter 1.\n\nThe café opens at “seven” sharp.\nBring a torch and spare batteries.\n\nSecond paragraph on page one."
            ),
            (
                Some(2),
                "Page two uses a CID font.\nBattery life: 12 hours."
            ),
            // Page 3 has no text: no section, but page 4 keeps its number.
            (Some(4), "Text inside a form XObject on page four."),
        ]
    );
}

#[test]
fn pdf_fixture_file_is_what_the_generator_writes() {
    // Regenerate with UPDATE_GOLDEN=1 after changing `multi_page_pdf`.
    let path = fixtures().join("pages.pdf");
    let generated = multi_page_pdf();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), generated);
}

#[test]
fn pdf_without_text_or_pages_is_rejected_clearly() {
    let no_pages =
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF";
    let err = parse(no_pages, Format::Pdf, &FieldMapping::default()).unwrap_err();
    assert_eq!(
        err,
        Error::bad_field("content", "malformed PDF: no pages found")
    );
    let blank = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF";
    let err = parse(blank, Format::Pdf, &FieldMapping::default()).unwrap_err();
    assert_eq!(status_for(&err), 422);
    assert!(err.to_string().contains("document has no text"), "{err}");
    let encrypted =
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R /Encrypt 2 0 R >>";
    let err = parse(encrypted, Format::Pdf, &FieldMapping::default()).unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
    assert_eq!(status_for(&err), 400);
}

#[test]
fn empty_documents_have_no_text_in_every_format() {
    for format in Format::ALL {
        let bytes: &[u8] = match format {
            Format::Csv => b"a,b\n",
            Format::Json => b"[]",
            Format::Pdf => continue,
            _ => b"  \n\n ",
        };
        let err = parse(bytes, format, &FieldMapping::default()).unwrap_err();
        assert_eq!(status_for(&err), 422, "{format:?}: {err}");
        assert!(
            err.to_string().contains("document has no text"),
            "{format:?}: {err}"
        );
    }
}

#[test]
fn invalid_utf8_is_a_bad_request_for_every_text_format() {
    for format in Format::ALL.into_iter().filter(|f| *f != Format::Pdf) {
        let err = parse(b"ok \xff\xfe not", format, &FieldMapping::default()).unwrap_err();
        assert_eq!(status_for(&err), 400, "{format:?}");
        assert!(
            err.to_string().contains("not valid UTF-8"),
            "{format:?}: {err}"
        );
    }
}
