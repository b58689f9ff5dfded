//! Ranking metrics, as pure functions of one question's ranked hits.
//!
//! A question names its document and one or more *evidence* strings, each
//! on its own enough to answer it (alternative wordings of the answer in
//! that document). A hit is **relevant** when it is a chunk of that
//! document containing at least one evidence string (compared after
//! [`normalise`]). With overlapping chunks several chunks can be relevant;
//! the answer still counts as one relevant item.
//!
//! * **recall@k**: 1 when a relevant chunk is in the top k, else 0 — the
//!   share of the question's one answer that was retrieved (averaged over
//!   questions: the share of questions whose answer is in the top k);
//! * **reciprocal rank**: 1 / rank of the first relevant hit (0 when none
//!   is retrieved) — averaged, MRR;
//! * **nDCG@k**: binary gains, `1 / log2(rank + 1)` summed over relevant
//!   hits in the top k, divided by the same sum for an ideal ranking that
//!   puts all of the document's relevant chunks (at most k) first.

/// Lowercase, whitespace collapsed to single spaces, trimmed.
pub fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// One retrieved chunk, as the metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub document: String,
    /// [`normalise`]d text.
    pub text: String,
}

impl Ranked {
    pub fn new(document: &str, text: &str) -> Self {
        Self {
            document: document.to_owned(),
            text: normalise(text),
        }
    }
}

/// What answers a question: its document and evidence strings (normalised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gold {
    pub document: String,
    pub evidence: Vec<String>,
    /// How many chunks of the document contain some evidence (the ideal
    /// ranking's length for nDCG).
    pub relevant_chunks: usize,
}

impl Gold {
    /// Whether `hit` contains some evidence of this question.
    pub fn is_relevant(&self, hit: &Ranked) -> bool {
        hit.document == self.document && self.evidence.iter().any(|e| hit.text.contains(e))
    }
}

/// 1 when one of the first `k` hits is relevant, else 0.
pub fn recall_at(gold: &Gold, hits: &[Ranked], k: usize) -> f64 {
    if hits.iter().take(k).any(|h| gold.is_relevant(h)) {
        1.0
    } else {
        0.0
    }
}

/// 1 / rank of the first relevant hit; 0 when none.
pub fn reciprocal_rank(gold: &Gold, hits: &[Ranked]) -> f64 {
    hits.iter()
        .position(|h| gold.is_relevant(h))
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Normalised discounted cumulative gain of the first `k` hits (binary gains).
pub fn ndcg_at(gold: &Gold, hits: &[Ranked], k: usize) -> f64 {
    let gain = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    let dcg: f64 = hits
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, h)| gold.is_relevant(h))
        .map(|(i, _)| gain(i))
        .sum();
    let ideal: f64 = (0..gold.relevant_chunks.min(k)).map(gain).sum();
    if ideal == 0.0 { 0.0 } else { dcg / ideal }
}

/// Means of the metrics over questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Scores {
    pub questions: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub mrr: f64,
    pub ndcg_at_10: f64,
}

/// Accumulates per-question metrics into [`Scores`].
#[derive(Debug, Clone, Default)]
pub struct Tally {
    n: usize,
    sums: [f64; 5],
}

impl Tally {
    /// Add one question's ranking.
    pub fn add(&mut self, gold: &Gold, hits: &[Ranked]) {
        self.n += 1;
        let values = [
            recall_at(gold, hits, 1),
            recall_at(gold, hits, 5),
            recall_at(gold, hits, 10),
            reciprocal_rank(gold, hits),
            ndcg_at(gold, hits, 10),
        ];
        for (sum, v) in self.sums.iter_mut().zip(values) {
            *sum += v;
        }
    }

    /// The means (all 0 without questions).
    pub fn scores(&self) -> Scores {
        let mean = |i: usize| {
            if self.n == 0 {
                0.0
            } else {
                self.sums[i] / self.n as f64
            }
        };
        Scores {
            questions: self.n,
            recall_at_1: mean(0),
            recall_at_5: mean(1),
            recall_at_10: mean(2),
            mrr: mean(3),
            ndcg_at_10: mean(4),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gold(evidence: &[&str], relevant_chunks: usize) -> Gold {
        Gold {
            document: "d".into(),
            evidence: evidence.iter().map(|e| normalise(e)).collect(),
            relevant_chunks,
        }
    }

    fn hits(list: &[(&str, &str)]) -> Vec<Ranked> {
        list.iter().map(|(d, t)| Ranked::new(d, t)).collect()
    }

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(normalise("  The  Quick\n\tFox "), "the quick fox");
    }

    #[test]
    fn a_relevant_hit_is_a_chunk_of_the_document_holding_evidence() {
        let g = gold(&["64 MiB"], 1);
        assert!(g.is_relevant(&Ranked::new("d", "uses 64  MiB of memory")));
        assert!(!g.is_relevant(&Ranked::new("other", "uses 64 MiB of memory")));
        assert!(!g.is_relevant(&Ranked::new("d", "uses 32 MiB")));
    }

    #[test]
    fn recall_is_whether_any_evidence_is_in_the_top_k() {
        let g = gold(&["alpha", "beta"], 2);
        let h = hits(&[("d", "x"), ("x", "alpha"), ("d", "beta"), ("d", "alpha")]);
        assert_eq!(recall_at(&g, &h, 1), 0.0);
        assert_eq!(recall_at(&g, &h, 2), 0.0);
        assert_eq!(recall_at(&g, &h, 3), 1.0);
        assert_eq!(recall_at(&g, &h, 10), 1.0);
        assert_eq!(recall_at(&gold(&[], 0), &h, 10), 0.0);
    }

    #[test]
    fn reciprocal_rank_is_of_the_first_relevant_hit() {
        let g = gold(&["alpha"], 1);
        assert_eq!(reciprocal_rank(&g, &hits(&[("d", "alpha")])), 1.0);
        assert_eq!(
            reciprocal_rank(&g, &hits(&[("d", "x"), ("d", "y"), ("d", "alpha")])),
            1.0 / 3.0
        );
        assert_eq!(reciprocal_rank(&g, &hits(&[("d", "x")])), 0.0);
    }

    #[test]
    fn ndcg_is_one_for_an_ideal_ranking_and_discounts_later_hits() {
        let g = gold(&["alpha"], 2);
        let ideal = hits(&[("d", "alpha 1"), ("d", "alpha 2"), ("d", "x")]);
        assert!((ndcg_at(&g, &ideal, 10) - 1.0).abs() < 1e-12);
        // One relevant chunk at rank 2 of two that exist:
        // (1/log2 3) / (1 + 1/log2 3).
        let late = hits(&[("d", "x"), ("d", "alpha")]);
        let expected = (1.0 / 3f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&g, &late, 10) - expected).abs() < 1e-12);
        assert_eq!(ndcg_at(&g, &late, 1), 0.0);
        assert_eq!(ndcg_at(&gold(&["alpha"], 0), &late, 10), 0.0);
    }

    #[test]
    fn tallies_means_over_questions() {
        let g = gold(&["alpha"], 1);
        let mut t = Tally::default();
        t.add(&g, &hits(&[("d", "alpha")]));
        t.add(&g, &hits(&[("d", "x"), ("d", "alpha")]));
        let s = t.scores();
        assert_eq!(s.questions, 2);
        assert_eq!(s.recall_at_1, 0.5);
        assert_eq!(s.recall_at_5, 1.0);
        assert_eq!(s.mrr, 0.75);
        assert_eq!(Tally::default().scores(), Scores::default());
    }
}
