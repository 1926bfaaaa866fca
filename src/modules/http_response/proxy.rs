//! Proxies: `http_proxy` for every URL, or else the environment as Go's
//! `http.ProxyFromEnvironment` reads it (telegraf's behaviour when `http_proxy` is unset):
//! `HTTP_PROXY`/`http_proxy` for `http://` URLs, `HTTPS_PROXY`/`https_proxy` for `https://`
//! URLs, `NO_PROXY`/`no_proxy` exclusions; `localhost` and loopback addresses never go through
//! an environment proxy, and `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set (a CGI
//! environment, where a client could set it through a `Proxy:` header).

use std::net::IpAddr;

use hyper::header::HeaderValue;

use super::config::base64;
use super::url::Target;

/// How we talk to a proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// HTTP: absolute-form requests, CONNECT for https.
    Http,
    /// HTTP over TLS to the proxy.
    Https,
    /// SOCKS5 (`socks5://`, `socks5h://`): a tunnel for every URL; names are resolved by the
    /// proxy, as Go's client does.
    Socks5,
}

/// A proxy: where it listens, how we speak to it, and its credentials.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Proxy {
    /// Host and port of the proxy (`https` set for an HTTPS proxy; path ignored).
    pub at: Target,
    pub scheme: Scheme,
    /// `Basic …` from the proxy URL's `user:password@`, sent to an HTTP(S) proxy only.
    pub auth: Option<HeaderValue>,
    /// The same credentials for SOCKS5's username/password method.
    pub socks_auth: Option<SocksAuth>,
}

/// SOCKS5 username and password (RFC 1929), kept out of `Debug` output.
#[derive(Clone, PartialEq)]
pub(crate) struct SocksAuth {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for SocksAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SocksAuth(…)")
    }
}

impl Proxy {
    /// Whether `http://` requests go to the proxy in absolute form (an HTTP(S) proxy) rather
    /// than through a tunnel.
    pub(crate) fn forwards_http(&self) -> bool {
        self.scheme != Scheme::Socks5
    }
}

/// Which proxy a request uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum Proxies {
    /// No proxy at all.
    #[default]
    None,
    /// `http_proxy`: every URL, whatever its host.
    Fixed(Proxy),
    /// From the environment.
    Env {
        http: Option<Box<Proxy>>,
        https: Option<Box<Proxy>>,
        no_proxy: NoProxy,
    },
}

impl Proxies {
    /// The proxy for a request to `t`, if any.
    pub(crate) fn for_target(&self, t: &Target) -> Option<&Proxy> {
        match self {
            Proxies::None => None,
            Proxies::Fixed(p) => Some(p),
            Proxies::Env {
                http,
                https,
                no_proxy,
            } => {
                let p = if t.https { https } else { http }.as_deref()?;
                no_proxy.use_proxy(&t.host, t.port).then_some(p)
            }
        }
    }

    /// Reads the proxy variables (`var` looks one up; an empty value counts as unset). A value
    /// that is not a usable proxy URL is logged and ignored, as Go's transport would fail every
    /// request through it.
    pub(crate) fn from_env(var: impl Fn(&str) -> Option<String>) -> Proxies {
        let any = |names: [&str; 2]| names.iter().find_map(|n| var(n).filter(|v| !v.is_empty()));
        let parse = |names: [&str; 2]| {
            let v = any(names)?;
            match parse_env_proxy(&v) {
                Ok(p) => Some(Box::new(p)),
                Err(e) => {
                    tracing::warn!("{}: {e}; not used", names[0]);
                    None
                }
            }
        };
        let cgi = var("REQUEST_METHOD").is_some_and(|v| !v.is_empty());
        let http = if cgi {
            None
        } else {
            parse(["HTTP_PROXY", "http_proxy"])
        };
        let https = parse(["HTTPS_PROXY", "https_proxy"]);
        if http.is_none() && https.is_none() {
            return Proxies::None;
        }
        Proxies::Env {
            http,
            https,
            no_proxy: NoProxy::parse(&any(["NO_PROXY", "no_proxy"]).unwrap_or_default()),
        }
    }
}

/// Percent-decodes the user or password of a URL.
fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("invalid %-escape in the proxy credentials")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "proxy credentials are not UTF-8".into())
}

/// Parses `http://[user[:password]@]host[:port]`, `https://…` (port 80 or 443 by default) or
/// `socks5://…` / `socks5h://…` (port 1080).
pub(crate) fn parse_proxy(url: &str) -> Result<Proxy, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("must be http://[user:password@]host:port, https://… or socks5://…")?;
    let (scheme, default_port) = match scheme {
        "http" => (Scheme::Http, 80),
        "https" => (Scheme::Https, 443),
        "socks5" | "socks5h" => (Scheme::Socks5, 1080),
        s => {
            return Err(format!(
                "proxy scheme {s:?} is not supported (http, https, socks5, socks5h)"
            ));
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, _) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let web = if scheme == Scheme::Https { "https" } else { "http" };
    let mut at = super::url::parse_url(&format!("{web}://{hostport}/"))?;
    let explicit_port = match hostport.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => hostport.contains(':'),
    };
    if !explicit_port {
        at.port = default_port;
    }
    let (mut auth, mut socks_auth) = (None, None);
    if let Some(u) = userinfo {
        let (user, pass) = u.split_once(':').unwrap_or((u, ""));
        let (user, password) = (percent_decode(user)?, percent_decode(pass)?);
        let mut v = HeaderValue::from_str(&format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ))
        .map_err(|_| "invalid proxy credentials")?;
        v.set_sensitive(true);
        auth = Some(v);
        if user.len() > 255 || password.len() > 255 {
            return Err("SOCKS5 credentials are at most 255 bytes each".into());
        }
        socks_auth = Some(SocksAuth { user, password });
    }
    Ok(Proxy {
        at,
        scheme,
        auth,
        socks_auth,
    })
}

/// An environment value: a URL, or `host:port` taken as `http://host:port` (Go does the same
/// for a value without a scheme it knows).
fn parse_env_proxy(v: &str) -> Result<Proxy, String> {
    let v = v.trim();
    match parse_proxy(v) {
        Ok(p) => Ok(p),
        Err(_) if !v.contains("://") => parse_proxy(&format!("http://{v}")),
        Err(e) => Err(e),
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq)]
enum Exclusion {
    All,
    Net(IpAddr, u8),
    Ip(IpAddr, Option<u16>),
    /// `.example.org` form; `exact` also matches `example.org` itself (an entry written
    /// without the leading dot).
    Domain {
        suffix: String,
        exact: bool,
        port: Option<u16>,
    },
}

/// The `NO_PROXY` list, in Go's reading: comma-separated, case-insensitive; `*` excludes
/// everything; an IP (optionally `:port`, IPv6 in brackets) or a CIDR block excludes those
/// addresses; `example.org`, `.example.org` and `*.example.org` exclude the subdomains, the
/// first also the name itself; `name:port` only that port.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NoProxy(Vec<Exclusion>);

fn parse_cidr(p: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = p.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl NoProxy {
    pub(crate) fn parse(list: &str) -> NoProxy {
        let mut out = Vec::new();
        for p in list.split(',') {
            let p = p.trim().to_ascii_lowercase();
            if p.is_empty() {
                continue;
            }
            if p == "*" {
                return NoProxy(vec![Exclusion::All]);
            }
            if let Some((ip, bits)) = parse_cidr(&p) {
                out.push(Exclusion::Net(ip, bits));
                continue;
            }
            // host:port, [v6]:port, or a bare host / IP.
            let (host, port) = match split_host_port(&p) {
                Some((h, port)) => (h, Some(port)),
                None => (p.as_str(), None),
            };
            if host.is_empty() {
                continue;
            }
            if let Ok(ip) = host.parse::<IpAddr>() {
                out.push(Exclusion::Ip(ip, port));
                continue;
            }
            let host = host.strip_prefix('*').unwrap_or(host);
            let (suffix, exact) = match host.strip_prefix('.') {
                Some(_) => (host.to_owned(), false),
                None => (format!(".{host}"), true),
            };
            out.push(Exclusion::Domain {
                suffix,
                exact,
                port,
            });
        }
        NoProxy(out)
    }

    /// Whether a request to `host:port` goes through the environment's proxy.
    pub(crate) fn use_proxy(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
            return false;
        }
        !self.0.iter().any(|e| match e {
            Exclusion::All => true,
            Exclusion::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
            Exclusion::Ip(want, p) => ip == Some(*want) && p.is_none_or(|p| p == port),
            Exclusion::Domain {
                suffix,
                exact,
                port: p,
            } => {
                ip.is_none()
                    && (host.ends_with(suffix.as_str()) || (*exact && host == suffix[1..]))
                    && p.is_none_or(|p| p == port)
            }
        })
    }
}

/// `host:port` or `[v6]:port` → (host without brackets, port); `None` without a valid port.
fn split_host_port(p: &str) -> Option<(&str, u16)> {
    if let Some(rest) = p.strip_prefix('[') {
        let (h, port) = rest.split_once("]:")?;
        return Some((h, port.parse().ok()?));
    }
    let (h, port) = p.rsplit_once(':')?;
    if h.contains(':') {
        return None; // a bare IPv6 address
    }
    Some((h, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::super::url::parse_url;
    use super::*;

    #[test]
    fn proxy_urls() {
        let p = parse_proxy("http://127.0.0.1:3128").unwrap();
        assert_eq!((p.at.host.as_str(), p.at.port, p.at.https), ("127.0.0.1", 3128, false));
        assert!(p.auth.is_none());
        let p = parse_proxy("https://u%40x:p%3As@proxy.example/").unwrap();
        assert_eq!((p.at.host.as_str(), p.at.port, p.at.https), ("proxy.example", 443, true));
        // base64("u@x:p:s")
        assert_eq!(p.auth.unwrap().to_str().unwrap(), "Basic dUB4OnA6cw==");
        let p = parse_proxy("http://user@h:8080").unwrap();
        assert_eq!(p.auth.unwrap().to_str().unwrap(), "Basic dXNlcjo=");
        let p = parse_proxy("socks5://u:p@h").unwrap();
        assert_eq!((p.scheme, p.at.port, p.at.https), (Scheme::Socks5, 1080, false));
        assert_eq!(p.socks_auth.as_ref().unwrap().password, "p");
        assert!(!format!("{p:?}").contains("\"p\""));
        assert_eq!(parse_proxy("socks5h://[::1]:9050").unwrap().at.port, 9050);
        assert_eq!(parse_proxy("http://[::1]").unwrap().at.port, 80);
        assert!(parse_proxy("socks4://h:1080").is_err());
        assert!(parse_proxy("h:1080").is_err());
        assert_eq!(
            parse_env_proxy("proxy.example:3128").unwrap().at.port,
            3128
        );
    }

    #[test]
    fn environment_selection() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            Proxies::from_env(move |k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let t = |u: &str| parse_url(u).unwrap();
        let p = env(&[
            ("http_proxy", "http://hp:1"),
            ("HTTPS_PROXY", "http://sp:2"),
            ("https_proxy", "http://ignored:3"),
            ("no_proxy", "internal.example, 10.0.0.0/8"),
        ]);
        let host = |u: &str| p.for_target(&t(u)).map(|p| p.at.host.clone());
        assert_eq!(host("http://a.example/").as_deref(), Some("hp"));
        assert_eq!(host("https://a.example/").as_deref(), Some("sp"));
        assert_eq!(host("http://internal.example/"), None);
        assert_eq!(host("http://x.internal.example/"), None);
        assert_eq!(host("http://10.1.2.3/"), None);
        assert_eq!(host("http://localhost:8080/"), None);
        assert_eq!(host("http://127.0.0.1/"), None);
        assert_eq!(host("http://[::1]/"), None);
        assert_eq!(env(&[]), Proxies::None);
        // CGI: HTTP_PROXY is not trusted.
        let cgi = env(&[("HTTP_PROXY", "http://hp:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(cgi, Proxies::None);
    }

    #[test]
    fn no_proxy_entries() {
        let n = NoProxy::parse("*.a.example, .b.example, c.example:8080, 192.168.1.1, [::2]:443");
        assert!(!n.use_proxy("x.a.example", 80));
        assert!(n.use_proxy("a.example", 80));
        assert!(!n.use_proxy("x.b.example", 80) && n.use_proxy("b.example", 80));
        assert!(!n.use_proxy("c.example", 8080) && n.use_proxy("c.example", 80));
        assert!(!n.use_proxy("C.Example", 8080));
        assert!(!n.use_proxy("192.168.1.1", 80) && n.use_proxy("192.168.1.2", 80));
        assert!(!n.use_proxy("::2", 443) && n.use_proxy("::2", 80));
        assert!(n.use_proxy("notc.example.org", 8080));
        assert!(!NoProxy::parse("*").use_proxy("any.example", 1));
        assert!(NoProxy::parse("").use_proxy("any.example", 1));
    }
}
