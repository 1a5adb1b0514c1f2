//! A token bucket: `rate` tokens a second, holding at most `capacity`, for admission limits
//! (the instance's connect rate, and each client IP's in the api crate).

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A bucket holding `tokens` now.
    pub fn new(tokens: f64) -> TokenBucket {
        TokenBucket {
            tokens,
            at: Instant::now(),
        }
    }

    /// Refills it to `now` and takes a token if one is there.
    pub fn take(&mut self, rate: f64, capacity: f64, now: Instant) -> bool {
        let tokens = self.refilled(rate, capacity, now);
        let taken = tokens >= 1.0;
        *self = TokenBucket {
            tokens: if taken { tokens - 1.0 } else { tokens },
            at: now,
        };
        taken
    }

    /// Whether it would be full by `now` (so forgetting it changes nothing).
    pub fn full(&self, rate: f64, capacity: f64, now: Instant) -> bool {
        self.refilled(rate, capacity, now) >= capacity
    }

    fn refilled(&self, rate: f64, capacity: f64, now: Instant) -> f64 {
        (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(capacity)
    }
}
