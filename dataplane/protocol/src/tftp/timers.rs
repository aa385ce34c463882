//! Retransmission timers of all transfers: a binary heap with lazy
//! deletion.
//!
//! Each transfer keeps its true deadline in its record and at most one
//! "live" heap entry (its `scheduled` time). Moving a deadline later — what
//! every ACK does — only writes the record; the heap is touched when the
//! live entry comes due (and is then re-pushed at the true deadline) or
//! when a deadline moves earlier. Entries of ended transfers are recognised
//! by the slot generation and skipped. So the ACK path is O(1), the heap
//! holds about one entry per transfer, and the next deadline is a peek.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A heap entry: when, and which slot generation it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    /// Microseconds since the server epoch.
    pub(crate) deadline: u64,
    /// Slot index in the transfer table.
    pub(crate) slot: u32,
    /// Generation of the slot when the entry was pushed.
    pub(crate) generation: u32,
}

/// Min-heap of timer entries.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl TimerHeap {
    /// Adds an entry.
    pub(crate) fn push(&mut self, entry: TimerEntry) {
        self.heap.push(Reverse(entry));
    }

    /// The earliest deadline, possibly of a stale entry (then the caller
    /// merely wakes early).
    pub(crate) fn earliest(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(entry)| entry.deadline)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<TimerEntry> {
        if self.earliest()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    /// Entries held, live and stale.
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut heap = TimerHeap::default();
        for (deadline, slot) in [(30, 1), (10, 2), (20, 3)] {
            heap.push(TimerEntry {
                deadline,
                slot,
                generation: 0,
            });
        }
        assert_eq!(heap.earliest(), Some(10));
        assert_eq!(heap.pop_due(9), None);
        assert_eq!(heap.pop_due(25).map(|e| e.slot), Some(2));
        assert_eq!(heap.pop_due(25).map(|e| e.slot), Some(3));
        assert_eq!(heap.pop_due(25), None);
        assert_eq!(heap.len(), 1);
    }
}
