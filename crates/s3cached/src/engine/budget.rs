//! The process-wide bound on bytes held for the cache while in flight (DESIGN.md §4 rule 8):
//! whole-object fills, block reads from the origin, and uploads copied aside for
//! write-through all take their bytes from one [`Budget`] before holding them, and give them
//! back when the bytes are stored or dropped. Over the budget, requests stream through
//! uncached rather than fail or grow memory.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Units of the semaphore: KiB, so a budget of many GiB fits its permit count.
const UNIT: u64 = 1024;

/// Bytes that may be held in flight; each holder has a [`Held`] share.
pub struct Budget {
    semaphore: Arc<Semaphore>,
    units: u32,
}

/// A share of a [`Budget`], given back when dropped.
pub struct Held {
    _permit: OwnedSemaphorePermit,
}

fn units(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX)
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    #[must_use]
    pub fn new(bytes: u64) -> Self {
        let units = units(bytes).clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            semaphore: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// `bytes` of the budget now, or `None` when that would go over it.
    #[must_use]
    pub fn try_take(&self, bytes: u64) -> Option<Held> {
        Arc::clone(&self.semaphore)
            .try_acquire_many_owned(units(bytes).min(self.units))
            .ok()
            .map(|p| Held { _permit: p })
    }

    /// `bytes` of the budget (at most the whole budget), waiting until they are free.
    pub async fn take(&self, bytes: u64) -> Option<Held> {
        Arc::clone(&self.semaphore)
            .acquire_many_owned(units(bytes).min(self.units))
            .await
            .ok()
            .map(|p| Held { _permit: p })
    }

    /// Whether `bytes` are free now.
    #[must_use]
    pub fn has(&self, bytes: u64) -> bool {
        self.semaphore.available_permits() as u64 >= u64::from(units(bytes).min(self.units))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_are_given_back_when_dropped() {
        let budget = Budget::new(10 << 10);
        let a = budget.try_take(6 << 10).expect("fits");
        assert!(budget.try_take(5 << 10).is_none(), "over the budget");
        assert!(budget.has(4 << 10) && !budget.has(5 << 10));
        drop(a);
        assert!(budget.try_take(10 << 10).is_some());
        // More than the whole budget is clamped to it rather than waiting forever.
        assert!(budget.take(1 << 30).await.is_some());
    }
}
