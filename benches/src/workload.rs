//! Deterministic workloads shared by every table and by the criterion benches.
//!
//! The lookup layout is the one of DESIGN.md ("The bar to beat"), so that our figures line
//! up with the kernel's own `lib/maple_tree.c` measured on the same data:
//!
//! ```text
//!  0x10000000
//!  |hole|  range 0  |hole|   range 1   ||  range 2 |hole| ...
//!   ^ next() % 4 pages (may be 0)
//!        ^ 1 + next() % 32 pages
//! ```
//!
//! Both random streams are [`SplitMix64`]: the layout from state 1, the lookup points from
//! state 2, spread uniformly over the whole span (holes included, so some lookups miss).

use std::ops::RangeInclusive;

/// The page size used by the layouts (bytes).
pub const PAGE: usize = 4096;

/// Address of the first possible range of a [`Layout`].
pub const LAYOUT_START: usize = 0x1000_0000;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, reproducible generator.
///
/// ```
/// use benches::workload::SplitMix64;
/// let mut a = SplitMix64::new(1);
/// let mut b = SplitMix64::new(1);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose internal state starts at `state`.
    pub const fn new(state: u64) -> Self {
        Self { state }
    }

    /// The next 64-bit output.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`0` when `n == 0`), by multiply-high rather than a division so
    /// that generating a point costs a few cycles next to the lookup being measured.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// `n` ranges laid out as DESIGN.md describes; range `i` carries the value `i`.
///
/// ```
/// use benches::workload::{Layout, LAYOUT_START};
/// let layout = Layout::new(1000);
/// assert_eq!(layout.len(), 1000);
/// assert!(*layout.span().start() == LAYOUT_START);
/// // Ranges are sorted and disjoint.
/// assert!(layout.ranges().windows(2).all(|w| w[0].1 < w[1].0));
/// ```
#[derive(Clone, Debug)]
pub struct Layout {
    ranges: Vec<(usize, usize)>,
}

impl Layout {
    /// Lay out `n` ranges from SplitMix64 state 1.
    pub fn new(n: usize) -> Self {
        let mut rng = SplitMix64::new(1);
        let mut addr = LAYOUT_START;
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            addr += (rng.next_u64() % 4) as usize * PAGE;
            let len = (1 + rng.next_u64() % 32) as usize * PAGE;
            ranges.push((addr, addr + len - 1));
            addr += len;
        }
        Self { ranges }
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the layout has no range.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges as inclusive `(first, last)` pairs, ascending and disjoint.
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// `(first, last, value)` triples, ascending.
    pub fn entries(&self) -> impl Iterator<Item = (usize, usize, u64)> + '_ {
        self.ranges
            .iter()
            .enumerate()
            .map(|(i, &(s, e))| (s, e, i as u64))
    }

    /// From [`LAYOUT_START`] to the last index of the last range (a one-page span when empty).
    pub fn span(&self) -> RangeInclusive<usize> {
        let end = self
            .ranges
            .last()
            .map_or(LAYOUT_START + PAGE - 1, |&(_, e)| e);
        LAYOUT_START..=end
    }

    /// The lookup point generator of DESIGN.md (SplitMix64 state 2 over the whole span).
    pub fn points(&self) -> Points {
        Points::new(self.span(), 2)
    }

    /// What a correct lookup of `x` returns (binary search; the reference for tests).
    pub fn expected(&self, x: usize) -> Option<u64> {
        let i = self.ranges.partition_point(|&(s, _)| s <= x);
        let i = i.checked_sub(1)?;
        let (_, e) = self.ranges[i];
        (x <= e).then_some(i as u64)
    }
}

/// Uniform random points over an inclusive span.
#[derive(Clone, Debug)]
pub struct Points {
    rng: SplitMix64,
    base: usize,
    len: u64,
}

impl Points {
    /// Points over `span`, from SplitMix64 state `seed`.
    pub fn new(span: RangeInclusive<usize>, seed: u64) -> Self {
        let base = *span.start();
        let len = (*span.end() - base) as u64 + 1;
        Self {
            rng: SplitMix64::new(seed),
            base,
            len,
        }
    }

    /// The next point.
    #[inline]
    pub fn next_point(&mut self) -> usize {
        self.base + self.rng.below(self.len) as usize
    }

    /// The underlying generator (for workloads that need more random numbers).
    pub fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_known_values() {
        // Reference outputs of SplitMix64 seeded with 0 (from the published algorithm).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn layout_shape() {
        let l = Layout::new(10_000);
        let mut prev_end = LAYOUT_START - 1;
        for &(s, e) in l.ranges() {
            let hole = (s - prev_end - 1) / PAGE;
            assert!(hole < 4, "hole of {hole} pages");
            assert_eq!((s - prev_end - 1) % PAGE, 0);
            let pages = (e + 1 - s) / PAGE;
            assert!((1..=32).contains(&pages));
            assert_eq!((e + 1 - s) % PAGE, 0);
            prev_end = e;
        }
    }

    #[test]
    fn points_stay_in_span_and_hit_and_miss() {
        let l = Layout::new(1000);
        let span = l.span();
        let mut p = l.points();
        let (mut hit, mut miss) = (0, 0);
        for _ in 0..10_000 {
            let x = p.next_point();
            assert!(span.contains(&x));
            match l.expected(x) {
                Some(i) => {
                    let (s, e) = l.ranges()[i as usize];
                    assert!(s <= x && x <= e);
                    hit += 1;
                }
                None => miss += 1,
            }
        }
        // About 1.5 hole pages for every 16.5 range pages.
        assert!(hit > 8 * miss && miss > 0, "hit {hit} miss {miss}");
    }
}
