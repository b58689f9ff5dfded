//! The vector layout: how embeddings are stored so a per-request component
//! can search them without reading one SQLite row per vector.
//!
//! * Each chunk's full vector is a row of its own in `rs_chunk_vectors`
//!   (`id` = the chunk's id), as little-endian IEEE **`f16`** (`2 × d`
//!   bytes, [`encode_f16`]; 3 KB at 1,536 dimensions, so a row never needs
//!   an overflow page) — read only for the few candidates
//!   that get rescored, all of them in one result row (see
//!   `search::vector_bytes`). Rows moved there by the schema-6 migration
//!   keep the `f32` bytes (`4 × d`) they had in `rs_chunks.vector`; a
//!   row's length tells the two apart ([`Stored::of`]). The embedding cache
//!   (`rs_embeddings`) holds the same `f16` bytes since schema 7 (its rows
//!   from before keep their `f32`), so a cached vector stores exactly as a
//!   fresh one.
//! * Sign bits are also appended to **blocks** (`rs_vector_blocks`), 1,024
//!   vectors per row: `ids` holds the chunk ids (`i64` LE; `0` is a
//!   tombstone) and `bits` the sign bits (`⌈d/8⌉` bytes per vector, bit `i`
//!   set when `x[i] > 0`). 100k vectors of 1,536 dimensions are 98 rows and
//!   19.6 MB; a fresh instance reads only `ids` and `bits` (the columns
//!   before the large ones, so SQLite never walks past them).
//! * The `codes` and `scales` columns held int8 codes in the first layout;
//!   new blocks store them empty, and nothing reads them. Reading 1,536 int8
//!   bytes per vector made a fresh 100k search read 174 MB; the asymmetric
//!   binary stage (`search::cascade`) replaced them.
//! * From [`crate::lists::PARTITION_MIN`] vectors on, a version's blocks are
//!   grouped by inverted list (block number `(list + 1) << 20 | seq`), so a
//!   query reads only the lists it probes (see [`crate::lists`]).
//! * Deletes tombstone slots; [`needs_compaction`] says when a version's
//!   blocks should be rewritten. All block writes happen in the same
//!   transaction as the document's other writes.

use std::sync::Arc;

/// Vectors per block row.
pub const BLOCK_CAPACITY: usize = 1024;

/// The `f32` codec of `rs_chunks.vector` (shared with the Azure client).
pub use ragspin_core::{decode_f32, encode_f32};

/// How a full vector is stored in `rs_chunk_vectors`, told by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Little-endian IEEE half precision, `2 × d` bytes (written since schema 6).
    F16,
    /// Little-endian `f32`, `4 × d` bytes (moved from `rs_chunks` by the schema-6 migration).
    F32,
}

impl Stored {
    /// The encoding of a stored vector of `len` bytes in a `dims`-dimensional version.
    pub fn of(len: usize, dims: usize) -> Option<Self> {
        if dims == 0 {
            None
        } else if len == dims * 2 {
            Some(Self::F16)
        } else if len == dims * 4 {
            Some(Self::F32)
        } else {
            None
        }
    }
}

/// `v` as little-endian IEEE `f16` (round to nearest even). Components
/// beyond the `f16` range (±65,504) are clamped and NaN is stored as 0, so
/// every stored value is finite. Embedding components are far inside the
/// range; the relative rounding error is at most 2⁻¹¹.
pub fn encode_f16(v: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; v.len() * 2];
    for (o, x) in out.chunks_exact_mut(2).zip(v) {
        let x = if x.is_nan() {
            0.0
        } else {
            x.clamp(-65504.0, 65504.0)
        };
        o.copy_from_slice(&f32_to_f16(x).to_le_bytes());
    }
    out
}

/// The bits of the `f16` nearest `x` (ties to even), for `|x| ≤ 65,504`
/// (NaN and larger magnitudes are the caller's to map). Branch-free, so
/// the encoding loop vectorises: a result below 2⁻¹⁴ (subnormal or zero)
/// is rounded by the FPU itself, adding 0.5 so the wanted bits land at the
/// bottom of the mantissa; a normal one is rebased by −112 in the exponent
/// with round-half-to-even done in integers (`0xfff` + the kept mantissa's
/// lowest bit).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> u16 {
    const HALF: u32 = 126 << 23; // 0.5f32: ((127 − 15) + (23 − 10) + 1) << 23
    const REBASE: u32 = (127 - 15) << 23;
    let bits = x.to_bits();
    let sign = (bits >> 16) & 0x8000;
    let abs = bits & 0x7fff_ffff;
    let subnormal = (f32::from_bits(abs) + f32::from_bits(HALF))
        .to_bits()
        .wrapping_sub(HALF);
    let odd = (abs >> 13) & 1;
    let normal = abs.wrapping_sub(REBASE).wrapping_add(0xfff + odd) >> 13;
    let h = if abs < 113 << 23 { subnormal } else { normal };
    (h | sign) as u16
}

/// One `f16` (its bits) as `f32`, exact for every finite value, normals and
/// subnormals alike: the 15 low bits shifted into an `f32`'s place carry the
/// exponent rebased by −112, which one multiply by 2¹¹² restores (the
/// integer-only form vectorises; infinities and NaN are never stored).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let magnitude = f32::from_bits((h & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(magnitude.to_bits() | ((h & 0x8000) << 16))
}

/// One little-endian `f16` (its first 2 bytes) as `f32`.
#[inline(always)]
pub fn f16_le(b: &[u8]) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// `f16` little-endian bytes decoded; `None` for an odd length.
pub fn decode_f16(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes
        .len()
        .is_multiple_of(2)
        .then(|| bytes.chunks_exact(2).map(f16_le).collect())
}

/// A stored full vector decoded (either encoding); `None` for a length that
/// is neither.
pub fn decode_stored(bytes: &[u8], dims: usize) -> Option<Vec<f32>> {
    match Stored::of(bytes.len(), dims)? {
        Stored::F32 => decode_f32(bytes),
        Stored::F16 => Some(bytes.chunks_exact(2).map(f16_le).collect()),
    }
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

/// [`binary_code`] of a vector stored as `f16` little-endian bytes, read
/// from the halves without decoding them: a half decodes ([`f16_to_f32`])
/// to a value `> 0` exactly when its bits are `0x0001..=0x7FFF` (sign clear,
/// not zero; the decoder reads the top exponent as a number, not as
/// infinity or NaN). Ingest builds a document's blocks with it.
pub fn binary_code_f16(bytes: &[u8]) -> Vec<u8> {
    let halves = bytes.len() / 2;
    let mut out = vec![0u8; halves.div_ceil(8)];
    for (i, h) in bytes.chunks_exact(2).enumerate() {
        let h = u16::from_le_bytes([h[0], h[1]]);
        if h.wrapping_sub(1) < 0x7FFF {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// One block row, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub dimensions: usize,
    pub ids: Vec<i64>,
    pub bits: Vec<u8>,
}

impl Block {
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions,
            ids: Vec::new(),
            bits: Vec::new(),
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
    }

    /// [`push`](Self::push) of a vector as its `f16` bytes.
    pub fn push_f16(&mut self, chunk_id: i64, halves: &[u8]) {
        debug_assert_eq!(halves.len() / 2, self.dimensions);
        debug_assert_ne!(chunk_id, 0);
        self.ids.push(chunk_id);
        self.bits.extend(binary_code_f16(halves));
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

    /// The `ids` and `bits` BLOB columns.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        (
            self.ids.iter().flat_map(|x| x.to_le_bytes()).collect(),
            self.bits.clone(),
        )
    }

    /// Decodes the `ids` and `bits` columns; `None` when their lengths disagree.
    pub fn decode(dimensions: usize, ids: &[u8], bits: &[u8]) -> Option<Self> {
        Some(Self {
            dimensions,
            ids: decode_ids(ids, bits.len(), dimensions.div_ceil(8))?,
            bits: bits.to_vec(),
        })
    }

    /// The sign bits of slot `slot`.
    pub fn code(&self, slot: usize) -> &[u8] {
        let n = self.dimensions.div_ceil(8);
        &self.bits[slot * n..(slot + 1) * n]
    }

    /// Copies slot `slot` (id and bits) of `from` to the end of this block.
    pub fn push_slot(&mut self, from: &Block, slot: usize) {
        self.ids.push(from.ids[slot]);
        self.bits.extend_from_slice(from.code(slot));
    }
}

/// The sign bits of one version's vectors as read from the blocks — each
/// block's `bits` BLOB kept as it is (no copy: a fresh instance at 100k
/// vectors would otherwise copy 19 MB once more), ids decoded alongside
/// (`0` = tombstone).
#[derive(Debug, Clone, Default)]
pub struct BitIndex {
    pub dimensions: usize,
    /// Bytes per vector, `⌈d/8⌉`.
    pub per: usize,
    pub blocks: Vec<Arc<BitBlock>>,
}

/// One block of [`BitIndex`].
#[derive(Debug, Clone, Default)]
pub struct BitBlock {
    pub ids: Vec<i64>,
    pub bits: Vec<u8>,
}

impl BitBlock {
    /// One block from its stored `ids` and `bits` columns (`per` bytes a
    /// vector); `None` when their lengths disagree.
    pub fn from_columns(ids: &[u8], bits: Vec<u8>, per: usize) -> Option<Self> {
        let ids = decode_ids(ids, bits.len(), per)?;
        Some(Self { ids, bits })
    }

    /// The sign bits of slot `slot`.
    pub fn code(&self, slot: usize, per: usize) -> &[u8] {
        &self.bits[slot * per..(slot + 1) * per]
    }
}

impl BitIndex {
    pub fn new(dimensions: usize) -> Self {
        Self {
            dimensions,
            per: dimensions.div_ceil(8),
            blocks: Vec::new(),
        }
    }

    /// Vectors held, tombstones included.
    pub fn len(&self) -> usize {
        self.blocks.iter().map(|b| b.ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.iter().all(|b| b.ids.is_empty())
    }

    /// Appends every slot of `block`.
    pub fn push_block(&mut self, block: &Block) {
        self.blocks.push(Arc::new(BitBlock {
            ids: block.ids.clone(),
            bits: block.bits.clone(),
        }));
    }
}

/// A block's `ids` column (`i64` LE each), checked against its `bits`
/// column of `bits_len` bytes at `per` bytes a vector.
fn decode_ids(ids: &[u8], bits_len: usize, per: usize) -> Option<Vec<i64>> {
    if !ids.len().is_multiple_of(8) || bits_len != ids.len() / 8 * per {
        return None;
    }
    Some(
        ids.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    )
}

/// 16-byte groups a `u8` lane can sum before it could overflow (8 per byte).
pub const LANE_GROUPS: usize = 31;

/// Bits that differ between two codes of the same length.
///
/// In wasm (`simd128`): per 16 bytes `v128.xor` + `i8x16.popcnt` +
/// `i8x16.add` into 16 `u8` lanes, widened once per [`LANE_GROUPS`] groups
/// (one `vpopcntb` per group where the CPU has AVX-512 BITALG). LLVM
/// vectorised the 64-bit-word loop with a widening chain per word and left
/// a byte-lane loop scalar, so the lanes are written out. Elsewhere: 64 bits
/// at a time. [`check_kernels`] holds both to a bit-by-bit count.
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::hamming(a, b)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let (a8, ar) = a.split_at(a.len().min(b.len()) / 8 * 8);
        let (b8, br) = b.split_at(a8.len());
        let mut d = 0;
        for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
            let x = u64::from_le_bytes(x.try_into().expect("8 bytes"));
            let y = u64::from_le_bytes(y.try_into().expect("8 bytes"));
            d += (x ^ y).count_ones();
        }
        for (x, y) in ar.iter().zip(br) {
            d += (x ^ y).count_ones();
        }
        d
    }
}

/// Planes of a quantised query, one bit per dimension laid out like a
/// code (see `search::QueryPlanes`).
pub const PLANES: usize = 4;

/// `(popcount(code), [popcount(code & planeᵦ)])` over the bytes `code` and
/// the planes share (in wasm: byte lanes, as in [`hamming`]).
pub fn masked_popcounts(code: &[u8], planes: &[Vec<u8>; PLANES]) -> (u32, [u32; PLANES]) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        simd::masked_popcounts(code, planes)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    {
        let n = planes.iter().fold(code.len(), |n, p| n.min(p.len()));
        let word = |bytes: &[u8], at: usize| {
            let mut le = [0u8; 8];
            let end = (at + 8).min(n);
            le[..end - at].copy_from_slice(&bytes[at..end]);
            u64::from_le_bytes(le)
        };
        let mut ones = 0;
        let mut counts = [0u32; PLANES];
        for at in (0..n).step_by(8) {
            let w = word(code, at);
            ones += w.count_ones();
            for (count, plane) in counts.iter_mut().zip(planes) {
                *count += (w & word(plane, at)).count_ones();
            }
        }
        (ones, counts)
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd {
    use super::{LANE_GROUPS, PLANES};
    use core::arch::wasm32::{
        u8x16_add, u8x16_popcnt, u8x16_splat, u16x8_extadd_pairwise_u8x16,
        u32x4_extadd_pairwise_u16x8, u32x4_extract_lane, v128, v128_and, v128_xor,
    };

    /// 16 bytes as a vector (one `v128.load`; the sizes match, so `cast` cannot fail).
    #[inline(always)]
    fn load(x: &[u8; 16]) -> v128 {
        bytemuck::cast(*x)
    }

    /// The sum of 16 `u8` lanes.
    #[inline(always)]
    fn lane_sum(v: v128) -> u32 {
        let s = u32x4_extadd_pairwise_u16x8(u16x8_extadd_pairwise_u8x16(v));
        u32x4_extract_lane::<0>(s)
            + u32x4_extract_lane::<1>(s)
            + u32x4_extract_lane::<2>(s)
            + u32x4_extract_lane::<3>(s)
    }

    pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let (ga, ra) = a[..n].as_chunks::<16>();
        let (gb, rb) = b[..n].as_chunks::<16>();
        let mut d = 0;
        for (ca, cb) in ga.chunks(LANE_GROUPS).zip(gb.chunks(LANE_GROUPS)) {
            let mut lanes = u8x16_splat(0);
            for (x, y) in ca.iter().zip(cb) {
                lanes = u8x16_add(lanes, u8x16_popcnt(v128_xor(load(x), load(y))));
            }
            d += lane_sum(lanes);
        }
        for (x, y) in ra.iter().zip(rb) {
            d += (x ^ y).count_ones();
        }
        d
    }

    pub fn masked_popcounts(code: &[u8], planes: &[Vec<u8>; PLANES]) -> (u32, [u32; PLANES]) {
        let n = planes.iter().fold(code.len(), |n, p| n.min(p.len()));
        let (groups, rest) = code[..n].as_chunks::<16>();
        let pg: [&[[u8; 16]]; PLANES] = std::array::from_fn(|b| planes[b][..n].as_chunks::<16>().0);
        let mut ones = 0;
        let mut counts = [0u32; PLANES];
        for (k, run) in groups.chunks(LANE_GROUPS).enumerate() {
            let first = k * LANE_GROUPS;
            let mut ones_lanes = u8x16_splat(0);
            let mut lanes = [u8x16_splat(0); PLANES];
            for (g, c) in run.iter().enumerate() {
                let v = load(c);
                ones_lanes = u8x16_add(ones_lanes, u8x16_popcnt(v));
                for b in 0..PLANES {
                    let p = load(&pg[b][first + g]);
                    lanes[b] = u8x16_add(lanes[b], u8x16_popcnt(v128_and(v, p)));
                }
            }
            ones += lane_sum(ones_lanes);
            for (count, l) in counts.iter_mut().zip(lanes) {
                *count += lane_sum(l);
            }
        }
        let tail = n - rest.len();
        for (j, c) in rest.iter().enumerate() {
            ones += c.count_ones();
            for (count, plane) in counts.iter_mut().zip(planes) {
                *count += (c & plane[tail + j]).count_ones();
            }
        }
        (ones, counts)
    }
}

/// Holds [`hamming`] and [`masked_popcounts`] to a bit-by-bit count on
/// pseudo-random codes of lengths around the lane groups. Run natively by
/// the unit tests and, in wasm (where the `simd128` kernels are), by the
/// test-only contract component.
pub fn check_kernels() -> Result<(), String> {
    let mut seed = 11u64;
    let mut byte = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 56) as u8
    };
    let bit = |x: &[u8], i: usize| x[i / 8] >> (i % 8) & 1;
    for len in [
        0,
        1,
        15,
        16,
        17,
        128,
        192,
        384,
        16 * 31,
        16 * 31 + 5,
        16 * 64 + 3,
    ] {
        let a: Vec<u8> = (0..len).map(|_| byte()).collect();
        let b: Vec<u8> = (0..len).map(|_| byte()).collect();
        let differing = (0..len * 8).filter(|i| bit(&a, *i) != bit(&b, *i)).count() as u32;
        if hamming(&a, &b) != differing {
            return Err(format!(
                "hamming of {len} bytes: {} ≠ {differing}",
                hamming(&a, &b)
            ));
        }
        let full = vec![0xffu8; len];
        if hamming(&full, &vec![0u8; len]) != len as u32 * 8 {
            return Err(format!("hamming of {len} set bytes against clear ones"));
        }
        let planes: [Vec<u8>; PLANES] = std::array::from_fn(|_| (0..len).map(|_| byte()).collect());
        let ones = (0..len * 8).filter(|i| bit(&a, *i) == 1).count() as u32;
        let counts: [u32; PLANES] = std::array::from_fn(|p| {
            (0..len * 8)
                .filter(|i| bit(&a, *i) == 1 && bit(&planes[p], *i) == 1)
                .count() as u32
        });
        if masked_popcounts(&a, &planes) != (ones, counts) {
            return Err(format!(
                "masked popcounts of {len} bytes: {:?} ≠ {:?}",
                masked_popcounts(&a, &planes),
                (ones, counts)
            ));
        }
    }
    Ok(())
}

/// Whether a version's blocks carry enough tombstones to be worth rewriting.
pub fn needs_compaction(slots: usize, live: usize) -> bool {
    slots >= BLOCK_CAPACITY && (slots - live) * 4 > slots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_bits_of_f16_bytes_match_those_of_the_decoded_floats() {
        // Every one of the 65,536 halves, in every bit position of a byte.
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        assert_eq!(
            binary_code_f16(&bytes),
            binary_code(&decode_f16(&bytes).unwrap())
        );
    }

    #[test]
    fn f32_round_trips_bit_exactly() {
        let v = vec![0.0, -1.5, 3.25e-7, f32::MAX];
        assert_eq!(decode_f32(&encode_f32(&v)).unwrap(), v);
        assert!(decode_f32(&[1, 2, 3]).is_none());
    }

    #[test]
    fn f16_encoding_matches_the_half_crate_rounding_everywhere_in_range() {
        let reference = |x: f32| half::f16::from_f32(x).to_bits();
        let mut checked = 0u64;
        let mut check = |bits: u32| {
            let x = f32::from_bits(bits);
            if x.is_finite() && x.abs() <= 65504.0 {
                assert_eq!(f32_to_f16(x), reference(x), "{x:e} ({bits:#010x})");
                checked += 1;
            }
        };
        // Every 61st bit pattern: all exponents and signs, varied mantissas.
        for bits in (0..=u32::MAX).step_by(61) {
            check(bits);
        }
        // Every rounding case (the 13 dropped bits, ties included) at each
        // exponent from below the subnormals to the largest normal, with
        // a few kept mantissas (even and odd).
        for sign in [0, 0x8000_0000u32] {
            for exp in 90..=142u32 {
                for kept in [0u32, 1, 2, 0x155, 0x2aa, 0x3fe, 0x3ff] {
                    for low in 0..(1u32 << 13) {
                        check(sign | exp << 23 | kept << 13 | low);
                    }
                }
            }
        }
        assert!(checked > 40_000_000, "{checked}");
    }

    #[test]
    fn f16_encoding_maps_nan_to_zero_and_clamps_to_the_largest_half() {
        let bytes = encode_f16(&[f32::NAN, 1e9, -1e9, f32::INFINITY, 0.5, -0.0]);
        let halves: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(halves, [0, 0x7bff, 0xfbff, 0x7bff, 0x3800, 0x8000]);
    }

    #[test]
    fn f16_decoding_is_exact_for_every_finite_half() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h);
            if !want.is_finite() {
                continue;
            }
            assert_eq!(
                f16_to_f32(h).to_bits(),
                want.to_f32().to_bits(),
                "bits {h:#06x}"
            );
        }
    }

    #[test]
    fn f16_storage_rounds_clamps_and_is_told_apart_by_length() {
        let v = vec![0.0, -1.5, 1.0e-6, 70000.0, f32::NAN, 0.1];
        let bytes = encode_f16(&v);
        assert_eq!(bytes.len(), 12);
        assert_eq!(Stored::of(12, 6), Some(Stored::F16));
        assert_eq!(Stored::of(24, 6), Some(Stored::F32));
        assert_eq!(Stored::of(13, 6), None);
        assert_eq!(Stored::of(0, 0), None);
        let back = decode_stored(&bytes, 6).unwrap();
        assert_eq!(&back[..2], &[0.0, -1.5]);
        // Subnormal halves are 2⁻²⁴ apart: rounding moves at most half that.
        assert!(
            (back[2] - 1.0e-6).abs() <= 2f32.powi(-25),
            "subnormal kept: {}",
            back[2]
        );
        assert_eq!(back[3], 65504.0);
        assert_eq!(back[4], 0.0);
        assert!((back[5] - 0.1).abs() <= 0.1 / 2048.0);
        assert_eq!(
            decode_stored(&encode_f32(&v[..3]), 3).unwrap(),
            v[..3].to_vec()
        );
        assert!(decode_stored(&bytes, 5).is_none());
    }

    #[test]
    fn kernels_count_like_a_bit_by_bit_comparison() {
        check_kernels().unwrap();
    }

    #[test]
    fn binary_code_sets_bits_for_positive_components() {
        let code = binary_code(&[1.0, -1.0, 0.0, 2.0, 0.5, -3.0, 1.0, 1.0, 1.0]);
        assert_eq!(code, vec![0b1101_1001, 0b1]);
    }

    #[test]
    fn blocks_round_trip_and_tombstone() {
        let mut b = Block::new(3);
        b.push(7, &[1.0, -2.0, 0.5]);
        b.push(9, &[-1.0, 2.0, 0.0]);
        let (ids, bits) = b.encode();
        let decoded = Block::decode(3, &ids, &bits).unwrap();
        assert_eq!(decoded, b);
        let mut d = decoded;
        assert_eq!(d.tombstone(&[9].into_iter().collect()), 1);
        assert_eq!(d.live(), 1);
        assert!(Block::decode(3, &ids[..8], &bits).is_none());
    }

    #[test]
    fn bit_index_keeps_block_bytes_and_counts_differing_bits() {
        // 70 dimensions: 9 bytes per vector (8 whole words' worth and one more).
        let a: Vec<f32> = (0..70)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let b: Vec<f32> = (0..70).map(|i| if i >= 64 { 1.0 } else { -1.0 }).collect();
        let mut block = Block::new(70);
        block.push(1, &a);
        block.push(2, &b);
        let mut index = BitIndex::new(70);
        let (ids, bits) = block.encode();
        assert!(BitBlock::from_columns(&ids, bits[..9].to_vec(), index.per).is_none());
        let read = BitBlock::from_columns(&ids, bits, index.per).unwrap();
        index.blocks.push(Arc::new(read));
        assert_eq!(index.len(), 2);
        let (ca, cb) = (index.blocks[0].code(0, 9), index.blocks[0].code(1, 9));
        assert_eq!(ca, binary_code(&a).as_slice());
        let differing = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| (**x > 0.0) != (**y > 0.0))
            .count();
        assert_eq!(hamming(ca, cb) as usize, differing);
        assert_eq!(hamming(ca, ca), 0);
    }

    #[test]
    fn compaction_starts_past_a_quarter_of_tombstones() {
        assert!(!needs_compaction(10, 1));
        assert!(!needs_compaction(2048, 1600));
        assert!(needs_compaction(2048, 1500));
    }
}
