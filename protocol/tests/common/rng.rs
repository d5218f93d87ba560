//! The deterministic generator of the fuzzing twins' stable tests (`decode_garbage`,
//! `session_ops`, the node's `guest_abi`): a failure reproduces from its seed.
#![allow(dead_code)] // each test uses some of it

/// xorshift64*.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("n fits u64")).expect("below n")
    }

    pub fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[7]
    }

    pub fn next_u32(&mut self) -> u32 {
        self.next().to_le_bytes()[4..]
            .iter()
            .fold(0, |n, b| n << 8 | u32::from(*b))
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}
