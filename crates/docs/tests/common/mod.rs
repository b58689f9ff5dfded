//! Shared helpers of the integration tests: fixture paths, the PDF fixture
//! generator and the invariants every chunking must satisfy.
#![allow(dead_code)]

use ragspin_docs::{ChunkDraft, ChunkSettings, FieldMapping, ParsedDocument, estimate_tokens};
use std::path::PathBuf;

/// `tests/fixtures/docs/` at the workspace root.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/docs")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixtures().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The mapping the product-review case uses.
pub fn reviews_mapping() -> FieldMapping {
    FieldMapping {
        text_fields: vec!["product_name".into(), "review_text".into()],
        metadata_fields: vec!["rating".into(), "price".into(), "category".into()],
        id_field: Some("review_id".into()),
    }
}

/// `doc.text` between char offsets.
pub fn span(doc: &ParsedDocument, start: usize, end: usize) -> String {
    doc.text.chars().skip(start).take(end - start).collect()
}

/// Checks what must hold for every chunking of every document.
pub fn assert_chunk_invariants(
    doc: &ParsedDocument,
    chunks: &[ChunkDraft],
    settings: &ChunkSettings,
) {
    let chars: Vec<char> = doc.text.chars().collect();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk.ordinal as usize, i, "ordinals are 0..n");
        let text: String = chars[chunk.start..chunk.end].iter().collect();
        assert_eq!(text, chunk.text, "chunk {i} is its span");
        assert!(!chunk.text.trim().is_empty(), "chunk {i} is empty");
        assert_eq!(chunk.token_count, estimate_tokens(&chunk.text));
        assert!(
            chunk.token_count <= settings.max_tokens,
            "chunk {i} has {} tokens > {}",
            chunk.token_count,
            settings.max_tokens
        );
        assert_eq!(chunk.content_hash.len(), 64);
        // The chunk lies inside sections that all share its heading path and page.
        // Sections are in text order: the candidates start before the chunk ends.
        let first = doc.sections.partition_point(|s| s.end <= chunk.start);
        let covering: Vec<_> = doc.sections[first..]
            .iter()
            .take_while(|s| s.start < chunk.end)
            .filter(|s| chunk.start < s.end)
            .collect();
        assert!(!covering.is_empty(), "chunk {i} covers no section");
        for section in &covering {
            assert_eq!(
                section.heading_path, chunk.heading_path,
                "chunk {i} crosses a heading"
            );
            assert_eq!(section.page, chunk.page, "chunk {i} crosses a page");
            if section.atomic {
                assert_eq!(covering.len(), 1, "chunk {i} merges an atomic section");
                assert!(chunk.start >= section.start && chunk.end <= section.end);
                assert_eq!(section.metadata, chunk.metadata);
            }
        }
    }
    // Every non-whitespace char of every section is in some chunk.
    let mut covered = vec![false; chars.len()];
    for chunk in chunks {
        covered[chunk.start..chunk.end].fill(true);
    }
    for section in &doc.sections {
        for at in section.start..section.end {
            assert!(
                covered[at] || chars[at].is_whitespace(),
                "char {at} of the section at {} is in no chunk",
                section.start
            );
        }
    }
}

/// A four-page PDF 1.5 exercising what the reader supports: a nested page
/// tree with inherited resources, an uncompressed page in a WinAnsi Type 1
/// font with kerning (`TJ`), a page of two Flate streams in a Type 0 font
/// with a `ToUnicode` CMap, a page without text, a page whose text is in a
/// form XObject, fonts and the info dictionary inside a compressed object
/// stream, and a cross-reference stream. Written to `pages.pdf`.
pub fn multi_page_pdf() -> Vec<u8> {
    let deflate = |data: &[u8]| miniz_oxide::deflate::compress_to_vec_zlib(data, 6);
    let page1 = b"BT /F1 18 Tf 72 750 Td (Field Manual) Tj ET\n\
BT /F1 11 Tf 72 720 Td [(Chapter)-300(1.)] TJ\n\
0 -20 Td (The caf\\351 opens at \\223seven\\224 sharp.) Tj\n\
0 -14 Td (Bring a torch and spare batteries.) Tj\n\
0 -30 Td (Second paragraph on page one.) Tj ET\n"
        .to_vec();
    let cid = |text: &str| -> String {
        let hex: String = text.chars().map(|c| format!("{:04X}", c as u32)).collect();
        format!("<{hex}>")
    };
    let page2a = format!(
        "BT /F2 12 Tf 72 720 Td {} Tj ET\n",
        cid("Page two uses a CID font.")
    );
    let page2b = format!(
        "BT /F2 12 Tf 72 704 Td [{} -50 {}] TJ ET\n",
        cid("Battery life:"),
        cid(" 12 hours.")
    );
    let page3 = b"q 100 0 0 100 72 600 cm 0.5 g 0 0 1 1 re f Q\n".to_vec();
    let page4 = b"q 1 0 0 1 0 0 cm /X1 Do Q\n".to_vec();
    let form = b"BT /F1 12 Tf 1 0 0 1 72 700 Tm (Text inside a form XObject on page four.) Tj ET\n"
        .to_vec();
    let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
/CMapName /Custom-UCS def /CMapType 2 def\n\
1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
1 beginbfrange <0020> <007E> <0020> endbfrange\n\
endcmap CMapName currentdict /CMap defineresource pop end end\n"
        .to_vec();

    let stream = |dict: &str, data: &[u8]| -> Vec<u8> {
        let mut out = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\nendstream");
        out
    };
    // Objects stored directly in the file, by number.
    let direct: Vec<(u32, Vec<u8>)> = vec![
        (1, b"<< /Type /Catalog /Pages 2 0 R >>".to_vec()),
        (
            2,
            b"<< /Type /Pages /Kids [3 0 R 6 0 R 7 0 R] /Count 4 /Resources << /Font << /F1 10 0 R /F2 11 0 R >> /XObject << /X1 13 0 R >> >> /MediaBox [0 0 612 792] >>".to_vec(),
        ),
        (3, b"<< /Type /Pages /Parent 2 0 R /Kids [4 0 R 5 0 R] /Count 2 >>".to_vec()),
        (4, b"<< /Type /Page /Parent 3 0 R /Contents 8 0 R >>".to_vec()),
        (5, b"<< /Type /Page /Parent 3 0 R /Contents [9 0 R 14 0 R] >>".to_vec()),
        (6, b"<< /Type /Page /Parent 2 0 R /Contents 15 0 R >>".to_vec()),
        (7, b"<< /Type /Page /Parent 2 0 R /Contents 16 0 R >>".to_vec()),
        (8, stream("", &page1)),
        (9, stream("/Filter /FlateDecode", &deflate(page2a.as_bytes()))),
        (
            13,
            stream(
                "/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 10 0 R >> >>",
                &form,
            ),
        ),
        (14, stream("/Filter /FlateDecode", &deflate(page2b.as_bytes()))),
        (15, stream("", &page3)),
        (16, stream("/Filter [/FlateDecode]", &deflate(&page4))),
        (17, stream("/Filter /FlateDecode", &deflate(&cmap))),
    ];
    // Objects inside the object stream 19.
    let compressed: Vec<(u32, &str)> = vec![
        (
            10,
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        ),
        (
            11,
            "<< /Type /Font /Subtype /Type0 /BaseFont /Custom /Encoding /Identity-H /DescendantFonts [12 0 R] /ToUnicode 17 0 R >>",
        ),
        (
            12,
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Custom /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> /DW 500 >>",
        ),
        (
            18,
            "<< /Title <FEFF004C0075006D0065006E0020004600690065006C00640020004D0061006E00750061006C> /Producer (ragspin-docs tests) >>",
        ),
    ];
    let mut header = String::new();
    let mut body = String::new();
    for (number, object) in &compressed {
        header.push_str(&format!("{number} {} ", body.len()));
        body.push_str(object);
        body.push('\n');
    }
    let objstm_data = format!("{header}\n{body}");
    let objstm = stream(
        &format!(
            "/Type /ObjStm /N {} /First {} /Filter /FlateDecode",
            compressed.len(),
            header.len() + 1
        ),
        &deflate(objstm_data.as_bytes()),
    );

    let mut pdf = b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = std::collections::BTreeMap::new();
    for (number, object) in direct.iter().chain(std::iter::once(&(19, objstm))) {
        offsets.insert(*number, pdf.len());
        pdf.extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    // Cross-reference stream: /W [1 4 2] for objects 0..=20.
    let xref_offset = pdf.len();
    offsets.insert(20, xref_offset);
    let mut entries = Vec::new();
    for number in 0..=20u32 {
        let (kind, field2, field3): (u8, u32, u16) = if let Some(offset) = offsets.get(&number) {
            (1, *offset as u32, 0)
        } else if let Some(index) = compressed.iter().position(|(n, _)| *n == number) {
            (2, 19, index as u16)
        } else {
            (0, 0, if number == 0 { 65535 } else { 0 })
        };
        entries.push(kind);
        entries.extend_from_slice(&field2.to_be_bytes());
        entries.extend_from_slice(&field3.to_be_bytes());
    }
    pdf.extend_from_slice(b"20 0 obj\n");
    pdf.extend_from_slice(&stream(
        "/Type /XRef /Size 21 /W [1 4 2] /Root 1 0 R /Info 18 0 R",
        &entries,
    ));
    pdf.extend_from_slice(format!("\nendobj\nstartxref\n{xref_offset}\n%%EOF\n").as_bytes());
    pdf
}
