//! The `aadgate` binary's pieces, as a library so tests can start them in-process.

pub mod check;
mod connections;
#[cfg(feature = "dev-idp")]
pub mod dashboard;
#[cfg(feature = "dev-idp")]
pub mod demo;
pub mod metrics;
pub mod proxy;
mod request_body;
pub mod sessions;
pub mod upstream;

pub use request_body::BodyTimedOut;

use std::time::Duration;

use aadgate::Auth;

/// Purges expired sessions every five minutes (for the life of the process).
pub fn spawn_session_sweeper(auth: &Auth) {
    let auth = auth.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        tick.tick().await;
        loop {
            tick.tick().await;
            let n = auth.sessions().purge_expired().await;
            if n > 0 {
                tracing::info!(removed = n, "purged expired sessions");
            }
        }
    });
}
