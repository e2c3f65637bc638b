//! The token bucket that paces new dials (`--rate`).

use std::time::{Duration, Instant};

/// Releases at most `rate` dials per second on average, with bursts of at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket refilled at `rate` tokens per second, holding at most `burst` (at least 1),
    /// full at `now`. A rate that is not a positive finite number is treated as unlimited.
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                f64::INFINITY
            },
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token at `now`: `None` when one was available, otherwise how long to
    /// wait before one will be (nothing is taken then).
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        if self.rate.is_infinite() {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_the_burst_then_paces_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100.0, 3, t0);
        assert_eq!(bucket.take(t0), None);
        assert_eq!(bucket.take(t0), None);
        assert_eq!(bucket.take(t0), None);
        let wait = bucket.take(t0).unwrap();
        assert!((wait.as_secs_f64() - 0.01).abs() < 1e-9, "{wait:?}");
        // Half a token later it still says wait, for the other half.
        let wait = bucket.take(t0 + Duration::from_millis(5)).unwrap();
        assert!((wait.as_secs_f64() - 0.005).abs() < 1e-9, "{wait:?}");
        assert_eq!(bucket.take(t0 + Duration::from_millis(10)), None);
        assert!(bucket.take(t0 + Duration::from_millis(10)).is_some());
    }

    #[test]
    fn an_idle_bucket_refills_only_up_to_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 2, t0);
        assert_eq!(bucket.take(t0), None);
        assert_eq!(bucket.take(t0), None);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(bucket.take(later), None);
        assert_eq!(bucket.take(later), None);
        assert!(bucket.take(later).is_some());
    }

    #[test]
    fn time_going_backwards_takes_nothing_extra() {
        let t0 = Instant::now() + Duration::from_secs(1);
        let mut bucket = TokenBucket::new(1.0, 1, t0);
        assert_eq!(bucket.take(t0), None);
        assert!(bucket.take(t0 - Duration::from_millis(500)).is_some());
        assert!(bucket.take(t0).is_some());
    }

    #[test]
    fn zero_or_invalid_rate_means_unlimited() {
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut bucket = TokenBucket::new(rate, 1, t0);
            for _ in 0..1000 {
                assert_eq!(bucket.take(t0), None);
            }
        }
    }
}
