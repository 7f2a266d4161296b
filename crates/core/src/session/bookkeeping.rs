//! The session store's bookkeeping: work that no request waits for (the
//! idle-clock write-back and its flush to disk, the sweep of ended
//! sessions, counting the live ones for a metrics scrape) runs on one thread
//! of its own, at a lower CPU priority than the request workers (nice
//! [`NICE`] on Linux).
//!
//! On a busy core the kernel then runs a worker first whenever both are
//! ready, so a write-back chunk or a walk over 100,000 cached sessions takes
//! the time the workers leave, instead of a slice that every request in
//! flight waits behind (`bench/run --trace`: at the same priority, each
//! write-back chunk woke on the blocking pool and ran ahead of the worker).
//!
//! Written by hand: tokio's blocking pool has no per-task priority, and an
//! unprivileged thread cannot raise its priority back once lowered, so this
//! work cannot share that pool's threads.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// The niceness of the bookkeeping thread: a worker at nice 0 weighs ten
/// times more with the kernel's scheduler, yet the bookkeeping still gets
/// about a tenth of a saturated core, so it is never starved.
pub(crate) const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

static QUEUE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
static DONE: AtomicU64 = AtomicU64::new(0);

/// The job did not complete: it panicked, or the thread could not be
/// started.
#[derive(Debug, thiserror::Error)]
#[error("the session bookkeeping job did not complete")]
pub(crate) struct Incomplete;

/// Runs `job` on the bookkeeping thread (started at the first call) and
/// returns its result. Jobs run one at a time, in the order given.
pub(crate) async fn run<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Incomplete> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let queue = QUEUE.get_or_init(start);
    // A panicking job drops its sender: `rx` then fails, the thread lives on.
    let job: Job = Box::new(move || {
        let out = job();
        DONE.fetch_add(1, Ordering::Relaxed);
        let _ = tx.send(out);
    });
    queue.send(job).map_err(|_| Incomplete)?;
    rx.await.map_err(|_| Incomplete)
}

/// Jobs completed on the bookkeeping thread since the process started.
#[cfg(test)]
pub(crate) fn jobs_done() -> u64 {
    DONE.load(Ordering::Relaxed)
}

fn start() -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("aadgate-bookkeeping".into())
        .spawn(move || {
            lower_priority();
            for job in rx {
                // A panic is the job's own failure (its caller sees
                // `Incomplete`); the thread goes on with the next job.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        });
    if let Err(e) = started {
        // The receiver is gone with the closure: every `run` answers
        // `Incomplete`, and the store says so in its log lines.
        tracing::error!(error = %e, "could not start the session bookkeeping thread");
    }
    tx
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    use rustix::process::{getpriority_process, setpriority_process};
    // On Linux a thread id names one thread to setpriority(2); the thread
    // started at its creator's niceness, and goes NICE below it.
    let me = rustix::thread::gettid();
    let lowered = getpriority_process(Some(me))
        .and_then(|now| setpriority_process(Some(me), (now + NICE).min(19)));
    if let Err(e) = lowered {
        tracing::debug!(error = %e, "the session bookkeeping runs at the workers' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// Jobs run on one named thread, below the caller's priority; a job
    /// that panics fails alone.
    #[tokio::test]
    async fn jobs_run_on_one_thread_at_a_lower_priority_and_a_panic_fails_only_its_job() {
        let mine = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let (name, nice) = run(|| {
            let me = rustix::thread::gettid();
            (
                std::thread::current().name().map(str::to_owned),
                rustix::process::getpriority_process(Some(me)).unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("aadgate-bookkeeping"));
        assert_eq!(
            nice,
            (mine + NICE).min(19),
            "nice {mine} here, {nice} there"
        );
        assert!(run(|| panic!("a failing job")).await.is_err());
        assert_eq!(run(|| 7).await.unwrap(), 7, "the thread lives on");
    }
}
