//! Finding the few bytes that need attention in long runs of ordinary text,
//! 16 bytes at a time: the JSON escaper of embedding requests (10 MB of
//! chunk text per 10 MB document) and the document text cleaner look for
//! control characters and a couple of other values that are rare in text.
//! A byte-at-a-time loop over the text was ≈ 25 ms of a 10 MB ingest in wasm;
//! written as a plain loop (or a fold), LLVM did not vectorise it, so the
//! block check is `simd128` in wasm and SWAR on two `u64`s elsewhere.
//! [`check`] holds [`ByteSet::find`] to a plain scan (natively in the unit
//! tests, in wasm through the contract component's `byte_scan` suite).

/// Byte values to look for: every value below `below` (at most `0x80`) and
/// three more (repeat one to look for fewer).
#[derive(Clone, Copy, Debug)]
pub struct ByteSet {
    below: u8,
    equal: [u8; 3],
}

impl ByteSet {
    /// The set `0..below` plus `equal`; `below` is capped at `0x80`.
    pub const fn new(below: u8, equal: [u8; 3]) -> Self {
        Self {
            below: if below > 0x80 { 0x80 } else { below },
            equal,
        }
    }

    /// Whether `b` is in the set.
    #[inline]
    pub fn contains(&self, b: u8) -> bool {
        (b < self.below) | (b == self.equal[0]) | (b == self.equal[1]) | (b == self.equal[2])
    }

    /// The position of the first byte at or after `from` that is in the set,
    /// or `bytes.len()` when there is none.
    #[inline]
    pub fn find(&self, bytes: &[u8], from: usize) -> usize {
        let from = from.min(bytes.len());
        let (blocks, _) = bytes[from..].as_chunks::<16>();
        let start = from + 16 * blocks.iter().take_while(|b| !self.block_hits(b)).count();
        bytes[start..]
            .iter()
            .position(|&b| self.contains(b))
            .map_or(bytes.len(), |p| start + p)
    }

    /// Whether any byte of `block` is in the set.
    #[cfg(target_arch = "wasm32")]
    #[inline(always)]
    fn block_hits(&self, block: &[u8; 16]) -> bool {
        use core::arch::wasm32::{u8x16_eq, u8x16_lt, u8x16_splat, v128, v128_any_true, v128_or};
        let v: v128 = bytemuck::cast(*block);
        let low = u8x16_lt(v, u8x16_splat(self.below));
        let a = u8x16_eq(v, u8x16_splat(self.equal[0]));
        let b = u8x16_eq(v, u8x16_splat(self.equal[1]));
        let c = u8x16_eq(v, u8x16_splat(self.equal[2]));
        v128_any_true(v128_or(v128_or(low, a), v128_or(b, c)))
    }

    /// Whether any byte of `block` is in the set: the classic "has a byte
    /// less than n" and "has a zero byte" word tricks (exact as a yes/no for
    /// `n <= 0x80`).
    #[cfg(not(target_arch = "wasm32"))]
    #[inline(always)]
    fn block_hits(&self, block: &[u8; 16]) -> bool {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let (lo, hi) = block.split_at(8);
        [lo, hi].into_iter().any(|half| {
            let w = u64::from_le_bytes(half.try_into().unwrap_or([0; 8]));
            let mut hit = w.wrapping_sub(ONES * u64::from(self.below)) & !w & HIGHS;
            for e in self.equal {
                let x = w ^ (ONES * u64::from(e));
                hit |= x.wrapping_sub(ONES) & !x & HIGHS;
            }
            hit != 0
        })
    }
}

/// Holds [`ByteSet::find`] to a byte-by-byte scan on generated texts: every
/// byte value at every position of a block, and random mixes.
pub fn check() -> Result<(), String> {
    let sets = [
        ByteSet::new(0x20, [b'"', b'\\', b'"']),
        ByteSet::new(0x20, [0x7f, 0xc2, 0xef]),
        ByteSet::new(0x80, [0xff, 0x00, 0x80]),
        ByteSet::new(0, [b'a', b'a', b'a']),
    ];
    let plain = |set: &ByteSet, bytes: &[u8], from: usize| {
        (from..bytes.len())
            .find(|&i| set.contains(bytes[i]))
            .unwrap_or(bytes.len())
    };
    let mut texts: Vec<Vec<u8>> = Vec::new();
    for value in 0..=255u8 {
        for at in [0, 7, 8, 15, 16, 17, 31, 40] {
            let mut text = vec![b'x'; 48];
            text[at] = value;
            texts.push(text);
        }
    }
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..500 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let len = (seed >> 40) as usize % 80;
        texts.push(
            (0..len)
                .map(|k| {
                    let r = seed.rotate_left(k as u32 * 7) ^ (k as u64).wrapping_mul(0x9E37);
                    // Mostly ordinary letters, sometimes any byte.
                    if r.is_multiple_of(9) {
                        (r >> 8) as u8
                    } else {
                        b'a' + (r % 26) as u8
                    }
                })
                .collect(),
        );
    }
    for set in &sets {
        for text in &texts {
            for from in [0, 1, 5, 16, 33] {
                if from > text.len() {
                    continue;
                }
                let (got, want) = (set.find(text, from), plain(set, text, from));
                if got != want {
                    return Err(format!(
                        "{set:?} in {text:?} from {from}: found {got}, a plain scan {want}"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_what_a_plain_scan_finds() {
        super::check().unwrap();
    }
}
