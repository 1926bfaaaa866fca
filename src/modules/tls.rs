//! TLS and certificate code shared by `http_response` and `x509_cert`: trust roots, a verifier
//! that records the peer's chain and the real verification result as data, the TLS handshake,
//! and X.509 parsing into the figures both inputs report.
//!
//! Why a recording verifier: a probe must report an untrusted or expired certificate (and its
//! expiry) instead of only failing. rustls calls [`RecordingVerifier::verify_server_cert`] with
//! the whole chain; it runs the real webpki verification, keeps chain and verdict, and then
//! either returns that verdict (`enforce = true`: the handshake fails like any strict client) or
//! accepts (`enforce = false`: `insecure_skip_verify`, and `x509_cert`, which reports the
//! verdict as a tag). Handshake signatures are always checked by the real verifier.
//!
//! Roots: the operating system's store (`rustls-native-certs`, i.e. /etc/ssl/certs on Debian),
//! because telegraf (Go's crypto/x509) uses the same store: a private CA an operator installed
//! system-wide keeps working after the switch. `tls_ca` replaces the system roots, as in telegraf.
//!
//! X.509 parsing uses `x509-parser` (rusticata, pure Rust, no default features): subject and
//! issuer names, SAN, validity, key sizes and signature OIDs need a full DER walk, which is
//! several hundred lines to get right by hand.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The crypto provider (ring), built once.
fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system roots, loaded once per process (a few hundred certificates, ~5 ms).
fn system_roots() -> Arc<RootCertStore> {
    static R: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    R.get_or_init(|| {
        let mut store = RootCertStore::empty();
        let loaded = rustls_native_certs::load_native_certs();
        if !loaded.errors.is_empty() {
            tracing::debug!(errors = ?loaded.errors, "some system CA certificates could not be read");
        }
        let (_, _) = store.add_parsable_certificates(loaded.certs);
        Arc::new(store)
    })
    .clone()
}

/// Reads every certificate of a PEM file.
pub(crate) fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    pem_certs(&data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Every certificate of PEM text (other PEM sections are skipped).
pub(crate) fn pem_certs(data: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(data)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// Trust settings resolved once per input instance and shared by its probes.
#[derive(Clone)]
pub(crate) struct Trust {
    verifier: Arc<WebPkiServerVerifier>,
    /// Client certificate chain and key for servers that ask for one (mutual TLS).
    client: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trust")
    }
}

impl Trust {
    /// `Trust::new` for a config's `tls_ca` key, with errors pointing at that key.
    pub(crate) fn from_config(
        tls_ca: &Option<toml::Spanned<String>>,
    ) -> Result<Trust, crate::options::SpanError> {
        Trust::new(tls_ca.as_ref().map(|p| Path::new(p.get_ref()))).map_err(|e| {
            let span = tls_ca.as_ref().map_or(0..0, |p| p.span());
            crate::options::SpanError::new(span, "tls_ca", e)
        })
    }

    /// Trust for a config's `tls_ca`, `tls_cert` and `tls_key` keys (the client certificate
    /// and key go together), with errors pointing at the key.
    pub(crate) fn from_options(
        tls_ca: &Option<toml::Spanned<String>>,
        tls_cert: &Option<toml::Spanned<String>>,
        tls_key: &Option<String>,
    ) -> Result<Trust, crate::options::SpanError> {
        let trust = Trust::from_config(tls_ca)?;
        match (tls_cert, tls_key) {
            (None, None) => Ok(trust),
            (Some(c), Some(k)) => trust
                .with_client_cert(Path::new(c.get_ref()), Path::new(k))
                .map_err(|e| crate::options::SpanError::new(c.span(), "tls_cert", e)),
            (c, _) => Err(crate::options::SpanError::new(
                c.as_ref().map_or(0..0, |c| c.span()),
                "tls_cert",
                "tls_cert and tls_key go together",
            )),
        }
    }

    /// System roots, or only the certificates in `tls_ca` when given.
    pub(crate) fn new(tls_ca: Option<&Path>) -> Result<Trust, String> {
        let roots = match tls_ca {
            None => system_roots(),
            Some(p) => {
                let mut store = RootCertStore::empty();
                for c in read_pem_certs(p)? {
                    store
                        .add(c)
                        .map_err(|e| format!("{}: unusable CA certificate: {e}", p.display()))?;
                }
                Arc::new(store)
            }
        };
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| format!("TLS verifier: {e}"))?;
        Ok(Trust {
            verifier,
            client: None,
        })
    }

    /// Adds a client certificate (PEM chain, leaf first) and its PEM private key.
    pub(crate) fn with_client_cert(mut self, cert: &Path, key: &Path) -> Result<Trust, String> {
        let chain = read_pem_certs(cert)?;
        let data = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
        let key_der = PrivateKeyDer::from_pem_slice(&data)
            .map_err(|e| format!("{}: no usable private key: {e}", key.display()))?;
        // Checks that the key type is supported now rather than at the first handshake.
        provider()
            .key_provider
            .load_private_key(key_der.clone_key())
            .map_err(|e| format!("{}: {e}", key.display()))?;
        self.client = Some(Arc::new((chain, key_der)));
        Ok(self)
    }

    /// Verifies a chain (leaf first) for `name` now, without a handshake (certificate files).
    pub(crate) fn verify_chain(
        &self,
        chain: &[CertificateDer<'static>],
        name: &ServerName<'static>,
    ) -> Result<(), String> {
        let (leaf, rest) = chain.split_first().ok_or("empty chain")?;
        self.verifier
            .verify_server_cert(leaf, rest, name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What the verifier saw during one handshake.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainRecord {
    /// The certificates the server sent, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The real verification result against the configured roots and the server name.
    pub verified: Option<Result<(), String>>,
}

#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    enforce: bool,
    /// Verifies against this name instead of the one the client connected to (`tls_server_name`
    /// for clients that take the SNI name from the address).
    name: Option<ServerName<'static>>,
    record: Mutex<ChainRecord>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            self.name.as_ref().unwrap_or(server_name),
            ocsp_response,
            now,
        );
        if let Ok(mut rec) = self.record.lock() {
            rec.chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
            rec.verified = Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        match result {
            Err(e) if self.enforce => Err(e),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Outcome of [`handshake`]: the stream (or the error) and what the verifier recorded, which is
/// filled even when the handshake failed on verification.
pub(crate) struct Handshake<IO = TcpStream> {
    pub stream: io::Result<TlsStream<IO>>,
    pub record: ChainRecord,
}

/// Runs a TLS client handshake on `tcp` (a TCP stream, or a tunnel through an HTTPS proxy).
/// `enforce = false` accepts any chain (the verdict is still recorded). `alpn` lists protocols
/// to offer (`h2`, `http/1.1`), empty for none.
pub(crate) async fn handshake<IO>(
    tcp: IO,
    trust: &Trust,
    server_name: ServerName<'static>,
    enforce: bool,
    alpn: &[&[u8]],
) -> Handshake<IO>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let verifier = Arc::new(RecordingVerifier {
        inner: trust.verifier.clone(),
        enforce,
        name: None,
        record: Mutex::new(ChainRecord::default()),
    });
    let stream = match client_config(trust, verifier.clone()) {
        Ok(mut config) => {
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            // One fresh handshake per probe: no session resumption, so tls_time is comparable.
            config.resumption = rustls::client::Resumption::disabled();
            TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
        }
        Err(e) => Err(io::Error::other(e)),
    };
    let record = verifier
        .record
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    Handshake { stream, record }
}

fn client_config(
    trust: &Trust,
    verifier: Arc<RecordingVerifier>,
) -> Result<ClientConfig, rustls::Error> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| {
            let b = b.dangerous().with_custom_certificate_verifier(verifier);
            match &trust.client {
                None => Ok(b.with_no_client_auth()),
                Some(c) => b.with_client_auth_cert(c.0.clone(), c.1.clone_key()),
            }
        })
}

impl Trust {
    /// A TLS client config for a client library that runs the handshake itself (the MQTT
    /// client): the same verification as [`handshake`], `enforce = false` accepting any chain,
    /// and `name` (when given) the name the certificate is verified against.
    pub(crate) fn client_config(
        &self,
        enforce: bool,
        name: Option<ServerName<'static>>,
    ) -> Result<ClientConfig, String> {
        let verifier = Arc::new(RecordingVerifier {
            inner: self.verifier.clone(),
            enforce,
            name,
            record: Mutex::new(ChainRecord::default()),
        });
        client_config(self, verifier).map_err(|e| format!("TLS client config: {e}"))
    }
}

/// Parses a host for SNI and verification (a DNS name or an IP address).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

/// The figures both inputs report about one certificate.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CertInfo {
    pub common_name: Option<String>,
    pub issuer_common_name: Option<String>,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    pub province: Option<String>,
    pub locality: Option<String>,
    /// Lower-case hex without leading zeros (Go's `big.Int.Text(16)`, telegraf's form).
    pub serial_number: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub san: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Go's names (`SHA256-RSA`, `ECDSA-SHA256`, `Ed25519` ...), else the dotted OID.
    pub signature_algorithm: String,
    /// `RSA`, `ECDSA`, `Ed25519`, else the dotted OID.
    pub public_key_algorithm: String,
    /// Bits; `None` when unknown.
    pub public_key_length: Option<u64>,
    pub is_ca: bool,
    /// Subject equals issuer (byte for byte).
    pub self_issued: bool,
}

fn first_attr<'a>(
    mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
) -> Option<String> {
    it.next().and_then(|a| a.as_str().ok()).map(str::to_owned)
}

fn signature_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.4" => "MD5-RSA",
        "1.2.840.113549.1.1.5" => "SHA1-RSA",
        "1.2.840.113549.1.1.11" => "SHA256-RSA",
        "1.2.840.113549.1.1.12" => "SHA384-RSA",
        "1.2.840.113549.1.1.13" => "SHA512-RSA",
        "1.2.840.113549.1.1.10" => "SHA256-RSAPSS",
        "1.2.840.10045.4.1" => "ECDSA-SHA1",
        "1.2.840.10045.4.3.2" => "ECDSA-SHA256",
        "1.2.840.10045.4.3.3" => "ECDSA-SHA384",
        "1.2.840.10045.4.3.4" => "ECDSA-SHA512",
        "1.3.101.112" => "Ed25519",
        other => return other.to_owned(),
    }
    .to_owned()
}

/// Parses one DER certificate.
pub(crate) fn parse_cert(der: &[u8]) -> Result<CertInfo, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    let subject = cert.subject();
    let issuer = cert.issuer();
    let serial = cert.raw_serial();
    let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
    let serial_number = match hex.trim_start_matches('0') {
        "" => "0".to_owned(),
        t => t.to_owned(),
    };
    let mut san = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(n) => san.push((*n).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => san.push(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string()),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        san.push(std::net::Ipv6Addr::from(a).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let spki = cert.public_key();
    let (public_key_algorithm, public_key_length) = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => {
            ("RSA".to_owned(), Some(k.key_size() as u64))
        }
        Ok(x509_parser::public_key::PublicKey::EC(k)) => {
            ("ECDSA".to_owned(), Some(k.key_size() as u64))
        }
        _ if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            ("Ed25519".to_owned(), Some(256))
        }
        _ => (spki.algorithm.algorithm.to_id_string(), None),
    };
    Ok(CertInfo {
        common_name: first_attr(subject.iter_common_name()),
        issuer_common_name: first_attr(issuer.iter_common_name()),
        organization: first_attr(subject.iter_organization()),
        organizational_unit: first_attr(subject.iter_organizational_unit()),
        country: first_attr(subject.iter_country()),
        province: first_attr(subject.iter_state_or_province()),
        locality: first_attr(subject.iter_locality()),
        serial_number,
        san,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        signature_algorithm: signature_name(&cert.signature_algorithm.algorithm.to_id_string()),
        public_key_algorithm,
        public_key_length: public_key_length.filter(|&n| n > 0),
        is_ca: cert.is_ca(),
        self_issued: subject.as_raw() == issuer.as_raw(),
    })
}

/// Seconds from now (Unix seconds `now`) until the certificate's NotAfter; negative once expired.
pub(crate) fn expiry_seconds(info: &CertInfo, now: i64) -> i64 {
    info.not_after - now
}

/// Unix seconds now.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_names_follow_go() {
        assert_eq!(signature_name("1.2.840.113549.1.1.11"), "SHA256-RSA");
        assert_eq!(signature_name("1.2.840.10045.4.3.2"), "ECDSA-SHA256");
        assert_eq!(signature_name("1.2.3"), "1.2.3");
    }
}
