//! The vector layout: how embeddings are stored so a per-request component
//! can search them without reading one SQLite row per vector.
//!
//! * Each chunk keeps its full-precision vector in `rs_chunks.vector`
//!   (little-endian `f32`, `4 × d` bytes) — read only for the few candidates
//!   that get exactly rescored.
//! * Vectors are also appended to **blocks** (`rs_vector_blocks`), 1,024 per
//!   row, each block holding for every slot: the chunk id (`i64` LE; `0` is a
//!   tombstone), the sign bits (`⌈d/8⌉` bytes, bit `i` set when `x[i] > 0`)
//!   and int8 codes (`d` bytes) with one `f32` LE scale per vector
//!   (`x[i] ≈ code[i] × scale`, symmetric, `scale = max|x| / 127`).
//!   100k vectors are ~98 rows: a binary → int8 → f32 cascade reads the
//!   blocks, then the top candidates' full vectors.
//! * Deletes tombstone slots; [`needs_compaction`] says when a version's
//!   blocks should be rewritten. All block writes happen in the same
//!   transaction as the document's other writes.

/// Vectors per block row.
pub const BLOCK_CAPACITY: usize = 1024;

/// `f32` little-endian bytes of `v`.
pub fn encode_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The vector in `bytes` (little-endian `f32`); `None` if the length is not a multiple of 4.
pub fn decode_f32(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Sign bits of `v`, `⌈d/8⌉` bytes, least significant bit first.
pub fn binary_code(v: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; v.len().div_ceil(8)];
    for (i, x) in v.iter().enumerate() {
        if *x > 0.0 {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Symmetric int8 quantisation: `(codes, scale)` with `x ≈ code × scale`.
pub fn int8_code(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    let codes = v
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (codes, scale)
}

/// One block row, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub dimensions: usize,
    pub ids: Vec<i64>,
    pub bits: Vec<u8>,
    pub codes: Vec<i8>,
    pub scales: Vec<f32>,
}

impl Block {
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions,
            ids: Vec::new(),
            bits: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.ids.len() >= BLOCK_CAPACITY
    }

    /// Live (not tombstoned) slots.
    pub fn live(&self) -> usize {
        self.ids.iter().filter(|id| **id != 0).count()
    }

    /// Appends one vector for `chunk_id` (non-zero).
    pub fn push(&mut self, chunk_id: i64, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dimensions);
        debug_assert_ne!(chunk_id, 0);
        self.ids.push(chunk_id);
        self.bits.extend(binary_code(v));
        let (codes, scale) = int8_code(v);
        self.codes.extend(codes);
        self.scales.push(scale);
    }

    /// Tombstones every slot whose id is in `ids`; returns how many.
    pub fn tombstone(&mut self, ids: &std::collections::HashSet<i64>) -> usize {
        let mut n = 0;
        for slot in self.ids.iter_mut() {
            if *slot != 0 && ids.contains(slot) {
                *slot = 0;
                n += 1;
            }
        }
        n
    }

    /// The four BLOB columns: ids, bits, codes, scales.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
        (
            self.ids.iter().flat_map(|x| x.to_le_bytes()).collect(),
            self.bits.clone(),
            self.codes.iter().map(|c| *c as u8).collect(),
            self.scales.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
    }

    /// Decodes the four BLOB columns; `None` when their lengths disagree.
    pub fn decode(
        dimensions: usize,
        ids: &[u8],
        bits: &[u8],
        codes: &[u8],
        scales: &[u8],
    ) -> Option<Self> {
        if !ids.len().is_multiple_of(8) {
            return None;
        }
        let n = ids.len() / 8;
        if bits.len() != n * dimensions.div_ceil(8)
            || codes.len() != n * dimensions
            || scales.len() != n * 4
        {
            return None;
        }
        Some(Self {
            dimensions,
            ids: ids
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            bits: bits.to_vec(),
            codes: codes.iter().map(|b| *b as i8).collect(),
            scales: decode_f32(scales)?,
        })
    }
}

/// Whether a version's blocks carry enough tombstones to be worth rewriting.
pub fn needs_compaction(slots: usize, live: usize) -> bool {
    slots >= BLOCK_CAPACITY && (slots - live) * 4 > slots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_round_trips_bit_exactly() {
        let v = vec![0.0, -1.5, 3.25e-7, f32::MAX];
        assert_eq!(decode_f32(&encode_f32(&v)).unwrap(), v);
        assert!(decode_f32(&[1, 2, 3]).is_none());
    }

    #[test]
    fn binary_code_sets_bits_for_positive_components() {
        let code = binary_code(&[1.0, -1.0, 0.0, 2.0, 0.5, -3.0, 1.0, 1.0, 1.0]);
        assert_eq!(code, vec![0b1101_1001, 0b1]);
    }

    #[test]
    fn int8_codes_reconstruct_within_half_a_step() {
        let v: Vec<f32> = (0..64).map(|i| ((i as f32) * 0.37).sin()).collect();
        let (codes, scale) = int8_code(&v);
        for (x, c) in v.iter().zip(&codes) {
            assert!((x - *c as f32 * scale).abs() <= scale / 2.0 + 1e-6);
        }
        assert_eq!(int8_code(&[0.0, 0.0]), (vec![0, 0], 0.0));
    }

    #[test]
    fn blocks_round_trip_and_tombstone() {
        let mut b = Block::new(3);
        b.push(7, &[1.0, -2.0, 0.5]);
        b.push(9, &[-1.0, 2.0, 0.0]);
        let (ids, bits, codes, scales) = b.encode();
        let decoded = Block::decode(3, &ids, &bits, &codes, &scales).unwrap();
        assert_eq!(decoded, b);
        let mut d = decoded;
        assert_eq!(d.tombstone(&[9].into_iter().collect()), 1);
        assert_eq!(d.live(), 1);
        assert!(Block::decode(3, &ids[..8], &bits, &codes, &scales).is_none());
    }

    #[test]
    fn compaction_starts_past_a_quarter_of_tombstones() {
        assert!(!needs_compaction(10, 1));
        assert!(!needs_compaction(2048, 1600));
        assert!(needs_compaction(2048, 1500));
    }
}
