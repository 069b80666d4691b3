//! The API's rate limit: governor's keyed GCRA (a steady rate with a burst on top), one budget
//! per token, per workspace or for the whole integration.

use std::num::NonZeroU32;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{RateLimit, RateLimitScope};

/// Past this many budgets, the idle ones are forgotten (a long `dev` session mints many tokens).
const MAX_KEYS: usize = 10_000;

pub(crate) struct Limiter {
    scope: RateLimitScope,
    gcra: DefaultKeyedRateLimiter<String>,
}

impl Limiter {
    /// `None` for a rate of 0, which is no limit.
    pub(crate) fn new(limit: RateLimit) -> Option<Self> {
        let rate = NonZeroU32::new(limit.requests_per_second)?;
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        let gcra = RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst));
        Some(Self { scope: limit.per, gcra })
    }

    pub(crate) fn scope(&self) -> RateLimitScope {
        self.scope
    }

    /// `Err(seconds to wait)` when `key` is over its budget: Notion's `Retry-After` is a whole
    /// number of seconds, so any wait rounds up to at least 1.
    pub(crate) fn check(&self, key: &str) -> Result<(), u64> {
        if self.gcra.len() > MAX_KEYS {
            self.gcra.retain_recent();
        }
        match self.gcra.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.gcra.clock().now());
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(seconds.max(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_burst_then_429_with_a_whole_number_of_seconds() {
        let limit = RateLimit { requests_per_second: 1, burst: 3, per: RateLimitScope::Token };
        let limiter = Limiter::new(limit).unwrap();
        for _ in 0..3 {
            assert_eq!(limiter.check("a"), Ok(()));
        }
        assert_eq!(limiter.check("a"), Err(1));
        // Another token has its own budget.
        assert_eq!(limiter.check("b"), Ok(()));
        assert!(Limiter::new(RateLimit { requests_per_second: 0, ..limit }).is_none());
    }
}
