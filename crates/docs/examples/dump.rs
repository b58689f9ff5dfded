fn main() {
    let path = std::env::args().nth(1).unwrap();
    let n: usize = std::env::args().nth(2).map_or(400, |s| s.parse().unwrap());
    let bytes = std::fs::read(&path).unwrap();
    let format = ragspin_docs::Format::detect(None, &path).unwrap();
    let t = std::time::Instant::now();
    match ragspin_docs::parse(&bytes, format, &Default::default()) {
        Ok(doc) => {
            println!(
                "title={:?} sections={} chars={} in {:?}",
                doc.title,
                doc.sections.len(),
                doc.text.chars().count(),
                t.elapsed()
            );
            for s in doc.sections.iter().take(100000) {
                println!(
                    "--- page {:?} path {:?}\n{}",
                    s.page,
                    s.heading_path,
                    s.text.chars().take(n).collect::<String>()
                );
            }
        }
        Err(e) => println!("error: {e}"),
    }
}
