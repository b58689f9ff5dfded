use ragspin_docs::*;
fn main() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("quote", ">".repeat(100_000).into_bytes()),
        (
            "list",
            (0..2_000)
                .map(|i| format!("{}- x\n", "  ".repeat(i)))
                .collect::<String>()
                .into_bytes(),
        ),
        ("bracket", "[".repeat(100_000).into_bytes()),
        ("div", "<div>".repeat(50_000).into_bytes()),
        ("nav", "<nav>".repeat(50_000).into_bytes()),
        ("json", "{\"a\":".repeat(10_000).into_bytes()),
        ("commas", "a,".repeat(50_000).into_bytes()),
        ("quotes", "\"".repeat(10_001).into_bytes()),
    ];
    let s = ChunkSettings {
        max_tokens: 40,
        overlap_tokens: 10,
    };
    for (name, bytes) in &cases {
        for format in Format::ALL {
            let t = std::time::Instant::now();
            let r = parse(bytes, format, &FieldMapping::default());
            let tp = t.elapsed();
            let n = r.as_ref().map(|d| chunk(d, &s).len()).unwrap_or(0);
            let tc = t.elapsed() - tp;
            if (tp + tc).as_millis() > 50 {
                println!("{name} {format:?}: parse {tp:?} chunk {tc:?} chunks {n}");
            }
        }
    }
}
