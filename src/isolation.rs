//! Panic isolation primitives shared by every layer that runs code it does not trust to return:
//! the supervisor's gathers and services, a service input's message handlers, the blocking pool
//! of the host inputs. A leaf: imports nothing else of the crate.
//!
//! Panics are caught by unwinding (`panic = "unwind"` in every profile): a caught panic becomes
//! an `Err` with a one-line message, which the caller counts and logs with the instance's name.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Longest panic message kept: it ends up in one log line.
const MAX_MESSAGE: usize = 1024;

/// A future whose panics become an `Err` with the panic message, as a task's `JoinError` would.
/// After a panic it is not polled again: the caller drops it.
pub(crate) struct CatchUnwind<F> {
    inner: F,
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(inner: F) -> Self {
        CatchUnwind { inner }
    }
}

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload))),
        }
    }
}

/// Runs `f`, turning a panic into `Err(message)`.
///
/// `AssertUnwindSafe`: what `f` touched may be half-updated after a panic; callers drop or
/// rebuild that state (a message handler's state is per message, a module is rebuilt).
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(panic_message)
}

/// A panic payload as one short line (it ends up in one log line and telegraf splits on newlines).
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    one_line(payload_text(payload.as_ref()), MAX_MESSAGE)
}

/// The text of a panic payload (`panic!` gives `&str` or `String`).
pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// Collapses newlines and caps the length (on a char boundary).
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let mut s: String = text.replace(['\n', '\r'], " | ");
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_one_line() {
        assert_eq!(panic_message(Box::new("a\nb")), "a | b");
        assert_eq!(panic_message(Box::new(String::from("x"))), "x");
        assert_eq!(panic_message(Box::new(42)), "non-string panic payload");
        assert_eq!(one_line("ééé", 3), "é…");
    }

    #[test]
    fn catch_returns_the_value_or_the_message() {
        assert_eq!(catch(|| 7), Ok(7));
        let r: Result<(), String> = catch(|| panic!("bad\ninput"));
        assert_eq!(r, Err("bad | input".to_owned()));
    }

    #[tokio::test]
    async fn a_future_that_panics_becomes_an_error_with_its_message() {
        let boom: Pin<Box<dyn Future<Output = u32> + Send>> = Box::pin(async {
            tokio::task::yield_now().await;
            panic!("bad\nfixture");
        });
        assert_eq!(
            CatchUnwind::new(boom).await,
            Err("bad | fixture".to_owned())
        );
        let fine: Pin<Box<dyn Future<Output = u32> + Send>> = Box::pin(async { 7 });
        assert_eq!(CatchUnwind::new(fine).await, Ok(7));
    }
}
