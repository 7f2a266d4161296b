//! The one clock sessions, sign-ins and revalidation read: the system time,
//! which a test can move forward to see expiry without waiting.
//!
//! ```
//! use aadgate_core::clock::Clock;
//! let clock = Clock::system();
//! let before = clock.now();
//! clock.advance(3600);
//! assert!(clock.now() >= before + 3600);
//! ```
//!
//! ID tokens are checked against the system time itself (they were minted by
//! a real provider's clock), not against this one.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds, shared by everything cloned from one `Clock`.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Seconds added to the system time (0 outside tests).
    ahead: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Now, in unix seconds.
    pub fn now(&self) -> i64 {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        system + self.ahead.load(Ordering::Relaxed)
    }

    /// Moves this clock (and every clone of it) `secs` forward: for tests
    /// of idle timeouts, lifetimes and revalidation.
    pub fn advance(&self, secs: i64) {
        self.ahead.fetch_add(secs, Ordering::Relaxed);
    }
}
