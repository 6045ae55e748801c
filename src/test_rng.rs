//! A small deterministic generator (xorshift) for the randomised tests, so that a failure
//! names its seed and a rerun sees the same case.

pub(crate) struct Rng(u64);

impl Rng {
    /// The generator of `seed` (any number; spread so that near seeds differ from the start).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
