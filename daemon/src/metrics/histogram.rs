//! A lock-free histogram with fixed buckets.

use std::sync::atomic::{AtomicU64, Ordering};

/// Observations counted into fixed buckets, safe to share between threads.
///
/// Each bucket, the overflow bucket (above the last bound) and the sum are
/// separate `AtomicU64`s; the sum holds `f64` bits updated by compare-and-swap.
/// The total count is the sum of the buckets, so a rendering always has
/// `_count` equal to the `+Inf` bucket.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds (`le`), finite, strictly increasing.
    bounds: Box<[f64]>,
    /// One per bound, then one for the overflow bucket.
    buckets: Box<[AtomicU64]>,
    /// `f64::to_bits` of the sum of observations.
    sum: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`], per bucket (not cumulative).
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot<'a> {
    /// Upper bounds, strictly increasing.
    pub bounds: &'a [f64],
    /// Observations in each bucket, `bounds[i-1] < v <= bounds[i]`.
    pub counts: Vec<u64>,
    /// All observations, including those above the last bound.
    pub count: u64,
    /// The sum of all observations.
    pub sum: f64,
}

impl Histogram {
    /// A histogram with the given upper bounds. Bounds that are not finite
    /// are dropped, the rest sorted and deduplicated; the `+Inf` bucket is
    /// always present.
    pub fn new(bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let buckets = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds: bounds.into_boxed_slice(),
            buckets,
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts one observation. `NaN` is ignored.
    pub fn observe(&self, value: f64) {
        if value.is_nan() {
            return;
        }
        let index = self.bounds.partition_point(|b| *b < value);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let mut current = self.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match self.sum.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The upper bounds, strictly increasing, without `+Inf`.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// A copy of the current counts and sum.
    pub fn snapshot(&self) -> HistogramSnapshot<'_> {
        let mut counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let count = counts.iter().sum();
        counts.pop();
        HistogramSnapshot {
            bounds: &self.bounds,
            counts,
            count,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
        }
    }
}
