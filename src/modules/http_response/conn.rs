//! The connection under HTTP: the proxy tunnel, the write-timing wrapper, and hyper's HTTP/1.1
//! or HTTP/2 client handshake.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::url::Target;

/// Write/read instants seen on the connection, below HTTP and above TLS.
#[derive(Default)]
pub(super) struct IoTimes {
    pub(super) last_write: Option<Instant>,
}

/// Records when the last byte was written, so `ttfb` starts when the request left.
pub(super) struct TimingIo<S> {
    inner: S,
    times: Arc<Mutex<IoTimes>>,
}

impl<S> TimingIo<S> {
    pub(super) fn new(inner: S, times: Arc<Mutex<IoTimes>>) -> Self {
        TimingIo { inner, times }
    }

    fn wrote(&self) {
        if let Ok(mut t) = self.times.lock() {
            t.last_write = Some(Instant::now());
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimingIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimingIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Opens a tunnel to the target through the proxy `tcp` is connected to.
pub(super) async fn connect_tunnel(tcp: &mut tokio::net::TcpStream, t: &Target) -> io::Result<()> {
    crate::modules::probe::http_connect(tcp, &t.host, t.port, None).await
}

/// Aborts the connection task when the probe ends.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    pub(super) async fn send(
        &mut self,
        req: hyper::Request<Full<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

pub(super) async fn connect_http<S>(
    io: TokioIo<S>,
    h2: bool,
    deadline: Instant,
) -> Result<(Sender, tokio::task::JoinHandle<()>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let remaining = deadline.saturating_duration_since(Instant::now());
    let r = if h2 {
        tokio::time::timeout(
            remaining,
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io),
        )
        .await
        .map(|r| {
            r.map(|(s, conn)| {
                (
                    Sender::H2(s),
                    tokio::spawn(async move {
                        let _ = conn.await;
                    }),
                )
            })
        })
    } else {
        tokio::time::timeout(remaining, hyper::client::conn::http1::handshake(io))
            .await
            .map(|r| {
                r.map(|(s, conn)| {
                    (
                        Sender::H1(s),
                        tokio::spawn(async move {
                            let _ = conn.await;
                        }),
                    )
                })
            })
    };
    match r {
        Err(_) => Err("timed out setting up the HTTP connection".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(v)) => Ok(v),
    }
}
