//! Deterministic mixed texts for tests that hold a fast path (a byte scan,
//! an escaper, an ASCII loop) to the plain form it replaced.

/// Texts of up to `max_pieces - 1` pieces picked from `pieces` by a linear
/// congruential generator: the same seed gives the same texts everywhere.
pub struct PieceTexts<'a> {
    pieces: &'a [&'a str],
    max_pieces: u64,
    seed: u64,
}

impl<'a> PieceTexts<'a> {
    pub fn new(pieces: &'a [&'a str], max_pieces: u64, seed: u64) -> Self {
        Self {
            pieces,
            max_pieces: max_pieces.max(1),
            seed,
        }
    }

    /// A number below `bound` (at least 1), from the generator's state.
    pub fn below(&self, bound: u64) -> u64 {
        self.seed % bound.max(1)
    }

    /// The next text.
    pub fn next_text(&mut self) -> String {
        let mut text = String::new();
        for _ in 0..(self.seed % self.max_pieces) {
            self.seed = self
                .seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            text.push_str(self.pieces[(self.seed >> 33) as usize % self.pieces.len()]);
        }
        text
    }
}
