//! Where workers read the wall clock: lease expiry, due times and retention all come from it.
//!
//! Workers use the system clock. A test gives each worker a [`TokioClock`], which follows
//! Tokio's time (virtual under `tokio::time::pause`, so pauses longer than a lease run at once)
//! and may run ahead of or behind the others, to check the queue's guarantees under clock skew.

use std::fmt;
use std::time::{Duration, SystemTime};

use tito_core::event::micros_since_epoch;

/// A wall clock, in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time now.
    fn now_micros(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> u64 {
        micros_since_epoch(SystemTime::now())
    }
}

/// A clock that starts at the system time and then advances with Tokio's time, offset by a
/// fixed skew.
#[derive(Clone, Copy)]
pub struct TokioClock {
    start_micros: u64,
    start: tokio::time::Instant,
    ahead_micros: i64,
}

impl TokioClock {
    /// A clock reading the system time now, advancing with Tokio's time.
    pub fn new() -> Self {
        TokioClock {
            start_micros: SystemClock.now_micros(),
            start: tokio::time::Instant::now(),
            ahead_micros: 0,
        }
    }

    /// This clock, running `skew` ahead of the time.
    pub fn ahead(mut self, skew: Duration) -> Self {
        self.ahead_micros = i64::try_from(skew.as_micros()).unwrap_or(i64::MAX);
        self
    }

    /// This clock, running `skew` behind the time.
    pub fn behind(mut self, skew: Duration) -> Self {
        self.ahead_micros = -i64::try_from(skew.as_micros()).unwrap_or(i64::MAX);
        self
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl fmt::Debug for TokioClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioClock")
            .field("ahead_micros", &self.ahead_micros)
            .finish_non_exhaustive()
    }
}

impl Clock for TokioClock {
    fn now_micros(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let now = self.start_micros.saturating_add(elapsed);
        now.saturating_add_signed(self.ahead_micros)
    }
}
