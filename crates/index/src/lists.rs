//! Inverted lists over the sign bits, so a fresh instance reads a tenth of a
//! large version's blocks instead of all of them.
//!
//! * Below [`PARTITION_MIN`] vectors a version's blocks are one flat
//!   sequence (block numbers `0, 1, …`) and every query scans them all.
//! * When a write takes a version to [`PARTITION_MIN`] vectors, its vectors
//!   are **partitioned**: k-means in Hamming space over the sign bits
//!   ([`train`]) gives about `√n` lists, every vector goes to the list with
//!   the nearest centroid, and each list gets its own blocks, numbered
//!   [`block_number`]`(list, seq)` = `(list + 1) << 20 | seq`, so a list's
//!   blocks are one range of the primary key. The centroids go to
//!   `rs_vector_lists`, one row per version (`i8` per dimension: the mean of
//!   the members' ±1 signs × 127).
//! * Later writes append each vector to the last block of its nearest
//!   list. When the version has grown to twice the size it was trained at,
//!   it is partitioned again (more lists, fresh centroids); the cost is
//!   amortised like a growing array's.
//! * A query ranks the lists by the dot product of its floats with the
//!   centroids and reads the blocks of the best [`PROBE_SHARE`] of them
//!   ([`Lists::probe`]); the binary → asymmetric → exact cascade then runs
//!   on those vectors only. A query with a metadata filter reads every
//!   list, so a selective filter cannot starve the probed lists.
//!
//! Everything here is pure; `service` stores it and `search` reads it.

/// Vectors a version needs before it is partitioned.
pub const PARTITION_MIN: usize = 32_768;

/// Share of the lists a query reads (at least one).
pub const PROBE_SHARE: f64 = 0.1;

/// Block numbers of list `l` are `(l + 1) << LIST_SHIFT | seq`.
pub const LIST_SHIFT: u32 = 20;

/// Sample points per list used to train the centroids.
const TRAIN_PER_LIST: usize = 32;

/// k-means rounds over the sample.
const TRAIN_ROUNDS: usize = 8;

/// How many lists a version of `vectors` vectors gets: `√n`, within 16..=4096.
pub fn list_count(vectors: usize) -> usize {
    ((vectors as f64).sqrt().round() as usize).clamp(16, 4096)
}

/// The block number of block `seq` of list `list`.
pub fn block_number(list: usize, seq: i64) -> i64 {
    block_in(list as i64 + 1, seq)
}

/// The block number of block `seq` under list key `key` (see [`block_key`]).
pub fn block_in(key: i64, seq: i64) -> i64 {
    (key << LIST_SHIFT) | seq
}

/// Which key a block number belongs to: `0` = the flat, unpartitioned
/// sequence; `k` = list `k − 1`.
pub fn block_key(block: i64) -> i64 {
    block >> LIST_SHIFT
}

/// Whether a version holding `slots` vectors should be (re)partitioned,
/// given the size its current lists were trained at (if any) and the size
/// partitioning starts at (normally [`PARTITION_MIN`]).
pub fn needs_partition(slots: usize, trained: Option<usize>, min: usize) -> bool {
    match trained {
        None => slots >= min,
        Some(t) => slots >= min && slots >= 2 * t.max(1),
    }
}

/// One version's list centroids.
#[derive(Debug, Clone, PartialEq)]
pub struct Lists {
    pub dimensions: usize,
    /// Live vectors when the centroids were trained.
    pub trained: usize,
    /// `dimensions` bytes per list: the mean of its members' ±1 signs × 127.
    centroids: Vec<i8>,
    /// Each centroid's sign bits as 64-bit words (what a vector is assigned by).
    words: Vec<u64>,
}

impl Lists {
    fn new(dimensions: usize, trained: usize, centroids: Vec<i8>) -> Self {
        let per_words = dimensions.div_ceil(64);
        let mut words = vec![0u64; centroids.len() / dimensions.max(1) * per_words];
        for (l, c) in centroids.chunks_exact(dimensions.max(1)).enumerate() {
            for (i, x) in c.iter().enumerate() {
                if *x > 0 {
                    words[l * per_words + i / 64] |= 1 << (i % 64);
                }
            }
        }
        Self {
            dimensions,
            trained,
            centroids,
            words,
        }
    }

    /// Number of lists.
    pub fn len(&self) -> usize {
        self.centroids.len() / self.dimensions.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// List `l`'s centroid (the mean of its members' ±1 signs × 127).
    fn centroid(&self, l: usize) -> &[i8] {
        &self.centroids[l * self.dimensions..(l + 1) * self.dimensions]
    }

    /// The `centroids` BLOB column.
    pub fn encode(&self) -> Vec<u8> {
        self.centroids.iter().map(|x| *x as u8).collect()
    }

    /// Decodes the `centroids` column; `None` when it does not hold a whole
    /// number of `dimensions`-byte centroids.
    pub fn decode(dimensions: usize, trained: usize, bytes: &[u8]) -> Option<Self> {
        if dimensions == 0 || bytes.is_empty() || !bytes.len().is_multiple_of(dimensions) {
            return None;
        }
        Some(Self::new(
            dimensions,
            trained,
            bytes.iter().map(|x| *x as i8).collect(),
        ))
    }

    /// The list whose centroid's sign bits are nearest `code` (sign bits of
    /// a vector, `⌈d/8⌉` bytes); ties go to the lower list.
    pub fn nearest(&self, code: &[u8]) -> usize {
        nearest_word(&words_of(code), &self.words, self.dimensions.div_ceil(64))
    }

    /// The list `v` belongs to: of the [`SHORTLIST`] lists nearest its sign
    /// bits, the one whose centroid has the largest dot product with `v`
    /// (sign bits alone put 5% of true neighbours in lists a query does not
    /// read; the floats, 1%).
    pub fn assign(&self, v: &[f32]) -> usize {
        let code = sign_words(v);
        let per = self.dimensions.div_ceil(64).max(1);
        // The SHORTLIST smallest (distance, list), in order, kept by
        // insertion: most lists are farther than the current last and cost
        // one comparison (no vector of all distances to select from).
        let mut near = [(u32::MAX, usize::MAX); SHORTLIST];
        for (l, c) in self.words.chunks_exact(per).enumerate() {
            let d = word_distance(c, &code);
            if d >= near[SHORTLIST - 1].0 {
                continue;
            }
            let at = near.partition_point(|n| n.0 <= d);
            near.copy_within(at..SHORTLIST - 1, at + 1);
            near[at] = (d, l);
        }
        let mut best = (f32::NEG_INFINITY, 0);
        for (_, l) in near.into_iter().take_while(|n| n.1 != usize::MAX) {
            let s = dot_i8(self.centroid(l), v);
            if s > best.0 {
                best = (s, l);
            }
        }
        best.1
    }

    /// The lists a query reads: the best [`PROBE_SHARE`] of them (at least
    /// one) by the dot product of `query` with each centroid, best first,
    /// then the list nearest its sign bits if not among them (where the
    /// query's own vector would be stored).
    pub fn probe(&self, query: &[f32]) -> Vec<usize> {
        let n = ((self.len() as f64 * PROBE_SHARE).ceil() as usize).clamp(1, self.len().max(1));
        self.probe_n(query, n)
    }

    /// [`Lists::probe`] reading `n` lists by dot product.
    fn probe_n(&self, query: &[f32], n: usize) -> Vec<usize> {
        let mut scored: Vec<(usize, f32)> = self
            .centroids
            .chunks_exact(self.dimensions.max(1))
            .map(|c| dot_i8(c, query))
            .enumerate()
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut chosen: Vec<usize> = scored.into_iter().take(n).map(|(l, _)| l).collect();
        // Plus the list a stored copy of the query would have been put in.
        if query.len() == self.dimensions {
            let home = self.nearest(&crate::vectors::binary_code(query));
            if !chosen.contains(&home) {
                chosen.push(home);
            }
        }
        chosen
    }
}

/// Lists whose centroids' dot products decide [`Lists::assign`].
const SHORTLIST: usize = 16;

/// `Σ cᵢ·vᵢ` in eight f32 lanes.
fn dot_i8(c: &[i8], v: &[f32]) -> f32 {
    // Eight lanes over fixed-size chunks: no bounds checks, so the loop
    // becomes `simd128` (widen, convert, multiply-add) in wasm.
    let mut lanes = [0f32; 8];
    let (cc, vc) = (c.chunks_exact(8), v.chunks_exact(8));
    let done = cc.len().min(vc.len()) * 8;
    for (c8, v8) in cc.zip(vc) {
        let (Ok(c8), Ok(v8)) = (<&[i8; 8]>::try_from(c8), <&[f32; 8]>::try_from(v8)) else {
            continue;
        };
        for k in 0..8 {
            lanes[k] += f32::from(c8[k]) * v8[k];
        }
    }
    let rest: f32 = c[done.min(c.len())..]
        .iter()
        .zip(&v[done.min(v.len())..])
        .map(|(c, v)| f32::from(*c) * v)
        .sum();
    lanes.iter().sum::<f32>() + rest
}

/// The sign bits of `v` (bit `i` set when `v[i] > 0`, as
/// [`crate::vectors::binary_code`]) as 64-bit words.
fn sign_words(v: &[f32]) -> Vec<u64> {
    v.chunks(64)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u64, |w, (i, x)| w | (u64::from(*x > 0.0) << i))
        })
        .collect()
}

fn words_of(code: &[u8]) -> Vec<u64> {
    code.chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect()
}

/// Bits that differ between two codes held as 64-bit words.
fn word_distance(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(a, b)| (a ^ b).count_ones()).sum()
}

fn nearest_word(code: &[u64], centroids: &[u64], per: usize) -> usize {
    let mut best = (u32::MAX, 0);
    for (l, c) in centroids.chunks_exact(per.max(1)).enumerate() {
        let d = word_distance(c, code);
        if d < best.0 {
            best = (d, l);
        }
    }
    best.1
}

/// Trains `lists` centroids on `codes` (the sign bits of every live vector,
/// `⌈d/8⌉` bytes each) and assigns every code to one: k-means in Hamming
/// space on an evenly spaced sample, seeded farthest-first (a centroid's bits are its members'
/// majority), then one pass over all codes, whose per-list sign means become
/// the stored centroids. Deterministic. Returns the lists and each code's list.
pub fn train(codes: &[&[u8]], dimensions: usize, lists: usize) -> (Lists, Vec<usize>) {
    let per = dimensions.div_ceil(64);
    let lists = lists.clamp(1, codes.len().max(1));
    let words: Vec<Vec<u64>> = codes.iter().map(|c| words_of(c)).collect();
    let sample_len = (lists * TRAIN_PER_LIST).min(words.len());
    let sample: Vec<&[u64]> = (0..sample_len)
        .map(|k| words[k * words.len() / sample_len.max(1)].as_slice())
        .collect();
    // Seeds by farthest-first traversal: each next seed is the sample point
    // farthest from the seeds so far (spread seeds; evenly spaced ones can
    // all land in one cluster when the input is ordered).
    let mut centroids: Vec<u64> = Vec::with_capacity(lists * per);
    let mut nearest_seed = vec![u32::MAX; sample.len()];
    let mut next = 0;
    for _ in 0..lists {
        let seed = sample[next];
        centroids.extend_from_slice(seed);
        for (k, code) in sample.iter().enumerate() {
            nearest_seed[k] = nearest_seed[k].min(word_distance(seed, code));
        }
        next = (0..sample.len())
            .max_by_key(|k| (nearest_seed[*k], std::cmp::Reverse(*k)))
            .unwrap_or(0);
    }
    let mut ones = vec![0u32; lists * dimensions];
    let mut counts = vec![0u32; lists];
    for round in 0..TRAIN_ROUNDS {
        ones.iter_mut().for_each(|x| *x = 0);
        counts.iter_mut().for_each(|x| *x = 0);
        for code in &sample {
            let l = nearest_word(code, &centroids, per);
            counts[l] += 1;
            add_ones(&mut ones[l * dimensions..(l + 1) * dimensions], code);
        }
        for l in 0..lists {
            let c = &mut centroids[l * per..(l + 1) * per];
            if counts[l] == 0 {
                // An empty list takes a sample point, a different one each round.
                c.copy_from_slice(sample[(round * lists + l * 7 + 1) % sample.len()]);
                continue;
            }
            c.iter_mut().for_each(|w| *w = 0);
            for (i, n) in ones[l * dimensions..(l + 1) * dimensions]
                .iter()
                .enumerate()
            {
                if 2 * n > counts[l] {
                    c[i / 64] |= 1 << (i % 64);
                }
            }
        }
    }
    // Assign everything, and store each list's sign means.
    ones.iter_mut().for_each(|x| *x = 0);
    counts.iter_mut().for_each(|x| *x = 0);
    let assigned: Vec<usize> = words
        .iter()
        .map(|code| {
            let l = nearest_word(code, &centroids, per);
            counts[l] += 1;
            add_ones(&mut ones[l * dimensions..(l + 1) * dimensions], code);
            l
        })
        .collect();
    let means: Vec<i8> = (0..lists)
        .flat_map(|l| {
            let (ones, n) = (&ones[l * dimensions..(l + 1) * dimensions], counts[l]);
            ones.iter().map(move |k| {
                if n == 0 {
                    0
                } else {
                    // (2·ones − n) / n ∈ [−1, 1], × 127.
                    ((2 * *k as i64 - n as i64) * 127 / n as i64) as i8
                }
            })
        })
        .collect();
    (Lists::new(dimensions, codes.len(), means), assigned)
}

/// Adds each set bit of `code` to `ones` (one counter per dimension).
fn add_ones(ones: &mut [u32], code: &[u64]) {
    for (w, chunk) in code.iter().zip(ones.chunks_mut(64)) {
        let mut w = *w;
        while w != 0 {
            chunk[w.trailing_zeros() as usize] += 1;
            w &= w - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::{binary_code, hamming};

    /// Hamming distance of `code` to list `list`'s centroid bits.
    fn distance_to(lists: &Lists, list: usize, code: &[u8]) -> u32 {
        let per = lists.dimensions.div_ceil(64);
        let c: Vec<u8> = lists.words[list * per..(list + 1) * per]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .take(code.len())
            .collect();
        hamming(&c, code)
    }

    /// The sign codes of `points`, and [`train`] on them.
    fn train_on(
        points: &[Vec<f32>],
        dims: usize,
        lists: usize,
    ) -> (Vec<Vec<u8>>, Lists, Vec<usize>) {
        let codes: Vec<Vec<u8>> = points.iter().map(|p| binary_code(p)).collect();
        let refs: Vec<&[u8]> = codes.iter().map(|c| c.as_slice()).collect();
        let (lists, assigned) = train(&refs, dims, lists);
        (codes, lists, assigned)
    }

    /// Deterministic pseudo-random numbers (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    /// `topics` directions, `per` noisy points around each.
    fn clustered(topics: usize, per: usize, dims: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let centres: Vec<Vec<f32>> = (0..topics)
            .map(|_| (0..dims).map(|_| rng.next()).collect())
            .collect();
        let mut points = Vec::new();
        let mut topic = Vec::new();
        for _ in 0..per {
            for (t, c) in centres.iter().enumerate() {
                points.push(c.iter().map(|x| x + 0.6 * rng.next()).collect());
                topic.push(t);
            }
        }
        (points, topic)
    }

    /// The assignment as first written: every distance collected, the
    /// shortlist selected and sorted.
    fn assign_by_selection(lists: &Lists, v: &[f32]) -> usize {
        let code = words_of(&binary_code(v));
        let per = lists.dimensions.div_ceil(64);
        let mut near: Vec<(u32, usize)> = lists
            .words
            .chunks_exact(per.max(1))
            .map(|c| word_distance(c, &code))
            .enumerate()
            .map(|(l, d)| (d, l))
            .collect();
        let k = SHORTLIST.min(near.len());
        near.select_nth_unstable(k - 1);
        near.truncate(k);
        near.sort_unstable();
        let mut best = (f32::NEG_INFINITY, 0);
        for (_, l) in near {
            let s = dot_i8(lists.centroid(l), v);
            if s > best.0 {
                best = (s, l);
            }
        }
        best.1
    }

    #[test]
    fn assignment_by_insertion_matches_the_selection_it_replaced() {
        // Odd dimensions (a partial last word), more and fewer lists than
        // the shortlist, and duplicated centroids (equal distances).
        for (dims, n_lists) in [(100, 40), (256, 9), (70, 16), (1536, 64)] {
            let (points, _) = clustered(12, 30, dims);
            let (_, lists, _) = train_on(&points, dims, n_lists);
            let mut dup = lists.clone();
            let per = dims.div_ceil(64);
            let first: Vec<u64> = dup.words[..per].to_vec();
            for l in (1..dup.len()).step_by(3) {
                dup.words[l * per..(l + 1) * per].copy_from_slice(&first);
            }
            for l in [&lists, &dup] {
                for p in &points {
                    assert_eq!(
                        l.assign(p),
                        assign_by_selection(l, p),
                        "{dims} d, {n_lists} lists"
                    );
                }
            }
            // Sign words equal the byte codes read as words.
            for p in points.iter().take(20) {
                assert_eq!(sign_words(p), words_of(&binary_code(p)));
            }
        }
    }

    #[test]
    fn block_numbers_keep_lists_apart() {
        assert_eq!(block_key(0), 0);
        assert_eq!(block_key(5), 0);
        assert_eq!(block_number(0, 0), 1 << LIST_SHIFT);
        assert_eq!(block_key(block_number(0, 3)), 1);
        assert_eq!(block_key(block_number(41, 7)), 42);
        assert!(block_number(3, (1 << LIST_SHIFT) - 1) < block_number(4, 0));
    }

    #[test]
    fn partition_starts_at_the_minimum_and_again_at_twice_the_trained_size() {
        let min = PARTITION_MIN;
        assert!(!needs_partition(min - 1, None, min));
        assert!(needs_partition(min, None, min));
        assert!(!needs_partition(2 * min - 1, Some(min), min));
        assert!(needs_partition(2 * min, Some(min), min));
        assert!(needs_partition(100, None, 100));
        assert_eq!(list_count(100), 16);
        assert_eq!(list_count(40_000), 200);
        assert_eq!(list_count(100_000_000), 4096);
    }

    #[test]
    fn training_separates_topics_and_assigns_each_vector_its_nearest_list() {
        let dims = 96;
        let (points, topic) = clustered(8, 40, dims);
        let (codes, lists, assigned) = train_on(&points, dims, 8);
        assert_eq!(lists.len(), 8);
        assert_eq!(assigned.len(), points.len());
        for (code, l) in codes.iter().zip(&assigned) {
            assert_eq!(lists.nearest(code), *l);
            let best = (0..lists.len())
                .map(|k| distance_to(&lists, k, code))
                .min()
                .unwrap();
            assert_eq!(distance_to(&lists, *l, code), best);
        }
        // Points of one topic share a list, and different topics do not.
        for t in 0..8 {
            let mine: Vec<usize> = (0..points.len())
                .filter(|k| topic[*k] == t)
                .map(|k| assigned[k])
                .collect();
            assert!(mine.iter().all(|l| *l == mine[0]), "topic {t}: {mine:?}");
        }
        let mut firsts: Vec<usize> = (0..8).map(|t| assigned[t]).collect();
        firsts.sort();
        firsts.dedup();
        assert_eq!(firsts.len(), 8);
        // A query near a topic probes that topic's list first.
        let (queries, qtopic) = clustered(8, 1, dims);
        for (q, t) in queries.iter().zip(qtopic) {
            let want = assigned[(0..points.len()).find(|k| topic[*k] == t).unwrap()];
            assert_eq!(lists.probe(q)[0], want);
        }
    }

    #[test]
    fn probe_reads_a_share_of_the_lists_and_centroids_round_trip() {
        let dims = 64;
        let (points, _) = clustered(40, 5, dims);
        let (codes, lists, _) = train_on(&points, dims, 40);
        let probed = lists.probe(&points[0]);
        assert!((4..=5).contains(&probed.len()), "{probed:?}");
        assert!(probed.contains(&lists.nearest(&codes[0])));
        let back = Lists::decode(dims, lists.trained, &lists.encode()).unwrap();
        assert_eq!(back, lists);
        assert_eq!(back.trained, points.len());
        assert!(Lists::decode(dims, 1, &lists.encode()[1..]).is_none());
        assert!(Lists::decode(dims, 1, &[]).is_none());
        assert!(Lists::decode(0, 1, &[1]).is_none());
    }

    #[test]
    fn training_on_fewer_codes_than_lists_makes_one_list_per_code() {
        let codes = [vec![0b1010_1010u8], vec![0b0101_0101u8]];
        let refs: Vec<&[u8]> = codes.iter().map(|c| c.as_slice()).collect();
        let (lists, assigned) = train(&refs, 8, 16);
        assert_eq!(lists.len(), 2);
        assert_ne!(assigned[0], assigned[1]);
    }
}
