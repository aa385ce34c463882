//! Counters indexed by small enums.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Exposition;

/// A small closed set of counter labels, such as the reasons a packet is
/// dropped.
pub trait CounterId: Copy + 'static {
    /// Every id, in rendering order; `index` of `ALL[i]` must be `i`.
    const ALL: &'static [Self];

    /// The position of this id in [`CounterId::ALL`].
    fn index(self) -> usize;

    /// The label value this id renders as.
    fn label(self) -> &'static str;
}

/// One `AtomicU64` per id of `K`.
#[derive(Debug)]
pub struct CounterVec<K: CounterId> {
    cells: Box<[AtomicU64]>,
    ids: PhantomData<fn(K)>,
}

impl<K: CounterId> Default for CounterVec<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: CounterId> CounterVec<K> {
    /// All counters at zero.
    pub fn new() -> Self {
        Self {
            cells: K::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            ids: PhantomData,
        }
    }

    /// Adds one to the counter of `id`.
    pub fn inc(&self, id: K) {
        self.add(id, 1);
    }

    /// Adds `n` to the counter of `id`. An `id` whose index is out of range
    /// (a broken [`CounterId`] impl) is ignored.
    pub fn add(&self, id: K, n: u64) {
        if let Some(cell) = self.cells.get(id.index()) {
            cell.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The current value of the counter of `id`.
    pub fn get(&self, id: K) -> u64 {
        self.cells
            .get(id.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Writes one counter family `name` with a sample per id, labelled
    /// `label_name="<id label>"` after `labels`.
    pub fn render(
        &self,
        exp: &mut Exposition<'_>,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        label_name: &str,
    ) {
        let mut all = labels.to_vec();
        all.push((label_name, ""));
        let last = all.len() - 1;
        for id in K::ALL {
            all[last].1 = id.label();
            exp.counter(name, help, &all, self.get(*id));
        }
    }
}
