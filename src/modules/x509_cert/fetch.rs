//! Getting a server's certificates: TCP (direct or through `proxy_url`), SMTP's STARTTLS, then
//! a TLS handshake that records the chain and the stapled OCSP response whatever their trust.

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::source::Family;
use crate::modules::probe::{self, Connect, InFlight};
use crate::modules::tls::{self, Trust};

/// A proxy for `tcp://`/`https://` sources (telegraf's `use_proxy`/`proxy_url`), parsed and
/// spoken by `http_response`'s proxy code: `http://` (and `https://`, which telegraf's dialer
/// also speaks as a plain CONNECT) or `socks5://`, with `user:password@` credentials.
pub(crate) use crate::modules::http_response::proxy::Proxy;
use crate::modules::http_response::proxy::{NoProxy, Scheme, parse_proxy};

pub(crate) fn proxy_from_url(url: &str) -> Result<Proxy, String> {
    parse_proxy(url)
}

/// What Go's `proxy.FromEnvironment` uses: `ALL_PROXY` (or `all_proxy`); `None` when unset
/// or when `NO_PROXY` (`no_proxy`) excludes `host:port`.
pub(crate) fn proxy_from_environment(host: &str, port: u16) -> Result<Option<Proxy>, String> {
    let get = |k: &str| {
        std::env::var(k)
            .ok()
            .or_else(|| std::env::var(k.to_lowercase()).ok())
            .filter(|v| !v.trim().is_empty())
    };
    let Some(url) = get("ALL_PROXY") else {
        return Ok(None);
    };
    if let Some(list) = get("NO_PROXY")
        && !NoProxy::parse(&list).use_proxy(host, port)
    {
        return Ok(None);
    }
    parse_proxy(url.trim()).map(Some)
}

/// Opens a tunnel to `host:port` through the proxy `tcp` is connected to.
async fn tunnel(tcp: &mut TcpStream, p: &Proxy, host: &str, port: u16) -> std::io::Result<()> {
    use crate::modules::http_response::conn::{connect_tunnel, socks5_connect};
    match p.scheme {
        Scheme::Http | Scheme::Https => {
            let t = crate::modules::http_response::url::Target {
                url: String::new(),
                https: true,
                host: host.to_owned(),
                port,
                authority: String::new(),
                path: String::new(),
            };
            connect_tunnel(tcp, &t, p.auth.as_ref()).await
        }
        Scheme::Socks5 => socks5_connect(tcp, host, port, p.socks_auth.as_ref()).await,
    }
}

/// What one handshake gave.
pub(crate) struct Served {
    pub chain: Vec<CertificateDer<'static>>,
    /// The stapled OCSP response; empty when the server stapled none.
    pub ocsp: Vec<u8>,
}

/// Everything a network fetch needs from the config.
pub(crate) struct Net<'a> {
    pub trust: &'a Trust,
    /// `tls_server_name`/`server_name`: the SNI, the EHLO name and the name verified.
    pub server_name: Option<&'a str>,
    pub proxy: Option<&'a Proxy>,
    pub timeout: Duration,
    pub in_flight: &'a InFlight,
}

async fn connect(n: &Net<'_>, host: &str, port: u16, family: Family) -> Result<TcpStream, String> {
    let addrs = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => probe::lookup(host, port, n.timeout, n.in_flight)
            .await
            .map_err(|e| e.to_string())?,
    };
    let addr = addrs
        .into_iter()
        .find(|a| match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        })
        .ok_or_else(|| format!("{host}: no address of the wanted IP version"))?;
    match probe::connect_tcp(addr, &probe::Source::default(), n.timeout).await {
        Connect::Ok(s) => Ok(s),
        Connect::Timeout => Err(format!("connect to {addr}: timed out")),
        Connect::Failed(e) => Err(format!("connect to {addr}: {e}")),
    }
}

/// Reads from `tcp` until `done` says the bytes so far hold a whole reply. SMTP servers send
/// nothing more until we speak again, so reading in chunks swallows none of what follows (the
/// TLS handshake after STARTTLS); `limit` bounds a broken or hostile server.
async fn read_reply(
    tcp: &mut TcpStream,
    limit: usize,
    done: impl Fn(&[u8]) -> bool,
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !done(&buf) {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || buf.len() > limit {
            return Err(std::io::Error::other(
                "server closed or sent an oversized reply",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

/// An SMTP reply is whole when its last line is `NNN text` (not `NNN-text`).
fn smtp_reply_done(b: &[u8]) -> bool {
    if !b.ends_with(b"\r\n") {
        return false;
    }
    let body = &b[..b.len() - 2];
    let last = body.rsplit(|&c| c == b'\n').next().unwrap_or(body);
    (last.len() >= 4 && last[3] == b' ') || last.len() == 3
}

/// One SMTP reply; Err unless its code starts with `want`.
async fn smtp_expect(tcp: &mut TcpStream, want: &str, after: &str) -> Result<(), String> {
    let r = read_reply(tcp, 64 * 1024, smtp_reply_done)
        .await
        .map_err(|e| format!("smtp {after}: {e}"))?;
    let text = String::from_utf8_lossy(&r);
    let last = text.trim_end().lines().last().unwrap_or_default().to_owned();
    if last.starts_with(want) {
        Ok(())
    } else {
        Err(format!("smtp {after}: {last:?}"))
    }
}

/// Greeting, `EHLO name`, `STARTTLS` (Go's `net/smtp` client as telegraf drives it).
async fn starttls(tcp: &mut TcpStream, name: &str) -> Result<(), String> {
    smtp_expect(tcp, "220", "greeting").await?;
    tcp.write_all(format!("EHLO {name}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    smtp_expect(tcp, "250", "EHLO").await?;
    tcp.write_all(b"STARTTLS\r\n")
        .await
        .map_err(|e| e.to_string())?;
    smtp_expect(tcp, "220", "STARTTLS")
        .await
        .map_err(|e| format!("did not get 220 after STARTTLS: {e}"))
}

/// Connects (through the proxy for TLS sources when one is set), runs STARTTLS for SMTP and
/// the TLS handshake; returns what the server presented.
pub(crate) async fn fetch(
    n: &Net<'_>,
    host: &str,
    port: u16,
    family: Family,
    smtp: bool,
) -> Result<Served, String> {
    let run = async {
        let name = n.server_name.unwrap_or(host);
        let tcp = match n.proxy.filter(|_| !smtp) {
            None => {
                let mut tcp = connect(n, host, port, family).await?;
                if smtp {
                    starttls(&mut tcp, name).await?;
                }
                tcp
            }
            Some(p) => {
                let (ph, pp) = (p.at.host.as_str(), p.at.port);
                let mut tcp = connect(n, ph, pp, Family::Any).await?;
                tunnel(&mut tcp, p, host, port)
                    .await
                    .map_err(|e| format!("proxy {ph}:{pp}: {e}"))?;
                tcp
            }
        };
        let hs = tls::handshake(tcp, n.trust, tls::server_name(name)?, false, &[]).await;
        if let Err(e) = &hs.stream
            && hs.record.chain.is_empty()
        {
            return Err(format!("TLS handshake: {e}"));
        }
        Ok(Served {
            chain: hs.record.chain,
            ocsp: hs.record.ocsp,
        })
    };
    tokio::time::timeout(n.timeout, run)
        .await
        .map_err(|_| "timed out".to_owned())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_replies() {
        assert!(smtp_reply_done(b"220 mail ESMTP\r\n"));
        assert!(!smtp_reply_done(b"250-mail\r\n250-PIPELINING\r\n"));
        assert!(smtp_reply_done(b"250-mail\r\n250 STARTTLS\r\n"));
        assert!(!smtp_reply_done(b"250 STARTT"));
    }
}
