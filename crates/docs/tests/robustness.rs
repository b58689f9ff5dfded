//! No input makes a parser or the chunker panic: random bytes, and the
//! fixtures truncated, bit-flipped and spliced, through every format.
//! (In the component a panic aborts the wasm instance; here it fails the test.)

mod common;

use common::{assert_chunk_invariants, fixture, multi_page_pdf, reviews_mapping};
use ragspin_docs::{ChunkSettings, FieldMapping, Format, chunk, parse};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn exercise(bytes: &[u8]) {
    let mappings = [FieldMapping::default(), reviews_mapping()];
    let settings = ChunkSettings {
        max_tokens: 40,
        overlap_tokens: 10,
    };
    for format in Format::ALL {
        for mapping in &mappings {
            if let Ok(doc) = parse(bytes, format, mapping) {
                assert_chunk_invariants(&doc, &chunk(&doc, &settings), &settings);
            }
        }
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(8) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(6) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.next() as u8,
            2 => bytes.truncate(at),
            3 => {
                let len = rng.below(64).min(bytes.len() - at);
                let copy = bytes[at..at + len].to_vec();
                let to = rng.below(bytes.len());
                bytes.splice(to..to, copy);
            }
            4 => {
                let token: &[u8] = [
                    &b"<<"[..],
                    b">>",
                    b"[",
                    b"(",
                    b"\\",
                    b"obj",
                    b"stream",
                    b"endstream",
                    b" 0 R ",
                    b"\"",
                    b",",
                    b"\n",
                    b"{",
                    b"}",
                    b"<",
                    b"</",
                    b"#",
                    b"```",
                    b"|",
                    b"\xff",
                    b"\xe2\x82",
                    b"BT",
                    b"Tj",
                    b"TJ",
                    b"/Kids",
                    b"/FlateDecode",
                ][rng.below(26)];
                bytes.splice(at..at, token.iter().copied());
            }
            _ => {
                let len = rng.below(32).min(bytes.len() - at);
                bytes.drain(at..at + len);
            }
        }
    }
    bytes
}

#[test]
fn random_bytes_never_panic_any_parser() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..300 {
        let len = rng.below(600);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        exercise(&bytes);
        // Mostly-ASCII noise gets further into the text parsers.
        let ascii: Vec<u8> = (0..len)
            .map(|_| b" \n\t<>/[](){}\",:#|-*.abcdeABC0123456789"[rng.below(38)])
            .collect();
        exercise(&ascii);
    }
}

#[test]
fn mutated_fixtures_never_panic_any_parser() {
    let seeds: Vec<Vec<u8>> = [
        "guide.md",
        "page.html",
        "reviews.csv",
        "products.json",
        "events.jsonl",
        "notes.txt",
    ]
    .iter()
    .map(|name| fixture(name))
    .chain([multi_page_pdf()])
    .collect();
    let mut rng = Rng(42);
    for round in 0..40 {
        for seed in &seeds {
            let bytes = mutate(&mut rng, seed);
            exercise(&bytes);
            if round == 0 {
                exercise(seed);
            }
        }
    }
}

#[test]
fn mutated_pdfs_never_panic_the_pdf_reader() {
    // The PDF reader has the most hand-written parsing: mutate it harder.
    let seed = multi_page_pdf();
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let bytes = mutate(&mut rng, &seed);
        if let Ok(doc) = parse(&bytes, Format::Pdf, &FieldMapping::default()) {
            let _ = chunk(&doc, &ChunkSettings::default());
        }
    }
}

#[test]
fn pathological_nesting_and_sizes_are_handled() {
    let cases: Vec<Vec<u8>> = vec![
        ">".repeat(20_000).into_bytes(),
        (0..400)
            .map(|i| format!("{}- x\n", "  ".repeat(i)))
            .collect::<String>()
            .into_bytes(),
        "[".repeat(20_000).into_bytes(),
        "<div>".repeat(10_000).into_bytes(),
        "<nav>".repeat(10_000).into_bytes(),
        "{\"a\":".repeat(5_000).into_bytes(),
        "a,".repeat(10_000).into_bytes(),
        "\"".repeat(5_001).into_bytes(),
    ];
    for bytes in cases {
        exercise(&bytes);
    }
}

#[test]
fn hostile_pdf_structures_are_bounded() {
    let cases: Vec<Vec<u8>> = vec![
        // A page tree that contains itself.
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /Contents 4 0 R >> endobj\n4 0 obj << /Length 20 >> stream\nBT (looped) Tj ET\nendstream endobj\ntrailer << /Root 1 0 R >>".to_vec(),
        // A form XObject that draws itself.
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] >> endobj\n3 0 obj << /Type /Page /Resources << /XObject << /X 5 0 R >> >> /Contents 4 0 R >> endobj\n4 0 obj << >> stream\n/X Do BT (top) Tj ET\nendstream endobj\n5 0 obj << /Subtype /Form /Resources << /XObject << /X 5 0 R >> >> >> stream\n/X Do BT (form) Tj ET\nendstream endobj\ntrailer << /Root 1 0 R >>".to_vec(),
        // Deep nesting and a huge /Length.
        [&b"%PDF-1.4\n1 0 obj "[..], &b"[".repeat(100_000), b" endobj 2 0 obj << /Length 99999999999 >> stream\nx"].concat(),
        // Object stream with absurd counts and offsets.
        b"%PDF-1.5\n1 0 obj << /Type /ObjStm /N 99999999 /First -5 /Length 9 >> stream\n1 2 3 4 5\nendstream endobj".to_vec(),
    ];
    for bytes in cases {
        if let Ok(doc) = parse(&bytes, Format::Pdf, &FieldMapping::default()) {
            assert!(doc.text.len() < 10_000);
        }
    }
    let zip_bomb = {
        let zeros = vec![b' '; 50 << 20];
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 9);
        let mut pdf = format!("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] >> endobj\n3 0 obj << /Type /Page /Contents 4 0 R >> endobj\n4 0 obj << /Filter /FlateDecode /Length {} >> stream\n", packed.len()).into_bytes();
        pdf.extend_from_slice(&packed);
        pdf.extend_from_slice(b"\nendstream endobj\ntrailer << /Root 1 0 R >>");
        pdf
    };
    assert!(parse(&zip_bomb, Format::Pdf, &FieldMapping::default()).is_err());
}
