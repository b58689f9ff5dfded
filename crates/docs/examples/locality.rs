use ragspin_docs::*;
fn main() {
    let original = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let max: usize = std::env::args().nth(2).map_or(256, |s| s.parse().unwrap());
    let s = ChunkSettings { max_tokens: max, overlap_tokens: max * 15 / 100 };
    let run = |t: &str| { let d = parse(t.as_bytes(), Format::Text, &FieldMapping::default()).unwrap(); let c = chunk(&d, &s); (d, c) };
    let (_, before) = run(&original);
    let set: std::collections::HashSet<_> = before.iter().map(|c| c.content_hash.clone()).collect();
    let fill: f64 = before.iter().map(|c| c.token_count as f64).sum::<f64>() / before.len() as f64;
    let paragraphs: Vec<&str> = original.split("\n\n").collect();
    let (mut extra_total, mut worst, mut edits) = (0, 0, 0);
    for k in 0..paragraphs.len() {
        for e in 0..2 {
            let mut p: Vec<String> = paragraphs.iter().map(|x| x.to_string()).collect();
            if e == 0 { p[k].push_str(" It was rebuilt again in 1999, after the storm."); } else { p[k] = p[k].replacen(" the ", " The ", 1); }
            let (doc, after) = run(&p.join("\n\n"));
            let sec = &doc.sections[k];
            let extra = after.iter().filter(|c| !set.contains(&c.content_hash)).filter(|c| !(c.start < sec.end && sec.start < c.end)).count();
            extra_total += extra; worst = worst.max(extra); edits += 1;
        }
    }
    println!("chunks {} avg fill {:.0}/{} edits {} extra changed chunks total {} worst {}", before.len(), fill, max, edits, extra_total, worst);
}
