//! The machine's speed in this sitting, for the benchmarks to print beside
//! their numbers.
//!
//! The development VM's speed drifts by up to 40 % between sittings (the same
//! build's ingest measured 11-16 MB/s in one, 24-29 in another), so a number
//! means little without the speed of the machine that produced it. Three
//! fixed native workloads stand for what the benchmarks spend time on: integer
//! work on a cached buffer (the components' parsing and hashing), touching
//! fresh memory (page faults: new linear memory, SQLite's pages) and SQLite
//! inserts into an FTS5 table. Each is the best of three runs.

use std::time::Instant;

use anyhow::Result;

/// Milliseconds of each reference workload (lower is faster).
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// FNV-1a over a 4 MiB buffer, 16 times (64 MiB hashed).
    pub cpu_ms: f64,
    /// 256 MiB of newly mapped memory written once.
    pub fresh_memory_ms: f64,
    /// 20,000 rows of 500 bytes inserted into an in-memory table with an
    /// FTS5 index, in one transaction.
    pub sqlite_ms: f64,
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "machine reference (best of 3, ms; lower is faster): cpu {:.1}, fresh memory {:.1}, sqlite {:.1}",
            self.cpu_ms, self.fresh_memory_ms, self.sqlite_ms
        )
    }
}

/// Runs the three workloads.
pub fn measure() -> Result<Reference> {
    Ok(Reference {
        cpu_ms: best_of_3(|| {
            let buffer: Vec<u8> = (0..4u32 << 20)
                .map(|i| i.wrapping_mul(2_654_435_761) as u8)
                .collect();
            let start = Instant::now();
            let mut hash = 0xcbf2_9ce4_8422_2325u64;
            for _ in 0..16 {
                for b in &buffer {
                    hash ^= u64::from(*b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
            }
            std::hint::black_box(hash);
            Ok(start.elapsed())
        })?,
        fresh_memory_ms: best_of_3(|| {
            let start = Instant::now();
            let mut memory = vec![0u8; 256 << 20];
            for page in memory.chunks_mut(4096) {
                page[0] = 1;
            }
            std::hint::black_box(&memory);
            drop(memory);
            Ok(start.elapsed())
        })?,
        sqlite_ms: best_of_3(|| {
            let db = rusqlite::Connection::open_in_memory()?;
            db.execute_batch(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
                 CREATE VIRTUAL TABLE f USING fts5 (body, content = 't', content_rowid = 'id');",
            )?;
            let words = [
                "battery", "screen", "budget", "phone", "camera", "charger", "review", "price",
            ];
            let rows: Vec<String> = (0..20_000usize)
                .map(|i| {
                    let mut text = String::with_capacity(520);
                    let mut k = i;
                    while text.len() < 500 {
                        text.push_str(words[k % words.len()]);
                        text.push(' ');
                        k = k.wrapping_mul(31).wrapping_add(7);
                    }
                    text
                })
                .collect();
            let start = Instant::now();
            let tx = db.unchecked_transaction()?;
            {
                let mut insert = tx.prepare("INSERT INTO t (id, body) VALUES (?1, ?2)")?;
                for (i, text) in rows.iter().enumerate() {
                    insert.execute(rusqlite::params![i as i64, text])?;
                }
            }
            tx.execute("INSERT INTO f (rowid, body) SELECT id, body FROM t", [])?;
            tx.commit()?;
            Ok(start.elapsed())
        })?,
    })
}

fn best_of_3(mut run: impl FnMut() -> Result<std::time::Duration>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        best = best.min(run()?.as_secs_f64() * 1000.0);
    }
    Ok(best)
}
