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

/// A proxy for `tcp://`/`https://` sources (telegraf's `use_proxy`/`proxy_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Proxy {
    /// HTTP CONNECT; `basic` is the base64 of `user:password` when the URL has them.
    Http {
        host: String,
        port: u16,
        basic: Option<String>,
    },
    /// SOCKS5 (`socks5://`, `socks5h://`: both hand the name to the proxy, as Go's dialer).
    Socks5 {
        host: String,
        port: u16,
        auth: Option<(String, String)>,
    },
}

/// Percent-decoding for the user and password of a proxy URL.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Proxy {
    /// `http://[user:pass@]host[:port]` (port 80 by default) or `socks5://…` (1080).
    pub(crate) fn parse(url: &str) -> Result<Proxy, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?}: expected scheme://host:port"))?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let default = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "socks5" | "socks5h" => 1080,
            other => {
                return Err(format!(
                    "{url:?}: proxy scheme {other:?} is not supported (http, socks5, socks5h)"
                ));
            }
        };
        let (host, port) = match probe::split_host_port(hostport) {
            Ok(hp) => hp,
            Err(_) if !hostport.contains(':') || hostport.ends_with(']') => (
                hostport.trim_start_matches('[').trim_end_matches(']').to_owned(),
                default,
            ),
            Err(e) => return Err(e),
        };
        if host.is_empty() {
            return Err(format!("{url:?}: no proxy host"));
        }
        let creds = userinfo.map(|u| match u.split_once(':') {
            Some((n, p)) => (unescape(n), unescape(p)),
            None => (unescape(u), String::new()),
        });
        Ok(match default {
            80 => Proxy::Http {
                host,
                port,
                basic: creds.map(|(u, p)| {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                }),
            },
            _ => Proxy::Socks5 {
                host,
                port,
                auth: creds,
            },
        })
    }

    /// What Go's `proxy.FromEnvironment` uses: `ALL_PROXY` (or `all_proxy`); `None` when unset
    /// or when `NO_PROXY` covers `host`.
    pub(crate) fn from_environment(host: &str) -> Result<Option<Proxy>, String> {
        let get = |k: &str| {
            std::env::var(k)
                .ok()
                .or_else(|| std::env::var(k.to_lowercase()).ok())
                .filter(|v| !v.is_empty())
        };
        let Some(url) = get("ALL_PROXY") else {
            return Ok(None);
        };
        let bypass = get("NO_PROXY").is_some_and(|list| {
            list.split(',').map(str::trim).any(|e| {
                e == "*" || {
                    let e = e.trim_start_matches('.');
                    !e.is_empty() && (host == e || host.ends_with(&format!(".{e}")))
                }
            })
        });
        if bypass {
            return Ok(None);
        }
        Proxy::parse(&url).map(Some)
    }

    fn address(&self) -> (&str, u16) {
        match self {
            Proxy::Http { host, port, .. } | Proxy::Socks5 { host, port, .. } => (host, *port),
        }
    }
}

/// A SOCKS5 CONNECT (RFC 1928, user/password RFC 1929) to `host:port` over `tcp`.
async fn socks5_connect(
    tcp: &mut TcpStream,
    host: &str,
    port: u16,
    auth: &Option<(String, String)>,
) -> std::io::Result<()> {
    let err = |m: &str| std::io::Error::other(format!("socks5: {m}"));
    let method = if auth.is_some() { 2 } else { 0 };
    tcp.write_all(&[5, 1, method]).await?;
    let mut reply = [0u8; 2];
    tcp.read_exact(&mut reply).await?;
    if reply != [5, method] {
        return Err(err("the proxy accepts none of our authentication methods"));
    }
    if let Some((user, pass)) = auth {
        let (u, p) = (user.as_bytes(), pass.as_bytes());
        if u.len() > 255 || p.len() > 255 {
            return Err(err("user or password longer than 255 bytes"));
        }
        let mut m = vec![1, u.len() as u8];
        m.extend_from_slice(u);
        m.push(p.len() as u8);
        m.extend_from_slice(p);
        tcp.write_all(&m).await?;
        tcp.read_exact(&mut reply).await?;
        if reply[1] != 0 {
            return Err(err("authentication failed"));
        }
    }
    let mut req = vec![5, 1, 0];
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            req.push(1);
            req.extend_from_slice(&a.octets());
        }
        Ok(std::net::IpAddr::V6(a)) => {
            req.push(4);
            req.extend_from_slice(&a.octets());
        }
        Err(_) if host.len() <= 255 => {
            req.extend_from_slice(&[3, host.len() as u8]);
            req.extend_from_slice(host.as_bytes());
        }
        Err(_) => return Err(err("host name longer than 255 bytes")),
    }
    req.extend_from_slice(&port.to_be_bytes());
    tcp.write_all(&req).await?;
    let mut head = [0u8; 4];
    tcp.read_exact(&mut head).await?;
    if head[1] != 0 {
        return Err(err(&format!("the proxy refused the connection (reply {})", head[1])));
    }
    let skip = match head[3] {
        1 => 4,
        4 => 16,
        3 => usize::from(tcp.read_u8().await?),
        _ => return Err(err("bad reply")),
    };
    let mut rest = vec![0u8; skip + 2];
    tcp.read_exact(&mut rest).await?;
    Ok(())
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
    let r = probe::read_reply(tcp, 64 * 1024, smtp_reply_done)
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
                let (ph, pp) = p.address();
                let mut tcp = connect(n, ph, pp, Family::Any).await?;
                let r = match p {
                    Proxy::Http { basic, .. } => {
                        probe::http_connect(&mut tcp, host, port, basic.as_deref()).await
                    }
                    Proxy::Socks5 { auth, .. } => socks5_connect(&mut tcp, host, port, auth).await,
                };
                r.map_err(|e| format!("proxy {ph}:{pp}: {e}"))?;
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
    fn proxy_urls() {
        assert_eq!(
            Proxy::parse("http://localhost:8888"),
            Ok(Proxy::Http {
                host: "localhost".into(),
                port: 8888,
                basic: None
            })
        );
        assert_eq!(
            Proxy::parse("http://u%40x:p@[::1]"),
            Ok(Proxy::Http {
                host: "::1".into(),
                port: 80,
                basic: Some("dUB4OnA=".into())
            })
        );
        assert_eq!(
            Proxy::parse("socks5://a:b@proxy"),
            Ok(Proxy::Socks5 {
                host: "proxy".into(),
                port: 1080,
                auth: Some(("a".into(), "b".into()))
            })
        );
        assert!(Proxy::parse("ftp://x:1").is_err());
        assert!(Proxy::parse("localhost:8888").is_err());
    }

    #[test]
    fn smtp_replies() {
        assert!(smtp_reply_done(b"220 mail ESMTP\r\n"));
        assert!(!smtp_reply_done(b"250-mail\r\n250-PIPELINING\r\n"));
        assert!(smtp_reply_done(b"250-mail\r\n250 STARTTLS\r\n"));
        assert!(!smtp_reply_done(b"250 STARTT"));
    }
}
