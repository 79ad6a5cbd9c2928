//! How long the connection loop keeps its CPU core before it gives the core back.
//!
//! Answering hits back to back, a runtime thread finds another request ready every time it
//! looks for one, so it never blocks, and the kernel takes the core from it only at a
//! scheduler tick (every 4 ms with `HZ=250`). Whatever else is runnable on that core waits
//! meanwhile: the clients on the same host, such as an application with its cache beside it.
//! Measured with wrk sharing the two cores of the benchmark machine, that wait was the p99 of
//! memory hits: 4.3 ms in every round, against 1.7 ms (the median of 5 rounds) when the thread
//! yields after 250 µs of answers (BENCHMARKS.md §3). So after answering for
//! [`DEFAULT_YIELD_AFTER`] without a pause, the thread yields (`sched_yield`): the kernel runs
//! what waits for the core or, when nothing does, returns at once, for the price of one system
//! call.
//!
//! The run is counted per thread, not per connection, because the core is what is shared.
//! A pause is a gap between two answers as long as the limit itself: the thread was idle,
//! off the core, or busy with other work long enough for the rest to have had their turn.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a thread answers hits without a pause before it yields its core (`--yield-after`).
pub const DEFAULT_YIELD_AFTER: Duration = Duration::from_micros(250);

/// One thread's run of answers without a pause.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: Instant,
    last: Instant,
}

thread_local! {
    static RUN: Cell<Option<Run>> = const { Cell::new(None) };
}

/// Counts an answer written on this thread and yields the core when the thread's run has
/// lasted `limit` (`None`: never yields).
pub fn answered(limit: Option<Duration>) {
    let Some(limit) = limit else {
        return;
    };
    let now = Instant::now();
    let turn_over = RUN.with(|cell| {
        let mut run = cell.get();
        let over = turn_over(&mut run, now, limit);
        cell.set(run);
        over
    });
    if turn_over {
        std::thread::yield_now();
    }
}

/// Adds an answer at `now` to `run`; true when the run has lasted `limit`, which ends it.
fn turn_over(run: &mut Option<Run>, now: Instant, limit: Duration) -> bool {
    match run {
        Some(r) if now.saturating_duration_since(r.last) < limit => {
            r.last = now;
            if now.saturating_duration_since(r.start) >= limit {
                *run = None;
                return true;
            }
            false
        }
        _ => {
            *run = Some(Run { start: now, last: now });
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_micros(250);

    /// Answers at `t0 + offsets` (µs); the offsets at which the turn was over.
    fn yields_at(offsets: &[u64]) -> Vec<u64> {
        let t0 = Instant::now();
        let mut run = None;
        offsets
            .iter()
            .copied()
            .filter(|&us| turn_over(&mut run, t0 + Duration::from_micros(us), LIMIT))
            .collect()
    }

    #[test]
    fn a_run_without_pauses_yields_once_per_limit() {
        let back_to_back: Vec<u64> = (0..=1000).step_by(10).collect();
        // The run starts at 0, is over at 250; the next starts at 260, is over at 510, and so on.
        assert_eq!(yields_at(&back_to_back), vec![250, 510, 770]);
    }

    #[test]
    fn answers_with_pauses_never_yield() {
        // Idle or off the core for a limit between answers: the others had their turn.
        let spaced: Vec<u64> = (0..20).map(|i| i * 250).collect();
        assert!(yields_at(&spaced).is_empty());
        // A pause in the middle of a run starts a new one.
        assert_eq!(yields_at(&[0, 100, 200, 600, 700, 800, 850]), vec![850]);
    }

    #[test]
    fn without_a_limit_answering_is_free() {
        // Must return without touching the thread's run.
        answered(None);
        assert!(RUN.with(Cell::get).is_none());
    }
}
