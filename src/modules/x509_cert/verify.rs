//! telegraf's verdict and `type` for every certificate of a chain, with Go's rules.
//!
//! telegraf verifies EACH certificate of a source (Go's `x509.Certificate.Verify`): the first
//! against the server name, every one against the roots with the rest of the chain as
//! intermediates, any key usage accepted. webpki (rustls) cannot do that: it refuses a CA
//! certificate as the end of a path and insists on the serverAuth usage. So the path building
//! is done here, in Go's order: the certificate's validity period, then (first certificate
//! only) the name, then a path of signatures up to a root (a certificate found in the roots
//! is a path by itself). Signatures are checked by `x509-parser` (ring). Error texts are Go's,
//! since telegraf writes them into `verification_error`.
//!
//! `type` follows telegraf too: a certificate whose signature verifies with its own key is
//! `root`; a certificate met as an issuer on a verified path is `intermediate` (`unknown` when
//! it is not a CA); anything else is `leaf`.

use std::collections::HashMap;

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::*;

/// Bound on the issuers followed from one certificate (Go's own limit is far higher, but real
/// chains are 2-4 long and a loop of cross-signed certificates must end).
const MAX_DEPTH: usize = 8;

/// The roots certificates are verified against, indexed by subject.
#[derive(Debug, Clone, Default)]
pub(crate) struct Roots {
    certs: Vec<CertificateDer<'static>>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
}

impl Roots {
    pub(crate) fn new(certs: impl IntoIterator<Item = CertificateDer<'static>>) -> Roots {
        let mut r = Roots::default();
        r.extend(certs);
        r
    }

    /// Adds certificates (a keystore's, which telegraf trusts for that keystore).
    pub(crate) fn extend(&mut self, certs: impl IntoIterator<Item = CertificateDer<'static>>) {
        for c in certs {
            let Ok((_, parsed)) = X509Certificate::from_der(&c) else {
                continue;
            };
            let subject = parsed.subject().as_raw().to_vec();
            self.by_subject
                .entry(subject)
                .or_default()
                .push(self.certs.len());
            self.certs.push(c);
        }
    }

    fn contains(&self, der: &[u8]) -> bool {
        self.certs.iter().any(|c| c.as_ref() == der)
    }

    fn with_subject(&self, subject: &[u8]) -> impl Iterator<Item = &CertificateDer<'static>> {
        self.by_subject
            .get(subject)
            .into_iter()
            .flatten()
            .map(|&i| &self.certs[i])
    }
}

/// What telegraf reports about one certificate of a chain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judged {
    pub verified: Result<(), String>,
    pub kind: &'static str,
}

/// Verdict and type for each certificate of `chain` (leaf first). `name` is the name the first
/// certificate must be valid for (none for files, as in telegraf). `now` is Unix seconds.
pub(crate) fn judge(chain: &[X509Certificate<'_>], roots: &Roots, name: Option<&str>, now: i64) -> Vec<Judged> {
    let mut classes: HashMap<&[u8], &'static str> = HashMap::new();
    let mut verdicts = Vec::with_capacity(chain.len());
    for (i, cert) in chain.iter().enumerate() {
        if self_signed(cert) {
            classes.insert(cert.signature_value.data.as_ref(), "root");
        }
        let result = verify_one(cert, chain, roots, if i == 0 { name } else { None }, now);
        if let Ok(path) = &result {
            for issuer in path {
                let (_, parsed) = match X509Certificate::from_der(issuer) {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                let sig = issuer_signature(chain, &parsed);
                let Some(sig) = sig else { continue };
                classes.entry(sig).or_insert(if !parsed.is_ca() {
                    "unknown"
                } else if self_signed(&parsed) {
                    "root"
                } else {
                    "intermediate"
                });
            }
        }
        verdicts.push(result.map(|_| ()));
    }
    chain
        .iter()
        .zip(verdicts)
        .map(|(c, verified)| Judged {
            verified,
            kind: classes
                .get(c.signature_value.data.as_ref())
                .copied()
                .unwrap_or("leaf"),
        })
        .collect()
}

/// The signature bytes of the chain's certificate with the same signature as `issuer` (roots
/// from the store are only classified when the chain carries them too).
fn issuer_signature<'a>(chain: &'a [X509Certificate<'_>], issuer: &X509Certificate<'_>) -> Option<&'a [u8]> {
    chain
        .iter()
        .find(|c| c.signature_value.data == issuer.signature_value.data)
        .map(|c| c.signature_value.data.as_ref())
}

/// telegraf's test for a root: the certificate's signature verifies with its own key.
pub(crate) fn self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.verify_signature(None).is_ok()
}

/// Go's `Verify` for one certificate: Ok with the issuers of the path found (DER, nearest
/// first; empty when the certificate is itself a root).
fn verify_one(
    cert: &X509Certificate<'_>,
    chain: &[X509Certificate<'_>],
    roots: &Roots,
    name: Option<&str>,
    now: i64,
) -> Result<Vec<Vec<u8>>, String> {
    valid_at(cert, now)?;
    if let Some(name) = name {
        verify_name(cert, name)?;
    }
    if roots.contains(cert.as_raw()) {
        return Ok(Vec::new());
    }
    let mut path = Vec::new();
    if find_path(cert, chain, roots, now, &mut path) {
        Ok(path)
    } else {
        Err("x509: certificate signed by unknown authority".into())
    }
}

/// Depth-first search for a path from `cert` to a root; `path` holds the issuers taken.
fn find_path(
    cert: &X509Certificate<'_>,
    chain: &[X509Certificate<'_>],
    roots: &Roots,
    now: i64,
    path: &mut Vec<Vec<u8>>,
) -> bool {
    if path.len() >= MAX_DEPTH {
        return false;
    }
    let issuer = cert.issuer().as_raw();
    for root in roots.with_subject(issuer) {
        if let Ok((_, r)) = X509Certificate::from_der(root)
            && signed_by(cert, &r)
            && valid_at(&r, now).is_ok()
        {
            path.push(root.to_vec());
            return true;
        }
    }
    for c in chain.iter().skip(1) {
        if c.subject().as_raw() != issuer
            || c.as_raw() == cert.as_raw()
            || path.iter().any(|p| p.as_slice() == c.as_raw())
            || !c.is_ca()
            || valid_at(c, now).is_err()
            || !signed_by(cert, c)
        {
            continue;
        }
        path.push(c.as_raw().to_vec());
        if find_path(c, chain, roots, now, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Go's validity check and message (times in RFC 3339, UTC).
fn valid_at(cert: &X509Certificate<'_>, now: i64) -> Result<(), String> {
    let (from, to) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    let bad = |rel: &str, t: i64| {
        format!(
            "x509: certificate has expired or is not yet valid: current time {} is {rel} {}",
            rfc3339(now),
            rfc3339(t)
        )
    };
    if now < from {
        Err(bad("before", from))
    } else if now > to {
        Err(bad("after", to))
    } else {
        Ok(())
    }
}

/// Go's `VerifyHostname`: an IP address against the IP SANs, a name against the DNS SANs
/// (case-insensitive, a trailing dot ignored, `*.` matching one leftmost label).
pub(crate) fn verify_name(cert: &X509Certificate<'_>, name: &str) -> Result<(), String> {
    let host = name.trim_start_matches('[').trim_end_matches(']');
    let (mut dns, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns.push((*d).to_owned()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        ips.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        if ips.contains(&ip) {
            return Ok(());
        }
        if ips.is_empty() {
            return Err(format!(
                "x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
            ));
        }
        let list: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
        return Err(format!(
            "x509: certificate is valid for {}, not {host}",
            list.join(", ")
        ));
    }
    let want = host.trim_end_matches('.').to_ascii_lowercase();
    if dns.iter().any(|d| name_matches(d, &want)) {
        return Ok(());
    }
    if dns.is_empty() {
        return Err(format!(
            "x509: certificate is not valid for any names, but wanted to match {host}"
        ));
    }
    Err(format!(
        "x509: certificate is valid for {}, not {host}",
        dns.join(", ")
    ))
}

fn name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(std::net::Ipv6Addr::from(a).into())
        }
        _ => None,
    }
}

/// Unix seconds as RFC 3339 in UTC (`2026-12-01T20:09:09Z`), Go's `time.RFC3339` form.
pub(crate) fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_796_213_349), "2026-12-02T12:09:09Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn wildcards_match_one_label() {
        assert!(name_matches("*.example.org", "www.example.org"));
        assert!(!name_matches("*.example.org", "a.b.example.org"));
        assert!(!name_matches("*.example.org", "example.org"));
        assert!(name_matches("Example.ORG.", "example.org"));
    }
}
