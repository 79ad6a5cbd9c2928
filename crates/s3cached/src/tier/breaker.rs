//! A circuit breaker for a shared tier: after a run of failures it stops sending requests for a
//! cool-down period, then lets one probe through (half-open); the probe's outcome closes or
//! re-opens it. Cool-downs double up to a ceiling while the tier stays down.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use crate::config::BreakerConfig;

#[derive(Debug)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    cooldown: Duration,
    probing: bool,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                failures: 0,
                open_until: None,
                cooldown: config.cooldown,
                probing: false,
            }),
        }
    }

    /// Whether a request may go to the tier now.
    pub fn allow(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match s.open_until {
            None => true,
            Some(until) if Instant::now() >= until && !s.probing => {
                s.probing = true;
                true
            }
            Some(_) => false,
        }
    }

    /// Records a successful request: closes the breaker.
    pub fn success(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.failures = 0;
        s.open_until = None;
        s.probing = false;
        s.cooldown = self.config.cooldown;
    }

    /// Records a failed request; opens the breaker after enough of them (or a failed probe).
    pub fn failure(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.failures = s.failures.saturating_add(1);
        if s.probing {
            s.probing = false;
            s.cooldown = (s.cooldown * 2).min(self.config.max_cooldown);
            s.open_until = Some(Instant::now() + s.cooldown);
        } else if s.open_until.is_none() && s.failures >= self.config.threshold {
            s.open_until = Some(Instant::now() + s.cooldown);
        }
    }

    /// True while requests are being held back.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open_until
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Breaker {
        Breaker::new(BreakerConfig {
            threshold: 2,
            cooldown: Duration::from_millis(30),
            max_cooldown: Duration::from_millis(100),
        })
    }

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = fast();
        b.failure();
        assert!(b.allow() && !b.is_open());
        b.failure();
        assert!(b.is_open() && !b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow(), "one probe after the cool-down");
        assert!(!b.allow(), "only one probe at a time");
        b.success();
        assert!(!b.is_open() && b.allow());
    }

    #[test]
    fn failed_probe_reopens_for_longer() {
        let b = fast();
        b.failure();
        b.failure();
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow());
        b.failure();
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!b.allow(), "the second cool-down is longer");
        std::thread::sleep(Duration::from_millis(30));
        assert!(b.allow());
    }
}
