//! A cookie jar (RFC 6265 storage and matching, as Go's `net/http/cookiejar` without a public
//! suffix list), used only with cookie authentication: telegraf gives the client a jar then, so
//! the login's cookie and any cookie a probed server sets are sent on later requests that match
//! them by host, path and scheme.

use std::time::{Duration, Instant};

use super::url::Target;

#[derive(Debug, Clone, PartialEq)]
struct Cookie {
    name: String,
    value: String,
    /// Lower-case host (host-only) or domain without a leading dot.
    domain: String,
    host_only: bool,
    path: String,
    secure: bool,
    expires: Option<Instant>,
    /// Order of creation, for the Cookie header's order.
    seq: u64,
}

/// Most cookies a jar keeps (the oldest go first): a server setting new names at every answer
/// must not grow the agent without bound. Browsers keep a few thousand in all.
const MAX_COOKIES: usize = 1000;

/// Largest `name=value` kept, RFC 6265 §6.1's minimum a client must support (browsers refuse
/// larger ones too).
const MAX_COOKIE_BYTES: usize = 4096;

/// The cookies of one input instance.
#[derive(Debug, Default, Clone)]
pub(crate) struct Jar {
    cookies: Vec<Cookie>,
    seq: u64,
}

/// The default path of RFC 6265 §5.1.4: the request path up to its last `/`.
fn default_path(path: &str) -> String {
    let p = path.split('?').next().unwrap_or("/");
    match p.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => p[..i].into(),
    }
}

fn domain_match(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

fn path_match(req: &str, cookie: &str) -> bool {
    let req = req.split('?').next().unwrap_or("/");
    req == cookie
        || (req.starts_with(cookie) && (cookie.ends_with('/') || req[cookie.len()..].starts_with('/')))
}

impl Jar {
    /// Stores the cookies of `Set-Cookie` values received from `from` at `now`.
    pub(crate) fn store(&mut self, from: &Target, set_cookies: &[String], now: Instant) {
        for sc in set_cookies {
            self.store_one(from, sc, now);
        }
    }

    fn store_one(&mut self, from: &Target, sc: &str, now: Instant) {
        let mut parts = sc.split(';');
        let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim().trim_matches('"'));
        if name.is_empty() || name.len() + value.len() > MAX_COOKIE_BYTES {
            return;
        }
        let host = from.host.to_ascii_lowercase();
        let mut c = Cookie {
            name: name.to_owned(),
            value: value.to_owned(),
            domain: host.clone(),
            host_only: true,
            path: default_path(&from.path),
            secure: false,
            expires: None,
            seq: 0,
        };
        let mut max_age: Option<i64> = None;
        let mut expired_by_date = false;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "domain" if !v.is_empty() => {
                    let d = v.trim_start_matches('.').to_ascii_lowercase();
                    // A domain cookie must cover the host that set it; an IP sets host-only.
                    if !domain_match(&host, &d) {
                        return;
                    }
                    if host.parse::<std::net::IpAddr>().is_err() {
                        c.domain = d;
                        c.host_only = false;
                    }
                }
                "path" if v.starts_with('/') => c.path = v.to_owned(),
                "secure" => c.secure = true,
                "max-age" => max_age = v.parse().ok(),
                "expires" => expired_by_date = expired_date(v),
                _ => {}
            }
        }
        let expires = match max_age {
            Some(s) if s <= 0 => None,
            Some(s) => Some(now + Duration::from_secs(s as u64)),
            None => None,
        };
        let delete = max_age.is_some_and(|s| s <= 0) || (max_age.is_none() && expired_by_date);
        self.cookies
            .retain(|o| !(o.name == c.name && o.domain == c.domain && o.path == c.path));
        if delete {
            return;
        }
        c.expires = expires;
        self.seq += 1;
        c.seq = self.seq;
        if self.cookies.len() >= MAX_COOKIES {
            self.cookies.remove(0);
        }
        self.cookies.push(c);
    }

    /// The `Cookie` header value for a request to `t` at `now`, if any cookie matches: longer
    /// paths first, then older cookies first (RFC 6265 §5.4).
    pub(crate) fn header_for(&mut self, t: &Target, now: Instant) -> Option<String> {
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        let host = t.host.to_ascii_lowercase();
        let mut m: Vec<&Cookie> = self
            .cookies
            .iter()
            .filter(|c| {
                (if c.host_only {
                    c.domain == host
                } else {
                    domain_match(&host, &c.domain)
                }) && path_match(&t.path, &c.path)
                    && (!c.secure || t.https)
            })
            .collect();
        if m.is_empty() {
            return None;
        }
        m.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(a.seq.cmp(&b.seq)));
        Some(
            m.iter()
                .map(|c| format!("{}={}", c.name, c.value))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// Whether an `Expires` date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) is in the past.
/// Other date forms are ignored (the cookie lives as a session cookie).
fn expired_date(v: &str) -> bool {
    let parts: Vec<&str> = v.split([' ', ',', ':', '-']).filter(|p| !p.is_empty()).collect();
    // [wkday, dd, Mon, yyyy, hh, mm, ss, GMT]
    let [_, d, mon, y, hh, mm, ss, ..] = parts.as_slice() else {
        return false;
    };
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let Some(mon) = months
        .iter()
        .position(|m| mon.to_ascii_lowercase().starts_with(m))
    else {
        return false;
    };
    let (Ok(d), Ok(y), Ok(hh), Ok(mm), Ok(ss)) = (
        d.parse::<i64>(),
        y.parse::<i64>(),
        hh.parse::<i64>(),
        mm.parse::<i64>(),
        ss.parse::<i64>(),
    ) else {
        return false;
    };
    // Days from the civil date (Howard Hinnant's algorithm), then seconds since the epoch.
    let (y, m) = if mon < 2 { (y - 1, mon as i64 + 13) } else { (y, mon as i64 + 1) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m - 3) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let at = days * 86400 + hh * 3600 + mm * 60 + ss;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    at <= now
}

#[cfg(test)]
mod tests {
    use super::super::url::parse_url;
    use super::*;

    fn t(u: &str) -> Target {
        parse_url(u).unwrap()
    }

    #[test]
    fn host_path_scheme_and_order() {
        let now = Instant::now();
        let mut j = Jar::default();
        j.store(
            &t("http://app.example/auth/login"),
            &[
                "session=abc; Path=/; HttpOnly".into(),
                "deep=1; Path=/api".into(),
                "here=2".into(),
                "sec=3; Secure; Path=/".into(),
                "wide=4; Domain=.example; Path=/".into(),
                "alien=5; Domain=other.example".into(),
            ],
            now,
        );
        assert_eq!(
            j.header_for(&t("http://app.example/api/x"), now).as_deref(),
            Some("deep=1; session=abc; wide=4")
        );
        assert_eq!(
            j.header_for(&t("https://app.example/auth/me"), now).as_deref(),
            Some("here=2; session=abc; sec=3; wide=4")
        );
        assert_eq!(
            j.header_for(&t("http://sub.example/"), now).as_deref(),
            Some("wide=4")
        );
        assert_eq!(
            j.header_for(&t("http://other.example/"), now).as_deref(),
            Some("wide=4")
        );
        assert_eq!(j.header_for(&t("http://elsewhere.test/"), now), None);
        assert_eq!(j.header_for(&t("http://app.example/apix"), now).as_deref(), Some("session=abc; wide=4"));
    }

    #[test]
    fn replace_expire_and_delete() {
        let now = Instant::now();
        let mut j = Jar::default();
        let u = t("http://127.0.0.1:8080/");
        j.store(&u, &["a=1; Max-Age=10".into(), "b=2".into()], now);
        j.store(&u, &["b=3".into()], now);
        assert_eq!(j.header_for(&u, now).as_deref(), Some("a=1; b=3"));
        assert_eq!(
            j.header_for(&u, now + Duration::from_secs(11)).as_deref(),
            Some("b=3")
        );
        j.store(&u, &["b=; Expires=Thu, 01 Jan 1970 00:00:00 GMT".into()], now);
        assert_eq!(j.header_for(&u, now), None);
        j.store(&u, &["c=1".into(), "c=; Max-Age=0".into()], now);
        assert_eq!(j.header_for(&u, now), None);
        // Bounded: the oldest cookies go, oversized ones are not kept.
        let many: Vec<String> = (0..MAX_COOKIES + 5).map(|i| format!("n{i}=v")).collect();
        j.store(&u, &many, now);
        assert_eq!(j.cookies.len(), MAX_COOKIES);
        assert_eq!(j.cookies[0].name, "n5");
        let mut j = Jar::default();
        j.store(&u, &[format!("big={}", "x".repeat(MAX_COOKIE_BYTES))], now);
        assert_eq!(j.header_for(&u, now), None);
        // An IP host cannot set a domain cookie for another host.
        j.store(&u, &["d=1; Domain=127.0.0.2".into()], now);
        assert_eq!(j.header_for(&t("http://127.0.0.2:8080/"), now), None);
        assert!(!expired_date("Fri, 01 Jan 2100 00:00:00 GMT"));
        assert!(expired_date("Sun, 06 Nov 1994 08:49:37 GMT"));
    }
}
