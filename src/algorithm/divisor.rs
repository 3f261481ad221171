//! Division by a divisor fixed when a configuration is built.
//!
//! A hardware 64-bit division costs tens of cycles; multiplying by a
//! reciprocal computed once costs a few. Every decision divides by its
//! configuration's window, interval or rate, so this is the hot path.

/// `n / d` and `n % d` for a fixed `d ≥ 1`, exact for every `u64` `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Divisor {
    d: u64,
    /// ⌊(2^64 − 1) / d⌋: `n × m / 2^64` underestimates `n / d` by less than
    /// 1, so at most one correction follows: `d × m ≥ 2^64 − d`, so
    /// `n / d − n × m / 2^64 = n × (2^64 − d × m) / (d × 2^64) ≤ n / 2^64 < 1`.
    m: u64,
}

impl Divisor {
    /// `d` must be at least 1 (configurations reject zero before this).
    pub(crate) const fn new(d: u64) -> Self {
        let d = if d == 0 { 1 } else { d };
        Self { d, m: u64::MAX / d }
    }

    /// The divisor.
    #[inline]
    pub(crate) const fn get(self) -> u64 {
        self.d
    }

    /// `(n / d, n % d)`.
    #[inline]
    pub(crate) fn div_rem(self, n: u64) -> (u64, u64) {
        let mut q = ((u128::from(n) * u128::from(self.m)) >> 64) as u64;
        let mut r = n - q * self.d; // q ≤ n / d, so no underflow
        if r >= self.d {
            q += 1;
            r -= self.d;
        }
        (q, r)
    }

    /// `n / d`.
    #[inline]
    pub(crate) fn div(self, n: u64) -> u64 {
        self.div_rem(n).0
    }

    /// `n % d`.
    #[inline]
    pub(crate) fn rem(self, n: u64) -> u64 {
        self.div_rem(n).1
    }

    /// `⌈n / d⌉`.
    #[inline]
    pub(crate) fn div_ceil(self, n: u64) -> u64 {
        let (q, r) = self.div_rem(n);
        q + u64::from(r != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::Divisor;

    #[test]
    fn matches_hardware_division_at_the_edges() {
        let divisors = [
            1,
            2,
            3,
            7,
            10,
            1000,
            86_400_000,
            (1 << 53) - 1,
            u64::MAX / 3,
            u64::MAX,
        ];
        let mut numerators = vec![0, 1, 2, 999, 1000, 1001, 1 << 53, u64::MAX - 1, u64::MAX];
        numerators.extend((0..2000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        for &d in &divisors {
            let div = Divisor::new(d);
            for &n in &numerators {
                assert_eq!(div.div_rem(n), (n / d, n % d), "{n} / {d}");
                assert_eq!(div.div_ceil(n), n.div_ceil(d), "ceil {n} / {d}");
            }
            for k in [1u64, 2, 3, 1000] {
                if let Some(n) = d.checked_mul(k) {
                    for n in [n - 1, n, n.saturating_add(1)] {
                        assert_eq!(div.div_rem(n), (n / d, n % d), "{n} / {d}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use super::Divisor;
    use proptest::prelude::*;
    use proptest::test_runner::FileFailurePersistence;

    proptest! {
        // Failures are kept beside this file, as the tests/ ones are.
        #![proptest_config(ProptestConfig {
            failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
                "proptest-regressions",
            ))),
            ..ProptestConfig::default()
        })]

        #[test]
        fn matches_hardware_division(n: u64, d in 1..=u64::MAX, small in 1..=100_000u64) {
            prop_assert_eq!(Divisor::new(d).div_rem(n), (n / d, n % d));
            prop_assert_eq!(Divisor::new(small).div_rem(n), (n / small, n % small));
        }
    }
}
