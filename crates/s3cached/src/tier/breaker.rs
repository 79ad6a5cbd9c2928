//! A circuit breaker for a shared tier: after a run of failures it stops sending requests for a
//! cool-down period, then lets one probe through (half-open); the probe's outcome closes or
//! re-opens it. Cool-downs double up to a ceiling while the tier stays down.
//!
//! A request the breaker lets through holds a [`Permit`]. When the probe's permit is dropped
//! without an outcome (its request was cancelled, or never sent), the probe ends and the next
//! request may probe: otherwise the breaker would wait for an answer that never comes.

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use crate::model::config::BreakerConfig;

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

    /// A permit when a request may go to the tier now; report its outcome through the permit.
    pub fn allow(&self) -> Option<Permit<'_>> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match s.open_until {
            None => Some(Permit {
                breaker: self,
                probe: false,
            }),
            Some(until) if Instant::now() >= until && !s.probing => {
                s.probing = true;
                Some(Permit {
                    breaker: self,
                    probe: true,
                })
            }
            Some(_) => None,
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

/// One request let through by the [`Breaker`]; the half-open probe, when `allow` opened one.
#[derive(Debug)]
#[must_use = "a dropped permit tells the breaker nothing about the request"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Permit<'_> {
    /// The request succeeded.
    pub fn success(mut self) {
        self.probe = false;
        self.breaker.success();
    }

    /// The request failed.
    pub fn failure(mut self) {
        self.probe = false;
        self.breaker.failure();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            // No outcome: the probe is over, and the breaker stays open until another one.
            let mut s = self.breaker.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.probing = false;
        }
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
        assert!(b.allow().is_some() && !b.is_open());
        b.failure();
        assert!(b.is_open() && b.allow().is_none());
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.allow().expect("one probe after the cool-down");
        assert!(b.allow().is_none(), "only one probe at a time");
        probe.success();
        assert!(!b.is_open() && b.allow().is_some());
    }

    #[test]
    fn failed_probe_reopens_for_longer() {
        let b = Breaker::new(BreakerConfig {
            threshold: 2,
            cooldown: Duration::from_millis(100),
            max_cooldown: Duration::from_secs(1),
        });
        b.failure();
        b.failure();
        std::thread::sleep(Duration::from_millis(110));
        b.allow().expect("probe").failure();
        let reopened = Instant::now();
        assert!(b.allow().is_none());
        // Past the first cool-down, inside the doubled one. Checked only when this thread ran
        // in time: a loaded machine may stall it past both.
        std::thread::sleep(Duration::from_millis(130));
        if reopened.elapsed() < Duration::from_millis(190) {
            assert!(b.allow().is_none(), "the second cool-down is longer");
        }
        std::thread::sleep(Duration::from_millis(200).saturating_sub(reopened.elapsed()) + Duration::from_millis(10));
        assert!(b.allow().is_some());
    }

    #[tokio::test]
    async fn a_cancelled_probe_lets_the_next_request_probe() {
        let b = fast();
        b.failure();
        b.failure();
        tokio::time::sleep(Duration::from_millis(40)).await;
        // The probe's request never answers; its caller gives up (the future is dropped).
        let probe = async {
            let Some(permit) = b.allow() else { return false };
            std::future::pending::<()>().await;
            permit.success();
            true
        };
        let gave_up = tokio::time::timeout(Duration::from_millis(10), probe).await;
        assert!(gave_up.is_err(), "the probe was cancelled mid-request");
        assert!(b.is_open(), "a cancelled probe proves nothing");
        let next = b.allow().expect("the next request probes");
        next.success();
        assert!(!b.is_open());
    }

    #[test]
    fn permits_of_a_closed_breaker_do_not_touch_it_when_dropped() {
        let b = fast();
        drop(b.allow());
        b.failure();
        drop(b.allow());
        b.failure();
        assert!(b.is_open(), "dropped permits neither close nor reset the count");
    }
}
