//! `x509_cert`: certificates of TLS endpoints and PEM files, one metric per certificate in the
//! chain, as telegraf's `x509_cert` input: measurement `x509_cert`.
//!
//! Which certificate each figure is about:
//! - every metric (one per certificate, leaf first, then the chain as the server sent it or as
//!   the file lists it): fields `age`, `expiry`, `startdate`, `enddate`, `public_key_length`
//!   and tags `common_name`, `issuer_common_name`, `serial_number`, `san`,
//!   `signature_algorithm`, `public_key_algorithm`, `organization` … of THAT certificate, and
//!   `type` = `leaf` (first), `root` (a self-issued CA) or `intermediate`;
//! - `verification` (tag), `verification_code` and `verification_error` (fields) are on the
//!   LEAF's metric only: the verdict of verifying the whole chain (leaf + the rest as
//!   intermediates) against the roots (system store or `tls_ca`) and the server name.
//!
//! Shares TLS and parsing code with `http_response` (`super::tls`).

use std::path::PathBuf;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use tokio::task::JoinSet;
use toml::Spanned;

use super::GatherError;
use super::probe::{self, Connect, InFlight, Source};
use super::tls::{self, CertInfo, Trust};
use crate::options::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.x509_cert]]`
///
/// One `x509_cert` line per certificate: the leaf first (`type=leaf`), then each further
/// certificate the server sent or the file holds (`type=intermediate`, or `root` for a
/// self-issued CA). `expiry`, `age`, `startdate`, `enddate`, `public_key_length` and the name,
/// serial and algorithm tags on a line describe THAT line's certificate. The verdict
/// (`verification` tag, `verification_code`, `verification_error`) is only on the leaf's line
/// and covers the whole chain as presented, checked against the roots and the server name.
/// Difference from telegraf: telegraf also verifies each non-leaf certificate on its own and
/// tags every line; webpki (rustls) verifies chains for an end-entity certificate only, so
/// non-leaf lines carry no verdict rather than a guessed one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// `https://host:port`, `tcp://host:port`, `file:///path.pem` or a plain path to a PEM file.
    sources: Spanned<Vec<String>>,
    /// Bound on connect + TLS handshake per source. Default 5s (telegraf's).
    timeout: Option<ConfigDuration>,
    /// Name for SNI and verification instead of the source's host. For files, the name the leaf
    /// is verified for; without it a file's chain is checked for trust and validity only.
    server_name: Option<String>,
    /// Leave out self-issued CA certificates. Default false.
    exclude_root_certs: Option<bool>,
    /// PEM file of CA certificates used instead of the system roots for verification.
    tls_ca: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SourceKind {
    Tls { host: String, port: u16 },
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub sources: Vec<(String, SourceKind)>,
    pub timeout: Duration,
    pub server_name: Option<String>,
    pub exclude_root_certs: bool,
    pub trust: Trust,
}

pub(crate) fn parse_source(s: &str) -> Result<SourceKind, String> {
    for (scheme, default) in [("https://", Some(443)), ("tcp://", None)] {
        if let Some(rest) = s.strip_prefix(scheme) {
            let rest = rest.trim_end_matches('/');
            let hp = match (probe::split_host_port(rest), default) {
                (Ok(hp), _) => hp,
                (Err(_), Some(p)) if !rest.contains(':') => (rest.to_owned(), p),
                (Err(e), _) => return Err(e),
            };
            return Ok(SourceKind::Tls {
                host: hp.0,
                port: hp.1,
            });
        }
    }
    if let Some(p) = s.strip_prefix("file://") {
        return Ok(SourceKind::File(PathBuf::from(p)));
    }
    if s.contains("://") {
        return Err(format!(
            "{s:?}: unsupported scheme (use https://, tcp://, file:// or a path)"
        ));
    }
    Ok(SourceKind::File(PathBuf::from(s)))
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let mut sources = Vec::new();
    for s in raw.sources.get_ref() {
        let k = parse_source(s).map_err(|e| SpanError::new(raw.sources.span(), "sources", e))?;
        sources.push((s.clone(), k));
    }
    if sources.is_empty() {
        return Err(SpanError::new(
            raw.sources.span(),
            "sources",
            "needs at least one source",
        ));
    }
    Ok(Config {
        sources,
        timeout: raw
            .timeout
            .map(|d| d.get())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(5)),
        server_name: raw.server_name,
        exclude_root_certs: raw.exclude_root_certs.unwrap_or(false),
        trust: Trust::from_config(&raw.tls_ca)?,
    })
}

pub(crate) struct X509Cert {
    config: Config,
    in_flight: InFlight,
}

/// A chain and its verification verdict.
struct Fetched {
    chain: Vec<CertificateDer<'static>>,
    verified: Result<(), String>,
}

impl X509Cert {
    pub(crate) fn new(config: Config) -> Self {
        X509Cert {
            config,
            in_flight: InFlight::default(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let mut set = JoinSet::new();
        for (i, (name, kind)) in self.config.sources.iter().enumerate() {
            let (c, kind, fl) = (self.config.clone(), kind.clone(), self.in_flight.clone());
            let _ = name;
            set.spawn(async move { (i, fetch(&c, &kind, &fl).await) });
        }
        let mut results = Vec::new();
        while let Some(Ok(r)) = set.join_next().await {
            results.push(r);
        }
        results.sort_by_key(|r| r.0);
        let now = tls::unix_now();
        for (i, r) in results {
            let source = &self.config.sources[i].0;
            let fetched = match r {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(source = %source, "x509_cert: {e}");
                    continue;
                }
            };
            for (n, der) in fetched.chain.iter().enumerate() {
                let info = match tls::parse_cert(der) {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(source = %source, "certificate {n}: {e}");
                        continue;
                    }
                };
                let kind = cert_type(n, &info);
                if kind == "root" && self.config.exclude_root_certs {
                    continue;
                }
                let verdict = (n == 0).then_some(&fetched.verified);
                acc.add(cert_metric(source, &info, kind, verdict, now, ts));
            }
        }
        Ok(())
    }
}

/// telegraf's rule: the first certificate is the leaf; a later self-issued CA is the root.
pub(crate) fn cert_type(index: usize, info: &CertInfo) -> &'static str {
    if index == 0 {
        "leaf"
    } else if info.is_ca && info.self_issued {
        "root"
    } else {
        "intermediate"
    }
}

pub(crate) fn cert_metric(
    source: &str,
    info: &CertInfo,
    kind: &'static str,
    verdict: Option<&Result<(), String>>,
    now: i64,
    ts: i64,
) -> Metric {
    let mut m = Metric::new("x509_cert", ts).tag("source", source.to_owned());
    for (k, v) in [
        ("common_name", &info.common_name),
        ("issuer_common_name", &info.issuer_common_name),
        ("organization", &info.organization),
        ("organizational_unit", &info.organizational_unit),
        ("country", &info.country),
        ("province", &info.province),
        ("locality", &info.locality),
    ] {
        if let Some(v) = v {
            m = m.tag(k, v.clone());
        }
    }
    m = m
        .tag("serial_number", info.serial_number.clone())
        .tag("signature_algorithm", info.signature_algorithm.clone())
        .tag("public_key_algorithm", info.public_key_algorithm.clone())
        .tag("type", kind);
    if !info.san.is_empty() {
        m = m.tag("san", info.san.join(","));
    }
    if let Some(v) = verdict {
        m = m.tag("verification", if v.is_ok() { "valid" } else { "invalid" });
    }
    m = m
        .field("age", now - info.not_before)
        .field("expiry", tls::expiry_seconds(info, now))
        .field("startdate", info.not_before)
        .field("enddate", info.not_after)
        .field_opt("public_key_length", info.public_key_length);
    if let Some(v) = verdict {
        m = m.field("verification_code", i64::from(v.is_err()));
        if let Err(e) = v {
            m = m.field("verification_error", e.clone());
        }
    }
    m
}

async fn fetch(c: &Config, kind: &SourceKind, in_flight: &InFlight) -> Result<Fetched, String> {
    match kind {
        SourceKind::File(path) => {
            let path = path.clone();
            let chain = tokio::task::spawn_blocking(move || tls::read_pem_certs(&path))
                .await
                .map_err(|e| e.to_string())??;
            let name = match &c.server_name {
                Some(n) => Some(n.clone()),
                None => chain
                    .first()
                    .and_then(|l| tls::parse_cert(l).ok())
                    .and_then(|i| i.san.first().cloned().or(i.common_name)),
            };
            let verified = match name.as_deref().map(tls::server_name) {
                Some(Ok(n)) => c.trust.verify_chain(&chain, &n),
                Some(Err(e)) => Err(e),
                None => Err("no name to verify the certificate for".into()),
            };
            Ok(Fetched { chain, verified })
        }
        SourceKind::Tls { host, port } => {
            let run = async {
                let addr = match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => std::net::SocketAddr::new(ip, *port),
                    Err(_) => probe::lookup(host, *port, c.timeout, in_flight)
                        .await
                        .map_err(|e| e.to_string())?[0],
                };
                let tcp = match probe::connect_tcp(addr, &Source::default(), c.timeout).await {
                    Connect::Ok(s) => s,
                    Connect::Timeout => return Err("connect timed out".to_owned()),
                    Connect::Failed(e) => return Err(format!("connect: {e}")),
                };
                let name = tls::server_name(c.server_name.as_deref().unwrap_or(host))?;
                let hs = tls::handshake(tcp, &c.trust, name, false, &[]).await;
                if let Err(e) = &hs.stream
                    && hs.record.chain.is_empty()
                {
                    return Err(format!("TLS handshake: {e}"));
                }
                Ok(Fetched {
                    chain: hs.record.chain,
                    verified: hs.record.verified.unwrap_or(Err("not verified".into())),
                })
            };
            tokio::time::timeout(c.timeout, run)
                .await
                .map_err(|_| "timed out".to_owned())?
        }
    }
}

super::ticked_input!(X509Cert, super::Shape::Ticked);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            parse_source("https://example.org"),
            Ok(SourceKind::Tls {
                host: "example.org".into(),
                port: 443
            })
        );
        assert_eq!(
            parse_source("tcp://[::1]:8443"),
            Ok(SourceKind::Tls {
                host: "::1".into(),
                port: 8443
            })
        );
        assert!(parse_source("tcp://h").is_err());
        assert_eq!(
            parse_source("file:///etc/x.pem"),
            Ok(SourceKind::File("/etc/x.pem".into()))
        );
        assert_eq!(
            parse_source("/etc/x.pem"),
            Ok(SourceKind::File("/etc/x.pem".into()))
        );
        assert!(parse_source("smtp://h:25").is_err());
    }
}
