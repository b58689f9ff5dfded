//! `make eval`: run the evaluation set through the compiled components and
//! print the table (see the `ragspin_eval` crate documentation).
//!
//! ```text
//! ragspin-eval [--set DIR] [--recording FILE] [--json FILE] [--verbose]
//!              [--hybrid-weights BM25,VECTOR]
//! ragspin-eval --dump-texts FILE     list every text to record, then exit 0
//! ragspin-eval --chunks [--verbose]  print the set's chunk and question counts
//!                                    (and every chunk's text: to write evidence)
//! ```
//!
//! `--recording` defaults to `DIR/minilm.json`. `--hybrid-weights` tries
//! other fusion weights for the hybrid row and the answers (default: the
//! app's). `--dump-texts` runs with
//! misses answered by hashed vectors and writes every text the components
//! asked to embed (chunks and questions) as a JSON array — the input of
//! `tests/fixtures/eval/record.py` (see `tests/fixtures/eval/README.md`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ragspin_eval::{DEFAULT_RECORDING, EvalSet, RunOptions, default_set_dir, run};
use ragspin_fake_azure::{OnMiss, Recording};

const USAGE: &str = "usage: ragspin-eval [--set DIR] [--recording FILE] [--json FILE] [--verbose] \
                     [--hybrid-weights BM25,VECTOR] \
                     | --dump-texts FILE | --chunks [--verbose]";

fn main() -> Result<()> {
    let mut set_dir = default_set_dir();
    let mut recording: Option<PathBuf> = None;
    let mut json_out: Option<PathBuf> = None;
    let mut dump: Option<PathBuf> = None;
    let mut verbose = false;
    let mut chunks_only = false;
    let mut hybrid_weights = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().map(PathBuf::from).context(USAGE);
        match arg.as_str() {
            "--set" => set_dir = value()?,
            "--recording" => recording = Some(value()?),
            "--json" => json_out = Some(value()?),
            "--dump-texts" => dump = Some(value()?),
            "--verbose" | "-v" => verbose = true,
            "--chunks" => chunks_only = true,
            "--hybrid-weights" => {
                let v = args.next().context(USAGE)?;
                let (b, w) = v.split_once(',').context("--hybrid-weights BM25,VECTOR")?;
                hybrid_weights = Some((b.trim().parse()?, w.trim().parse()?));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let set = EvalSet::load(&set_dir)?;
    if chunks_only {
        for d in &set.documents {
            println!("{:<24} {:>4} chunks", d.id, d.chunks.len());
            if verbose {
                for (i, text) in d.chunks.iter().enumerate() {
                    println!("--- {} #{i}\n{text}", d.id);
                }
            }
        }
        println!(
            "{} documents, {} chunks, {} questions",
            set.documents.len(),
            set.chunk_count(),
            set.questions.len()
        );
        return Ok(());
    }
    let recording_path = recording.unwrap_or_else(|| set_dir.join(DEFAULT_RECORDING));
    let recording = if dump.is_some() && !recording_path.exists() {
        // Nothing recorded yet: an empty recording, every text a miss.
        Recording::parse(
            r#"{"model":"sentence-transformers/all-MiniLM-L6-v2","deployment":"all-minilm-l6-v2",
                "dimensions":384,"encoding":"f16le-base64","vectors":{}}"#,
            "(empty)",
        )?
    } else {
        Recording::load(&recording_path)?
    };
    let on_miss = if dump.is_some() {
        OnMiss::Hashed
    } else {
        OnMiss::Error
    };
    let outcome = run(
        &set,
        recording,
        RunOptions {
            on_miss,
            hybrid_weights,
        },
    )?;
    if let Some(path) = dump {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&outcome.embedded_texts)? + "\n",
        )?;
        println!(
            "wrote {} texts to {} ({} not in the current recording); now record them:\n  \
             python3 tests/fixtures/eval/record.py --texts {}",
            outcome.embedded_texts.len(),
            path.display(),
            outcome.report.recording_misses,
            path.display()
        );
        return Ok(());
    }
    let report = &outcome.report;
    print!("{}", report.table());
    if verbose {
        println!();
        for line in &report.details {
            println!("  {line}");
        }
    }
    if let Some(path) = json_out {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, serde_json::to_string_pretty(report)? + "\n")?;
    }
    Ok(())
}
