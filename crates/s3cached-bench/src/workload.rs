//! What the load generator asks for: a small seeded random generator and key choice by
//! popularity (uniform, or Zipf over key ranks through a precomputed cumulative table).

use std::sync::Arc;

use crate::plan::Popularity;

/// SplitMix64: tiny, fast, and good enough to pick keys and jitter (not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        // 53 random mantissa bits.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Picks key indexes `0..n` by popularity; cheap to clone (the table is shared).
#[derive(Debug, Clone)]
pub struct KeyPicker {
    n: usize,
    /// Cumulative probabilities of ranks 0..n (Zipf only).
    cdf: Option<Arc<[f64]>>,
}

impl KeyPicker {
    /// A picker over `n` keys (n >= 1).
    pub fn new(n: usize, popularity: Popularity) -> Self {
        let n = n.max(1);
        let cdf = match popularity {
            Popularity::Uniform => None,
            Popularity::Zipf(s) => {
                let mut acc = 0.0;
                let mut cdf: Vec<f64> = (1..=n)
                    .map(|k| {
                        acc += 1.0 / (k as f64).powf(s);
                        acc
                    })
                    .collect();
                for c in &mut cdf {
                    *c /= acc;
                }
                Some(Arc::from(cdf))
            }
        };
        Self { n, cdf }
    }

    /// The next key index.
    pub fn pick(&self, rng: &mut SplitMix) -> usize {
        let u = rng.next_f64();
        match &self.cdf {
            None => ((u * self.n as f64) as usize).min(self.n - 1),
            Some(cdf) => cdf.partition_point(|&c| c < u).min(self.n - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_covers_every_key() {
        let p = KeyPicker::new(10, Popularity::Uniform);
        let mut rng = SplitMix::new(3);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[p.pick(&mut rng)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
    }

    #[test]
    fn zipf_prefers_low_ranks() {
        let p = KeyPicker::new(1000, Popularity::Zipf(1.1));
        let mut rng = SplitMix::new(3);
        let mut top = 0;
        for _ in 0..10_000 {
            if p.pick(&mut rng) < 10 {
                top += 1;
            }
        }
        // With s = 1.1 over 1000 keys the top 1% of keys draws roughly 45% of requests.
        assert!(top > 3500 && top < 5500, "{top}");
    }
}
