//! When a server engine asks whether a sent step waits: the probe schedule PostgreSQL and MariaDB
//! share.
//!
//! A probe costs the server a look at its lock tables, and asking before the server has even
//! read the statement can only be answered "no". So a step that cannot wait is never asked
//! about; any other is given a head start of [`HEAD_START`], which the replies of statements that
//! take no lock beat, and is then asked at gaps that double up to [`MAX_GAP`], and never again
//! once its reply is in. A wait is still seen within about `HEAD_START` plus one probe when a
//! step blocks at once, and within `MAX_GAP` plus one probe when it blocks later. No answer is
//! ever guessed: a step is called waiting only when the database says so, and it cannot stop
//! waiting behind the tool's back, since nothing else runs until it is settled. A step waiting
//! already (a recheck, after another step finished) is asked at once.
//!
//! The gaps are shorter than tokio's timer can sleep (it counts in milliseconds), so they are
//! kept by a `timerfd` the runtime's reactor watches.

use std::cell::Cell;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Instant;

use super::EngineError;

/// The first question about a step that has just been sent.
pub(crate) const HEAD_START: Duration = Duration::from_micros(150);
/// The longest gap between two questions about a step still running.
pub(crate) const MAX_GAP: Duration = Duration::from_micros(600);

/// When the first question about a step goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    /// The step cannot wait: only its reply, or the deadline, settles it.
    Never,
    /// A step just sent: after [`HEAD_START`].
    HeadStart,
    /// A step that was waiting: at once.
    Now,
}

/// How a watched step ended.
pub(crate) enum Watched<T, W> {
    Reply(T),
    /// The probe's answer: the step waits.
    Waits(W),
    TimedOut,
}

/// Sub-millisecond sleeps for the probe schedule, one per run.
pub(crate) struct Ticker {
    fd: AsyncFd<Timer>,
    /// How many questions the run has asked, for the benchmarks.
    asked: Cell<u64>,
}

struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Ticker {
    /// Needs the runtime's reactor: call it inside the runtime.
    pub(crate) fn new() -> Result<Ticker, EngineError> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|e| EngineError::Setup(format!("cannot make a timer: {e}")))?;
        // SAFETY: `Timer` owns its descriptor and neither replaces nor closes it while the
        // `AsyncFd` owns the `Timer`.
        let fd = unsafe { AsyncFd::register_with_interest(Timer(timer), Interest::READABLE) }
            .map_err(|e| EngineError::Setup(format!("cannot watch a timer: {e}")))?;
        Ok(Ticker {
            fd,
            asked: Cell::new(0),
        })
    }

    pub(crate) fn asked(&self) -> u64 {
        self.asked.get()
    }

    /// Sleeps for `gap`. Setting the timer again clears an expiry left by a sleep that was
    /// dropped before it ended, and the readiness it left is found stale by the read.
    async fn sleep(&self, gap: Duration) -> Result<(), EngineError> {
        let failed = |e: std::io::Error| EngineError::Setup(format!("the timer failed: {e}"));
        let gap = gap.max(Duration::from_micros(1));
        self.fd
            .get_ref()
            .0
            .set(
                Expiration::OneShot(TimeSpec::from_duration(gap)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(|e| failed(e.into()))?;
        loop {
            let mut ready = self.fd.readable().await.map_err(failed)?;
            let read = ready.try_io(|timer| {
                let mut expirations = [0u8; 8];
                nix::unistd::read(timer.as_raw_fd(), &mut expirations)
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
            match read {
                Ok(result) => return result.map_err(failed),
                Err(_stale) => continue,
            }
        }
    }
}

/// Waits for `reply`, asking `probe` on the schedule `first` starts (see the module); `probe`
/// answers `Some` when the step waits.
pub(crate) async fn watch<F, T, W, P>(
    ticker: &Ticker,
    reply: &mut F,
    mut probe: impl FnMut() -> P,
    first: First,
    deadline: Instant,
) -> Result<Watched<T, W>, EngineError>
where
    F: Future<Output = T> + Unpin,
    P: Future<Output = Result<Option<W>, EngineError>>,
{
    let mut gap = match first {
        First::Never => {
            return Ok(match tokio::time::timeout_at(deadline, reply).await {
                Ok(answer) => Watched::Reply(answer),
                Err(_) => Watched::TimedOut,
            })
        }
        First::HeadStart => HEAD_START,
        First::Now => Duration::ZERO,
    };
    loop {
        if !gap.is_zero() {
            let pause = gap.min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                biased;
                answer = &mut *reply => return Ok(Watched::Reply(answer)),
                slept = ticker.sleep(pause) => slept?,
            }
        }
        if Instant::now() >= deadline {
            return Ok(Watched::TimedOut);
        }
        tokio::select! {
            biased;
            answer = &mut *reply => return Ok(Watched::Reply(answer)),
            waits = { ticker.asked.set(ticker.asked.get() + 1); probe() } => {
                if let Some(waits) = waits? {
                    return Ok(Watched::Waits(waits));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(Watched::TimedOut),
        }
        gap = (gap * 2).clamp(HEAD_START, MAX_GAP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_reply_that_comes_within_the_head_start_is_never_asked_about() {
        runtime().block_on(async {
            let ticker = Ticker::new().unwrap();
            let mut asked = 0;
            let mut reply = Box::pin(async { 7 });
            let deadline = Instant::now() + Duration::from_secs(5);
            let probe = || {
                asked += 1;
                async { Ok::<Option<()>, EngineError>(None) }
            };
            let watched = watch(&ticker, &mut reply, probe, First::HeadStart, deadline).await;
            assert!(matches!(watched, Ok(Watched::Reply(7))));
            assert_eq!(asked, 0);
        });
    }

    #[test]
    fn a_step_that_never_answers_is_asked_until_the_probe_says_it_waits() {
        runtime().block_on(async {
            let ticker = Ticker::new().unwrap();
            let mut asked = 0;
            let mut reply = Box::pin(std::future::pending::<()>());
            let deadline = Instant::now() + Duration::from_secs(5);
            let probe = || {
                asked += 1;
                let waits = (asked == 4).then_some("alice");
                async move { Ok::<_, EngineError>(waits) }
            };
            let watched = watch(&ticker, &mut reply, probe, First::HeadStart, deadline).await;
            assert!(matches!(watched, Ok(Watched::Waits("alice"))));
            assert_eq!(asked, 4);
        });
    }

    #[test]
    fn a_recheck_asks_at_once_and_a_step_that_cannot_wait_never() {
        runtime().block_on(async {
            let ticker = Ticker::new().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut reply = Box::pin(std::future::pending::<()>());
            let watched = watch(
                &ticker,
                &mut reply,
                || async { Ok::<_, EngineError>(Some(1)) },
                First::Now,
                deadline,
            )
            .await;
            assert!(matches!(watched, Ok(Watched::Waits(1))));
            let soon = Instant::now() + Duration::from_millis(20);
            let watched = watch(
                &ticker,
                &mut reply,
                || async { Ok::<_, EngineError>(Some(1)) },
                First::Never,
                soon,
            )
            .await;
            assert!(matches!(watched, Ok(Watched::TimedOut)));
        });
    }
}
