//! Request bodies from clients, under `limits.body_idle_secs` (the longest
//! pause between two pieces) and `limits.request_secs` (the whole body).
//!
//! A slow upload would otherwise hold a connection to the app, and a worker's
//! memory for its buffers, for as long as the client likes. The body fails
//! with [`BodyTimedOut`] instead; the forwarder then answers 408, and
//! [`Progress`] tells it when the body has been sent whole, which is when
//! the app's time to answer (`limits.upstream_header_secs`) begins.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// The client was too slow sending the request body.
#[derive(Debug, thiserror::Error)]
#[error(
    "the client sent the request body too slowly (limits.body_idle_secs or limits.request_secs)"
)]
pub struct BodyTimedOut;

/// How far a request body has come; shared between the body and the forwarder.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    done: AtomicBool,
    timed_out: AtomicBool,
    changed: tokio::sync::Notify,
}

impl Progress {
    /// Whether the body failed for being too slow.
    pub(crate) fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Waits until the body has been read whole (or has failed).
    pub(crate) async fn finished(&self) {
        loop {
            let changed = self.changed.notified();
            if self.done.load(Ordering::Relaxed) || self.timed_out() {
                return;
            }
            changed.await;
        }
    }

    fn set(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Relaxed);
        self.changed.notify_waiters();
    }
}

/// A client's request body with the two time limits.
pub(crate) struct TimedBody {
    inner: Incoming,
    idle: Duration,
    deadline: Instant,
    timer: Pin<Box<Sleep>>,
    progress: Arc<Progress>,
}

impl TimedBody {
    pub(crate) fn new(inner: Incoming, idle: Duration, whole: Duration) -> (Self, Arc<Progress>) {
        let now = Instant::now();
        let deadline = now + whole;
        let progress = Arc::new(Progress::default());
        let body = Self {
            inner,
            idle,
            deadline,
            timer: Box::pin(tokio::time::sleep_until((now + idle).min(deadline))),
            progress: progress.clone(),
        };
        (body, progress)
    }
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = (Instant::now() + this.idle).min(this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.progress.set(&this.progress.done);
                Poll::Ready(None)
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.progress.set(&this.progress.timed_out);
                    Poll::Ready(Some(Err(Box::new(BodyTimedOut))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
