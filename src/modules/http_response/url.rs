//! URL handling: parsing the configured URLs and following redirects.

/// A parsed URL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    /// As configured (the `server` tag).
    pub url: String,
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for Host / `:authority`.
    pub authority: String,
    /// Origin-form path and query, percent-encoded where needed.
    pub path: String,
}

/// Percent-encodes bytes a request target may not contain.
fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b <= 0x20 || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Parses `http(s)://host[:port][/path][?query]` (a `#fragment` is dropped).
pub(crate) fn parse_url(url: &str) -> Result<Target, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("URL must start with http:// or https://".into());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("credentials in the URL are not supported; use username/password".into());
    }
    let default_port = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or("unclosed [ in URL host")?;
        let port = match p.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| "invalid port in URL")?,
            None if p.is_empty() => default_port,
            None => return Err("invalid URL host".into()),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| "invalid port in URL")?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        return Err("URL has no host".into());
    }
    let tail = tail.split('#').next().unwrap_or("");
    let path = match tail {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{}", encode_path(t)),
        t => encode_path(t),
    };
    path.parse::<hyper::Uri>()
        .map_err(|e| format!("invalid URL path: {e}"))?;
    Ok(Target {
        url: url.to_owned(),
        https,
        host,
        port,
        authority: authority.to_owned(),
        path,
    })
}

/// The next URL for a `Location` value (absolute, or relative to the current target).
pub(super) fn follow(cur: &Target, loc: &str) -> Option<Target> {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return parse_url(loc).ok();
    }
    let scheme = if cur.https { "https" } else { "http" };
    let path = if loc.starts_with('/') {
        loc.to_owned()
    } else {
        let dir = cur.path.split('?').next().unwrap_or("/");
        let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{loc}")
    };
    let mut t = parse_url(&format!("{scheme}://{}{path}", cur.authority)).ok()?;
    t.url = cur.url.clone();
    Some(t)
}

/// The method of the request that follows a redirect answering `method` (Go's client rules):
/// 301, 302 and 303 turn anything but GET and HEAD into a GET without body; 307 and 308 keep
/// method and body. `None`: not a redirect Go follows.
pub(super) fn redirect_method(status: u16, method: &hyper::Method) -> Option<(hyper::Method, bool)> {
    match status {
        301..=303 if method == hyper::Method::GET || method == hyper::Method::HEAD => {
            Some((method.clone(), false))
        }
        301..=303 => Some((hyper::Method::GET, false)),
        307 | 308 => Some((method.clone(), true)),
        _ => None,
    }
}

/// Whether credentials and cookies of a request to `initial` may go to `dest` after a redirect
/// (Go: the same host or a subdomain of it, ports aside).
pub(super) fn same_or_subdomain(dest: &str, initial: &str) -> bool {
    let (dest, initial) = (dest.to_ascii_lowercase(), initial.to_ascii_lowercase());
    if dest == initial {
        return true;
    }
    if dest.contains([':', '%']) {
        return false;
    }
    dest.len() > initial.len()
        && dest.ends_with(&initial)
        && dest.as_bytes()[dest.len() - initial.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://example.org:8443/a b?q=\"x\",y=1#frag").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("example.org", 8443));
        assert_eq!(t.path, "/a%20b?q=%22x%22,y=1");
        let t = parse_url("http://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 80, "/"));
        let t = parse_url("http://h?x=1").unwrap();
        assert_eq!(t.path, "/?x=1");
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("http://u:p@h/").is_err());
        assert!(parse_url("http://h:x/").is_err());
    }

    #[test]
    fn redirect_rules() {
        use hyper::Method;
        assert_eq!(redirect_method(302, &Method::POST), Some((Method::GET, false)));
        assert_eq!(redirect_method(303, &Method::HEAD), Some((Method::HEAD, false)));
        assert_eq!(redirect_method(301, &Method::PUT), Some((Method::GET, false)));
        assert_eq!(redirect_method(307, &Method::POST), Some((Method::POST, true)));
        assert_eq!(redirect_method(304, &Method::GET), None);
        assert!(same_or_subdomain("a.example.org", "example.org"));
        assert!(same_or_subdomain("Example.org", "example.org"));
        assert!(!same_or_subdomain("badexample.org", "example.org"));
        assert!(!same_or_subdomain("example.org", "a.example.org"));
        assert!(!same_or_subdomain("::1", "1"));
    }

    #[test]
    fn relative_redirects() {
        let cur = parse_url("http://h:8080/a/b?x").unwrap();
        assert_eq!(follow(&cur, "/c").unwrap().path, "/c");
        assert_eq!(follow(&cur, "c").unwrap().path, "/a/c");
        assert_eq!(follow(&cur, "https://o/").unwrap().host, "o");
    }
}
