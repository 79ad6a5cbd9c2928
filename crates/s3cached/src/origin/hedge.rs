//! Hedged origin reads: when an idempotent read (GET or HEAD) has not answered after a delay,
//! a second, identical request races it; the first answer wins and the other request is
//! dropped, which cancels it. S3's tail latency is many times its median, so a slow answer is
//! more often waited out than needed.
//!
//! The delay is fixed, or a percentile (p95, p99) of the time to answer this process has
//! seen lately. Hedges come from a budget that every read adds a share of a request to
//! ([`HEDGE_PERCENT`]), so they stay a small part of the origin's requests however slow it
//! gets.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::model::config::HedgeAfter;

/// The share of reads that may be hedged, in percent: each read adds this many hundredths of
/// a request to the budget, a hedge takes a whole one.
pub const HEDGE_PERCENT: u32 = 5;

/// Most hedges the budget holds at once (a burst after a quiet spell), in hundredths.
const MAX_BUDGET: u32 = 10 * 100;

/// Answer times remembered for the percentile.
const SAMPLES: usize = 1_000;

/// Answer times needed before a percentile is trusted.
const MIN_SAMPLES: usize = 50;

/// Whether and when reads are hedged, and the budget they take hedges from.
#[derive(Debug)]
pub struct Hedging {
    after: HedgeAfter,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The latest answer times, oldest first.
    samples: VecDeque<Duration>,
    /// The percentile of `samples`, recomputed every so often.
    percentile: Option<Duration>,
    since_computed: usize,
    /// Hedges that may be sent, in hundredths of a request.
    budget: u32,
}

impl Hedging {
    /// Hedging as `after` says.
    #[must_use]
    pub fn new(after: HedgeAfter) -> Self {
        Self {
            after,
            state: Mutex::new(State::default()),
        }
    }

    /// How long a read waits before its hedge is sent; `None`: not hedged. Every call is
    /// one read, which adds its share to the budget.
    pub fn delay(&self) -> Option<Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match self.after {
            HedgeAfter::Off => None,
            HedgeAfter::After(delay) => {
                state.budget = (state.budget + HEDGE_PERCENT).min(MAX_BUDGET);
                Some(delay)
            }
            HedgeAfter::Percentile(_) => {
                state.budget = (state.budget + HEDGE_PERCENT).min(MAX_BUDGET);
                state.percentile
            }
        }
    }

    /// Takes one hedge from the budget; false when it is spent.
    pub fn take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.budget >= 100 {
            state.budget -= 100;
            true
        } else {
            false
        }
    }

    /// Remembers how long a read took to answer (for a percentile delay).
    pub fn record(&self, elapsed: Duration) {
        let HedgeAfter::Percentile(p) = self.after else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.samples.len() == SAMPLES {
            state.samples.pop_front();
        }
        state.samples.push_back(elapsed);
        state.since_computed += 1;
        // Sorting 1,000 samples every 50 reads costs little next to an origin round trip.
        if state.samples.len() >= MIN_SAMPLES && (state.percentile.is_none() || state.since_computed >= MIN_SAMPLES) {
            let mut sorted: Vec<Duration> = state.samples.iter().copied().collect();
            sorted.sort_unstable();
            let rank = (sorted.len() * usize::from(p.min(100))).div_ceil(100).saturating_sub(1);
            state.percentile = sorted.get(rank).copied();
            state.since_computed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_hedges() {
        let h = Hedging::new(HedgeAfter::Off);
        for _ in 0..100 {
            assert_eq!(h.delay(), None);
        }
        assert!(!h.take());
    }

    #[test]
    fn the_budget_allows_one_hedge_in_twenty_reads() {
        let h = Hedging::new(HedgeAfter::After(Duration::from_millis(5)));
        let mut hedges = 0;
        for _ in 0..1_000 {
            assert_eq!(h.delay(), Some(Duration::from_millis(5)));
            if h.take() {
                hedges += 1;
            }
        }
        assert_eq!(hedges, 50);
    }

    #[test]
    fn a_percentile_delay_waits_for_samples_then_follows_them() {
        let h = Hedging::new(HedgeAfter::Percentile(95));
        for ms in 1..MIN_SAMPLES as u64 {
            h.record(Duration::from_millis(ms));
            assert_eq!(h.delay(), None, "after {ms} samples");
        }
        // 100 samples of 1..=100 ms: the p95 is 95 ms.
        for ms in MIN_SAMPLES as u64..=100 {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(h.delay(), Some(Duration::from_millis(95)));
    }
}
