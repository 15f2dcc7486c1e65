//! Decoding fuzz bytes into indices, ranges and sizes that hit the interesting places.
//!
//! A uniformly random `usize` almost never lands on `0`, `usize::MAX`, a node edge or the
//! neighbour of an index already stored, which is where range trees break. [`Input`] reads
//! a selector byte before every index and picks one of several shapes: fixed boundaries,
//! multiples of 16 (a leaf holds 16 slots) and their neighbours, powers of two, small
//! clustered values, values near recently produced ones, and plain random words.
//!
//! Once the bytes run out every read returns a zero-ish default, so decoding never fails
//! and every byte string is a valid input.

use core::ops::Bound;

use arbitrary::Unstructured;

/// How many recently produced indices are remembered for "near a previous one".
const RECENT: usize = 16;

/// A cursor over fuzz bytes that produces steered values.
#[derive(Debug)]
pub struct Input<'a> {
    u: Unstructured<'a>,
    recent: [usize; RECENT],
    recent_len: usize,
    recent_pos: usize,
}

impl<'a> Input<'a> {
    /// Decode from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input {
            u: Unstructured::new(data),
            recent: [0; RECENT],
            recent_len: 0,
            recent_pos: 0,
        }
    }

    /// Whether every byte has been consumed.
    pub fn is_empty(&self) -> bool {
        self.u.is_empty()
    }

    /// One byte (0 once exhausted).
    pub fn byte(&mut self) -> u8 {
        self.u.arbitrary().unwrap_or(0)
    }

    /// A 16-bit value (0 once exhausted).
    pub fn u16(&mut self) -> u16 {
        self.u.arbitrary().unwrap_or(0)
    }

    /// A full random word (0 once exhausted).
    pub fn word(&mut self) -> usize {
        self.u.arbitrary::<u64>().unwrap_or(0) as usize
    }

    /// A boolean (false once exhausted).
    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// Remember `x` for later "near a previous index" choices.
    pub fn remember(&mut self, x: usize) {
        self.recent[self.recent_pos] = x;
        self.recent_pos = (self.recent_pos + 1) % RECENT;
        self.recent_len = (self.recent_len + 1).min(RECENT);
    }

    fn recent(&mut self) -> usize {
        if self.recent_len == 0 {
            return 0;
        }
        let i = self.byte() as usize % self.recent_len;
        self.recent[i]
    }

    /// A small signed step in -8..=7 or, rarely, a node-sized one.
    fn delta(&mut self) -> isize {
        let b = self.byte();
        match b >> 4 {
            0 => 16,
            1 => -16,
            2 => 15,
            3 => -15,
            _ => (b & 0xf) as isize - 8,
        }
    }

    /// An index, steered towards boundaries; remembered for later choices.
    pub fn index(&mut self) -> usize {
        let sel = self.byte();
        let x = match sel % 16 {
            0 => 0,
            1 => usize::MAX,
            2 => usize::MAX - 1,
            3 => {
                // A node edge: a multiple of 16 or one of its neighbours.
                let base = (self.byte() as usize) * 16;
                base.wrapping_add(((sel >> 4) % 3) as usize).wrapping_sub(1)
            }
            4 | 5 => self.byte() as usize,
            6..=8 => {
                let r = self.recent();
                r.wrapping_add_signed(self.delta())
            }
            9 => self.recent(),
            10 => usize::MAX - self.byte() as usize,
            11 => {
                let p = 1usize << (self.byte() % 64);
                p.wrapping_add(((sel >> 4) % 3) as usize).wrapping_sub(1)
            }
            12 | 13 => self.u16() as usize,
            14 => (self.u16() as usize) << 4,
            _ => self.word(),
        };
        self.remember(x);
        x
    }

    /// A length: mostly small, sometimes node-sized, sometimes huge.
    pub fn len(&mut self) -> usize {
        let sel = self.byte();
        match sel % 8 {
            0 => 0,
            1..=3 => (sel >> 3) as usize,
            4 => [15, 16, 17, 31, 32, 255, 256][(sel >> 3) as usize % 7],
            5 => self.u16() as usize,
            6 => usize::MAX - (sel >> 3) as usize,
            _ => self.word(),
        }
    }

    /// A size for gap searches: at least 1 most of the time, 0 rarely.
    pub fn size(&mut self) -> usize {
        let sel = self.byte();
        match sel % 8 {
            0 if sel & 0x80 != 0 => 0,
            0..=3 => 1 + (sel >> 3) as usize % 8,
            4 => [15, 16, 17, 32, 100, 256][(sel >> 3) as usize % 6],
            5 => 1 + self.u16() as usize,
            6 => usize::MAX - (sel >> 3) as usize % 4,
            _ => self.word().max(1),
        }
    }

    /// A range in one of the shapes `RangeBounds` allows; may be empty (`start > end`).
    ///
    /// Mostly `a..=a+len` around a steered index; sometimes two independent indices,
    /// exclusive bounds, or unbounded ends.
    pub fn range(&mut self) -> Span {
        let shape = self.byte();
        let a = self.index();
        let b = match shape % 4 {
            0 => self.index(),
            1 => {
                let l = self.len();
                a.saturating_add(l)
            }
            _ => {
                let l = (self.byte() % 40) as usize;
                a.saturating_add(l)
            }
        };
        let (a, b) = if shape & 0x40 == 0 && a > b {
            (b, a)
        } else {
            (a, b)
        };
        let start = match (shape >> 2) % 8 {
            0 => Bound::Unbounded,
            1 => Bound::Excluded(a),
            _ => Bound::Included(a),
        };
        let end = match (shape >> 5) % 4 {
            0 if shape & 0x80 != 0 => Bound::Unbounded,
            1 => Bound::Excluded(b),
            _ => Bound::Included(b),
        };
        Span { start, end }
    }
}

/// A range as a pair of bounds (implements `RangeBounds<usize>` through the tuple).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Lower bound.
    pub start: Bound<usize>,
    /// Upper bound.
    pub end: Bound<usize>,
}

impl Span {
    /// The bounds tuple, which implements `RangeBounds<usize>`.
    pub fn bounds(self) -> (Bound<usize>, Bound<usize>) {
        (self.start, self.end)
    }

    /// Inclusive `(first, last)`, or `None` for an empty range. Computed independently of
    /// the engine's own conversion so the two can disagree.
    pub fn inclusive(self) -> Option<(usize, usize)> {
        let a = match self.start {
            Bound::Unbounded => 0,
            Bound::Included(a) => a,
            Bound::Excluded(usize::MAX) => return None,
            Bound::Excluded(a) => a + 1,
        };
        let b = match self.end {
            Bound::Unbounded => usize::MAX,
            Bound::Included(b) => b,
            Bound::Excluded(0) => return None,
            Bound::Excluded(b) => b - 1,
        };
        if a <= b {
            Some((a, b))
        } else {
            None
        }
    }
}

/// A deterministic generator of pseudo-random inputs (SplitMix64), for the replay test's
/// seeded runs.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_inclusive_edges() {
        let s = |start, end| Span { start, end };
        use Bound::*;
        assert_eq!(s(Unbounded, Unbounded).inclusive(), Some((0, usize::MAX)));
        assert_eq!(s(Excluded(usize::MAX), Unbounded).inclusive(), None);
        assert_eq!(s(Included(5), Excluded(5)).inclusive(), None);
        assert_eq!(s(Included(5), Excluded(6)).inclusive(), Some((5, 5)));
        assert_eq!(s(Included(0), Excluded(0)).inclusive(), None);
        assert_eq!(s(Excluded(3), Included(4)).inclusive(), Some((4, 4)));
    }

    #[test]
    fn decoding_hits_boundaries() {
        let mut rng = SplitMix64(7);
        let data = rng.bytes(1 << 16);
        let mut inp = Input::new(&data);
        let (mut zero, mut max, mut edge) = (false, false, false);
        while !inp.is_empty() {
            let x = inp.index();
            zero |= x == 0;
            max |= x == usize::MAX;
            edge |= x != 0 && x % 16 == 0 && x < 4096;
        }
        assert!(zero && max && edge);
    }
}
