//! `x509_cert`: certificates of TLS endpoints, SMTP servers (STARTTLS), PEM files and Java or
//! PKCS#12 keystores, one metric per certificate, as telegraf's `x509_cert` input: measurement
//! `x509_cert`, telegraf's tags and fields on every line.
//!
//! Each line is about ONE certificate: `age`, `expiry`, `startdate`, `enddate`,
//! `public_key_length` and the name, serial and algorithm tags are that certificate's, and so is
//! its verdict (`verification`, `verification_code`, `verification_error`): as in telegraf,
//! every certificate is verified on its own against the roots with the rest of the chain as
//! intermediates, and the first one also against the server name (`verify`). `type` is
//! telegraf's classification (`leaf`, `intermediate`, `root`). The leaf of a TLS source carries
//! the stapled OCSP response's status when the server stapled one (`ocsp`).
//!
//! Submodules: `source` (the `sources` forms, tags and file globs), `fetch` (TCP, proxy,
//! STARTTLS, TLS), `keystore` (JKS and PKCS#12), `verify`, `ocsp`.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use tokio::task::JoinSet;
use toml::Spanned;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::GatherError;
use super::probe::InFlight;
use super::tls::{self, CertInfo, Trust};
use crate::options::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

pub(crate) mod der;
pub(crate) mod fetch;
pub(crate) mod keystore;
pub(crate) mod ocsp;
pub(crate) mod source;
pub(crate) mod verify;

pub(crate) use source::parse_source;
use source::{Source, SourceKind};

/// `[[inputs.x509_cert]]`
///
/// One `x509_cert` line per certificate of each source, first certificate first, with
/// telegraf's tags and fields (see the module docs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Where certificates come from: `https://host[:port]` (port 443 by default),
    /// `tcp://host:port` (`tcp4://`, `tcp6://` for one address family), `smtp://host:port`
    /// (STARTTLS), a PEM file as a path or `file://path` (globs: `*`, `?`, `[a-z]`, `**`
    /// across directories), `jks://path` and `pkcs12://path` (with `password`). `udp://`
    /// (DTLS) and `wincertstore://` are refused with the reason.
    sources: Spanned<Vec<String>>,
    /// Bound on connect + STARTTLS + TLS handshake per network source. Default 5s (telegraf's).
    timeout: Option<ConfigDuration>,
    /// The name sent as SNI (and in SMTP's EHLO) and the first certificate is verified for,
    /// instead of the source's host; for files, a name to verify the first certificate for
    /// (without it a file's certificates are checked for trust and validity only). Same as
    /// `tls_server_name`; give only one.
    server_name: Option<Spanned<String>>,
    /// See `server_name`.
    tls_server_name: Option<Spanned<String>>,
    /// Write only the first certificate of each source (telegraf's "leaf only"). Default false.
    exclude_root_certs: Option<bool>,
    /// Write `serial_number` with at least 16 hex digits, zero-padded (telegraf's `%016x`).
    /// Default false: no leading zeros.
    pad_serial_with_zeroes: Option<bool>,
    /// Password of the `jks://` and `pkcs12://` keystores. Default empty.
    password: Option<String>,
    /// PEM file of CA certificates used instead of the system roots for verification.
    tls_ca: Option<Spanned<String>>,
    /// PEM client certificate (chain) for servers that ask for one; with `tls_key`.
    tls_cert: Option<Spanned<String>>,
    /// PEM private key of `tls_cert`.
    tls_key: Option<String>,
    /// Reach `tcp://` and `https://` sources through `proxy_url` (or, without it, the
    /// `ALL_PROXY` environment variable, minus `NO_PROXY`). Default false: `proxy_url` alone
    /// does nothing, as in telegraf.
    use_proxy: Option<bool>,
    /// `http://[user:password@]host:port` (CONNECT; `https://` is the same to telegraf) or
    /// `socks5://[user:password@]host:port`.
    proxy_url: Option<Spanned<String>>,
}

/// How `use_proxy` resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ProxyChoice {
    None,
    Url(fetch::Proxy),
    Environment,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub sources: Vec<Source>,
    pub timeout: Duration,
    pub server_name: Option<String>,
    pub exclude_root_certs: bool,
    pub pad_serial: bool,
    pub password: String,
    /// Handshakes (client certificate); the chain is verified by `verify` against `roots`.
    pub trust: Trust,
    pub roots: Arc<verify::Roots>,
    pub proxy: ProxyChoice,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let mut sources = Vec::new();
    for s in raw.sources.get_ref() {
        sources.push(
            parse_source(s).map_err(|e| SpanError::new(raw.sources.span(), "sources", e))?,
        );
    }
    if sources.is_empty() {
        return Err(SpanError::new(
            raw.sources.span(),
            "sources",
            "no source configured",
        ));
    }
    let server_name = match (raw.server_name, raw.tls_server_name) {
        (Some(a), Some(_)) => {
            return Err(SpanError::new(
                a.span(),
                "server_name",
                "both server_name and tls_server_name are set, but they are mutually exclusive",
            ));
        }
        (Some(n), None) | (None, Some(n)) => {
            let span = n.span();
            let n = n.into_inner();
            tls::server_name(&n).map_err(|e| SpanError::new(span, "tls_server_name", e))?;
            Some(n)
        }
        (None, None) => None,
    };
    let proxy = match (raw.use_proxy.unwrap_or(false), raw.proxy_url) {
        (false, _) => ProxyChoice::None,
        (true, None) => ProxyChoice::Environment,
        (true, Some(u)) => ProxyChoice::Url(
            fetch::proxy_from_url(u.get_ref())
                .map_err(|e| SpanError::new(u.span(), "proxy_url", e))?,
        ),
    };
    let roots = match &raw.tls_ca {
        None => tls::system_root_certs().to_vec(),
        Some(p) => tls::read_pem_certs(Path::new(p.get_ref()))
            .map_err(|e| SpanError::new(p.span(), "tls_ca", e))?,
    };
    Ok(Config {
        sources,
        timeout: raw
            .timeout
            .map(|d| d.get())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(5)),
        server_name,
        exclude_root_certs: raw.exclude_root_certs.unwrap_or(false),
        pad_serial: raw.pad_serial_with_zeroes.unwrap_or(false),
        password: raw.password.unwrap_or_default(),
        trust: Trust::from_options(&raw.tls_ca, &raw.tls_cert, &raw.tls_key)?,
        roots: Arc::new(verify::Roots::new(roots)),
        proxy,
    })
}

pub(crate) struct X509Cert {
    config: Arc<Config>,
    in_flight: InFlight,
}

/// What one location gave: its certificates, the stapled OCSP response, and certificates to
/// trust for it besides the roots (a keystore's own, as telegraf does).
#[derive(Default)]
pub(crate) struct Fetched {
    pub chain: Vec<CertificateDer<'static>>,
    pub ocsp: Vec<u8>,
    pub trusted: Vec<CertificateDer<'static>>,
}

/// One thing to read: a network source or keystore as configured, or one file a glob matched.
#[derive(Debug, Clone)]
enum Location {
    Source(SourceKind),
    File(PathBuf),
}

impl X509Cert {
    pub(crate) fn new(config: Config) -> Self {
        X509Cert {
            config: Arc::new(config),
            in_flight: InFlight::default(),
        }
    }

    /// The locations of this gather, files expanded, in `sources` order; the tag of each.
    async fn locations(&self) -> Vec<(String, Location)> {
        let sources = self.config.sources.clone();
        let expanded = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for s in sources {
                match &s.kind {
                    SourceKind::Files(pattern) => {
                        let files = source::expand(pattern);
                        if files.is_empty() {
                            tracing::warn!(pattern = %pattern, "x509_cert: could not find file");
                        }
                        for f in files {
                            let tag = source::file_tag(&f.to_string_lossy());
                            out.push((tag, Location::File(f)));
                        }
                    }
                    kind => out.push((s.tag.clone(), Location::Source(kind.clone()))),
                }
            }
            out
        })
        .await;
        expanded.unwrap_or_default()
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let locations = self.locations().await;
        let mut set = JoinSet::new();
        for (i, (_, loc)) in locations.iter().enumerate() {
            let (c, loc, fl) = (self.config.clone(), loc.clone(), self.in_flight.clone());
            set.spawn(async move { (i, get(&c, &loc, &fl).await) });
        }
        let mut results = Vec::new();
        while let Some(Ok(r)) = set.join_next().await {
            results.push(r);
        }
        results.sort_by_key(|r| r.0);
        let now = tls::unix_now();
        for (i, r) in results {
            let (tag, loc) = &locations[i];
            match r {
                Ok(f) => {
                    let name = self.config.server_name.as_deref().or(match loc {
                        Location::Source(SourceKind::Tls { host, .. }) => Some(host.as_str()),
                        _ => None,
                    });
                    for m in lines(&self.config, tag, &f, name, now, ts) {
                        acc.add(m);
                    }
                }
                Err(e) => tracing::warn!(source = %tag, "x509_cert: cannot get SSL cert: {e}"),
            }
        }
        Ok(())
    }
}

/// The lines of one location: one per certificate (only the first with
/// `exclude_root_certs`); `name` is the name the first certificate must be valid for.
pub(crate) fn lines(
    c: &Config,
    tag: &str,
    f: &Fetched,
    name: Option<&str>,
    now: i64,
    ts: i64,
) -> Vec<Metric> {
    let parsed: Vec<(X509Certificate<'_>, CertInfo)> = f
        .chain
        .iter()
        .enumerate()
        .filter_map(|(n, der)| {
            let r = X509Certificate::from_der(der)
                .map_err(|e| e.to_string())
                .and_then(|(_, x)| Ok((x, tls::parse_cert(der)?)));
            r.map_err(|e| tracing::warn!(source = %tag, "certificate {n}: {e}"))
                .ok()
        })
        .collect();
    let (certs, infos): (Vec<_>, Vec<_>) = parsed.into_iter().unzip();
    let judged = if f.trusted.is_empty() {
        verify::judge(&certs, &c.roots, name, now)
    } else {
        let mut roots = (*c.roots).clone();
        roots.extend(f.trusted.iter().cloned());
        verify::judge(&certs, &roots, name, now)
    };
    let stapled = (!f.ocsp.is_empty()).then(|| ocsp_figures(&f.ocsp, &certs));
    let mut out = Vec::new();
    for (n, (info, j)) in infos.iter().zip(&judged).enumerate() {
        let mut m = cert_metric(tag, info, j, c.pad_serial, now, ts);
        m = match (n, &stapled) {
            (0, Some(o)) => o.apply(m),
            _ => m.tag("ocsp_stapled", "no"),
        };
        out.push(m);
        if c.exclude_root_certs {
            break;
        }
    }
    out
}

/// The stapled response as telegraf reports it on the leaf's line.
enum Stapled {
    Read { ocsp: ocsp::Ocsp, verified: bool },
    Unreadable(String),
}

impl Stapled {
    fn apply(&self, m: Metric) -> Metric {
        match self {
            Stapled::Unreadable(e) => m.tag("ocsp_stapled", "no").field("ocsp_error", e.clone()),
            Stapled::Read { ocsp, verified } => m
                .tag("ocsp_stapled", "yes")
                .tag("ocsp_verified", if *verified { "yes" } else { "no" })
                .tag("ocsp_status", ocsp.status_name())
                .field("ocsp_status_code", ocsp.status)
                .field_opt("ocsp_revoked_at", ocsp.revoked_at)
                .field("ocsp_produced_at", ocsp.produced_at)
                .field("ocsp_this_update", ocsp.this_update)
                .field("ocsp_next_update", ocsp.next_update),
        }
    }
}

/// golang.org/x/crypto/ocsp's `ParseResponse` as telegraf calls it. A response carrying a
/// responder certificate must be signed by that certificate (else it is unreadable); the issuer
/// telegraf finds in the chain (by the leaf's issuer common name and serialNumber attribute)
/// must have signed the responder certificate, or the response itself when none is embedded,
/// for `ocsp_verified=yes`.
fn ocsp_figures(der: &[u8], certs: &[X509Certificate<'_>]) -> Stapled {
    let ocsp = match ocsp::parse(der) {
        Ok(o) => o,
        Err(e) => return Stapled::Unreadable(e),
    };
    let Some(leaf) = certs.first() else {
        return Stapled::Unreadable("no certificate".into());
    };
    let responder = match &ocsp.responder {
        None => None,
        Some(d) => match X509Certificate::from_der(d) {
            Ok((_, c)) if ocsp.signed_by(&c) => Some(c),
            Ok(_) => {
                return Stapled::Unreadable(
                    "bad signature on embedded certificate".into(),
                );
            }
            Err(e) => return Stapled::Unreadable(e.to_string()),
        },
    };
    let attr = |n: &x509_parser::x509::X509Name<'_>, cn: bool| -> Option<String> {
        use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_SERIALNUMBER};
        let oid = if cn { &OID_X509_COMMON_NAME } else { &OID_X509_SERIALNUMBER };
        n.iter_by_oid(oid)
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_owned)
    };
    let issuer = certs.iter().skip(1).find(|c| {
        attr(leaf.issuer(), true) == attr(c.subject(), true)
            && attr(leaf.issuer(), false) == attr(c.subject(), false)
    });
    let verified = match (issuer, &responder) {
        (None, _) => false,
        (Some(i), Some(r)) => r.verify_signature(Some(i.public_key())).is_ok(),
        (Some(i), None) => ocsp.signed_by(i),
    };
    Stapled::Read { ocsp, verified }
}

/// One certificate's line without the OCSP part.
pub(crate) fn cert_metric(
    source: &str,
    info: &CertInfo,
    j: &verify::Judged,
    pad_serial: bool,
    now: i64,
    ts: i64,
) -> Metric {
    let mut m = Metric::new("x509_cert", ts).tag("source", source.to_owned());
    for (k, v) in [
        ("common_name", &info.common_name),
        ("issuer_common_name", &info.issuer_common_name),
        ("issuer_serial_number", &info.issuer_serial_number),
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
    let serial = match pad_serial {
        true => format!("{:0>16}", info.serial_number),
        false => info.serial_number.clone(),
    };
    m = m
        .tag("serial_number", serial)
        .tag("signature_algorithm", info.signature_algorithm.clone())
        .tag("public_key_algorithm", info.public_key_algorithm.clone())
        .tag("type", j.kind)
        .tag(
            "verification",
            if j.verified.is_ok() { "valid" } else { "invalid" },
        );
    if !info.san.is_empty() {
        m = m.tag("san", info.san.join(","));
    }
    m = m
        .field("age", now - info.not_before)
        .field("expiry", tls::expiry_seconds(info, now))
        .field("startdate", info.not_before)
        .field("enddate", info.not_after)
        .field_opt("public_key_length", info.public_key_length)
        .field("verification_code", i64::from(j.verified.is_err()));
    if let Err(e) = &j.verified {
        m = m.field("verification_error", e.trim().trim_matches(':').to_owned());
    }
    m
}

async fn get(c: &Config, loc: &Location, in_flight: &InFlight) -> Result<Fetched, String> {
    let read = |path: PathBuf, kind: fn(&Path, &str) -> Result<keystore::Store, String>| {
        let password = c.password.clone();
        async move {
            tokio::task::spawn_blocking(move || kind(&path, &password))
                .await
                .map_err(|e| e.to_string())?
        }
    };
    match loc {
        Location::File(path) => {
            let path = path.clone();
            let chain = tokio::task::spawn_blocking(move || tls::read_pem_certs(&path))
                .await
                .map_err(|e| e.to_string())??;
            Ok(Fetched {
                chain,
                ..Fetched::default()
            })
        }
        Location::Source(SourceKind::Files(_)) => Err("unexpanded glob".into()),
        Location::Source(SourceKind::Jks(p)) => read(p.clone(), keystore::read_jks).await.map(Into::into),
        Location::Source(SourceKind::Pkcs12(p)) => {
            read(p.clone(), keystore::read_pkcs12).await.map(Into::into)
        }
        Location::Source(SourceKind::Tls {
            host,
            port,
            family,
            smtp,
        }) => {
            let env_proxy;
            let proxy = match &c.proxy {
                ProxyChoice::None => None,
                ProxyChoice::Url(p) => Some(p),
                ProxyChoice::Environment => {
                    env_proxy = fetch::proxy_from_environment(host, *port)?;
                    env_proxy.as_ref()
                }
            };
            let net = fetch::Net {
                trust: &c.trust,
                server_name: c.server_name.as_deref(),
                proxy,
                timeout: c.timeout,
                in_flight,
            };
            let served = fetch::fetch(&net, host, *port, *family, *smtp).await?;
            Ok(Fetched {
                chain: served.chain,
                ocsp: served.ocsp,
                trusted: Vec::new(),
            })
        }
    }
}

super::ticked_input!(X509Cert, super::Shape::Ticked);


#[cfg(test)]
mod tests {
    use super::*;

    /// The chain of the PKCS#12 seed (leaf, intermediate) with the OCSP seeds of the same PKI:
    /// a response without certificates, signed by the intermediate, is verified; one embedding
    /// the intermediate as its responder is readable but not verified, since the intermediate
    /// did not sign itself (Go's x/crypto/ocsp rule telegraf inherits).
    #[test]
    fn stapled_responses_are_verified_as_go_does() {
        let p12 = &include_bytes!("../../../fuzz/seeds/x509/pkcs12-key-and-chain")[1..];
        let chain = keystore::parse_pkcs12(p12, "changeit").unwrap().0;
        let certs: Vec<X509Certificate<'_>> = chain
            .iter()
            .map(|d| X509Certificate::from_der(d).unwrap().1)
            .collect();
        let revoked = &include_bytes!("../../../fuzz/seeds/x509/ocsp-revoked")[1..];
        let embedded = &include_bytes!("../../../fuzz/seeds/x509/ocsp-good-embedded-responder")[1..];
        let tags = |der: &[u8]| {
            let m = ocsp_figures(der, &certs).apply(Metric::new("x509_cert", 0));
            let get = |k: &str| m.tags.iter().find(|(t, _)| t == k).map(|(_, v)| v.clone());
            (get("ocsp_stapled"), get("ocsp_verified"), get("ocsp_status"))
        };
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(tags(revoked), (s("yes"), s("yes"), s("revoked")));
        assert_eq!(tags(embedded), (s("yes"), s("no"), s("good")));
        assert_eq!(tags(&revoked[..40]).0, s("no"));
        // Without the issuer in the chain nothing can be verified.
        let m = ocsp_figures(revoked, &certs[..1]).apply(Metric::new("x509_cert", 0));
        assert!(m.tags.iter().any(|(k, v)| k == "ocsp_verified" && v == "no"));
    }
}
