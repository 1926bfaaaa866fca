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

use hyper::header::HeaderValue;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::proxy::SocksAuth;
use super::url::Target;

/// The connection the request (or the target's TLS) runs on: TCP to the server or to a plain
/// proxy, or TLS to an HTTPS proxy.
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

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

/// Opens a tunnel to the target through the proxy `tcp` is connected to (`auth`: its
/// `Proxy-Authorization`).
pub(super) async fn connect_tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    tcp: &mut S,
    t: &Target,
    auth: Option<&HeaderValue>,
) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    };
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(a) = auth {
        head.extend_from_slice(b"Proxy-Authorization: ");
        head.extend_from_slice(a.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    tcp.write_all(&head).await?;
    tcp.flush().await?;
    // The proxy sends nothing after its reply until we speak, so reading in chunks cannot
    // swallow TLS bytes. Headers of a CONNECT reply are small: 8 KiB bounds a broken proxy.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || buf.len() > 8192 {
            return Err(io::Error::other("proxy closed or sent an oversized reply"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = buf
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        _ => Err(io::Error::other(format!(
            "proxy refused the tunnel: {:?}",
            String::from_utf8_lossy(buf.split(|&b| b == b'\r').next().unwrap_or_default())
        ))),
    }
}

/// Opens a SOCKS5 tunnel (RFC 1928) to `host:port` through the proxy `s` is connected to: no
/// authentication, or username/password (RFC 1929) when the proxy URL has credentials. A host
/// name is sent for the proxy to resolve, as Go's client does.
pub(super) async fn socks5_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    host: &str,
    port: u16,
    auth: Option<&SocksAuth>,
) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fail = |m: &str| io::Error::other(m.to_owned());
    let greeting: &[u8] = match auth {
        Some(_) => &[5, 2, 0, 2],
        None => &[5, 1, 0],
    };
    s.write_all(greeting).await?;
    let mut reply = [0u8; 2];
    s.read_exact(&mut reply).await?;
    match (reply, auth) {
        ([5, 0], _) => {}
        ([5, 2], Some(a)) => {
            let mut m = vec![1, a.user.len() as u8];
            m.extend_from_slice(a.user.as_bytes());
            m.push(a.password.len() as u8);
            m.extend_from_slice(a.password.as_bytes());
            s.write_all(&m).await?;
            s.read_exact(&mut reply).await?;
            if reply[1] != 0 {
                return Err(fail("the proxy refused the username and password"));
            }
        }
        ([5, 0xff], _) => return Err(fail("the proxy accepts none of our authentication methods")),
        _ => return Err(fail("not a SOCKS5 proxy")),
    }
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            req.push(1);
            req.extend_from_slice(&ip.octets());
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            req.push(4);
            req.extend_from_slice(&ip.octets());
        }
        Err(_) => {
            let name = u8::try_from(host.len()).map_err(|_| fail("host name too long"))?;
            req.extend_from_slice(&[3, name]);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(fail("not a SOCKS5 reply"));
    }
    if head[1] != 0 {
        return Err(io::Error::other(format!("the proxy could not connect (SOCKS5 reply {})", head[1])));
    }
    // The bound address and port, which we do not need.
    let len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await?;
            usize::from(n[0])
        }
        _ => return Err(fail("malformed SOCKS5 reply")),
    };
    let mut rest = vec![0u8; len + 2];
    s.read_exact(&mut rest).await?;
    Ok(())
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

/// The first address of the family wanted (`v6`) on interface `name` (telegraf's `interface`:
/// the source address of the connection).
pub(super) fn interface_address(name: &str, v6: bool) -> Result<std::net::IpAddr, String> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we own until freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(format!("interface {name:?}: {}", io::Error::last_os_error()));
    }
    let mut found = None;
    let mut seen = false;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let n = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if n.to_bytes() != name.as_bytes() || ifa.ifa_addr.is_null() {
            continue;
        }
        seen = true;
        // SAFETY: ifa_addr points to a sockaddr whose sa_family says which sockaddr_* it is.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        let ip = match family {
            libc::AF_INET if !v6 => {
                // SAFETY: AF_INET: the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
            }
            libc::AF_INET6 if v6 => {
                // SAFETY: AF_INET6: the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        };
        if ip.is_some() {
            found = ip;
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once; no reference into it outlives this.
    unsafe { libc::freeifaddrs(list) };
    let family = if v6 { "IPv6" } else { "IPv4" };
    found.ok_or_else(|| match seen {
        true => format!("interface {name:?} has no {family} address"),
        false => format!("no interface {name:?} with an address"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_interface_addresses() {
        assert_eq!(
            interface_address("lo", false),
            Ok("127.0.0.1".parse().unwrap())
        );
        assert!(
            interface_address("no-such-if0", false)
                .unwrap_err()
                .contains("no interface")
        );
    }
}
