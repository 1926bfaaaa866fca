//! telegraf's x509_cert (`plugins/inputs/x509_cert`): options and schema.
//!
//! Option values are sample.conf's, except: the network sources point at loopback (same
//! schemes and ports) so that the runs send nothing off the machine; the `udp://` (DTLS) and
//! `wincertstore://` entries are in `refused`; the TLS files are ones Debian has (telegraf's
//! example paths do not exist, and telegraf refuses missing files as we do).

use super::{Kind::*, Series, Setup, Table};
use crate::x509_cert::{PASSWORD, make_chain_pki, start_chain_nginx, start_smtpd};

pub(crate) const TABLE: Table = Table {
    input: "x509_cert",
    base: "sources = [\"tcp://127.0.0.1:1\"]\ntimeout = \"1s\"",
    options: &[
        r#"sources = ["tcp://127.0.0.1:443", "https://localhost:443",
            "smtp://localhost:25",
            "/etc/ssl/certs/ssl-cert-snakeoil.pem",
            "/etc/mycerts/*.mydomain.org.pem", "file:///path/to/*.pem",
            "jks:///etc/mycerts/keystore.jks",
            "pkcs12:///etc/mycerts/keystore.p12"]"#,
        r#"timeout = "5s""#,
        r#"server_name = "myhost.example.org""#,
        r#"exclude_root_certs = false"#,
        r#"pad_serial_with_zeroes = false"#,
        r#"password = """#,
        r#"tls_ca = "/etc/ssl/certs/ca-certificates.crt""#,
        "tls_cert = \"/etc/ssl/certs/ssl-cert-snakeoil.pem\"\n\
         tls_key = \"/etc/ssl/private/ssl-cert-snakeoil.key\"",
        r#"tls_server_name = "myhost.example.org""#,
        r#"use_proxy = true"#,
        r#"proxy_url = "http://localhost:8888""#,
        "use_proxy = true\nproxy_url = \"http://localhost:8888\"",
    ],
    refused: &[
        // telegraf accepts the entries and fails every gather ("not supported on this
        // platform").
        (
            r#"sources = ["wincertstore://machine:ROOT", "wincertstore://user:CA"]"#,
            "Windows",
        ),
        // Ours: no DTLS client (README, "Where we differ").
        (r#"sources = ["udp://127.0.0.1:4433"]"#, "DTLS"),
        (
            "server_name = \"a.example.org\"\ntls_server_name = \"b.example.org\"",
            "mutually exclusive",
        ),
    ],
    schema: &[Series {
        measurement: "x509_cert",
        tags: &[
            "source",
            "common_name",
            "organization",
            "organizational_unit",
            "country",
            "province",
            "locality",
            "verification",
            "serial_number",
            "signature_algorithm",
            "public_key_algorithm",
            "issuer_common_name",
            "issuer_serial_number",
            "san",
            "type",
            "ocsp_stapled",
            "ocsp_status",
            "ocsp_verified",
        ],
        fields: &[
            ("age", Int),
            ("expiry", Int),
            ("startdate", Int),
            ("enddate", Int),
            ("public_key_length", Int),
            ("verification_code", Int),
            ("verification_error", Str),
            ("ocsp_status_code", Int),
            ("ocsp_revoked_at", Int),
            ("ocsp_produced_at", Int),
            ("ocsp_this_update", Int),
            ("ocsp_next_update", Int),
            ("ocsp_error", Str),
        ],
        extra: &[],
        unseen: &[],
    }],
    setup,
};

/// nginx stapling a good, a revoked and a "try later" OCSP response, an SMTP server with
/// STARTTLS, the PEM files and keystores of the same PKI; one instance trusting the test root,
/// one not.
fn setup() -> Setup {
    let pki = make_chain_pki();
    let ng = start_chain_nginx(&pki);
    let smtp = start_smtpd(&pki);
    let d = pki.dir.path().display();
    let config = format!(
        "[[inputs.x509_cert]]\nsources = [\"https://localhost:{}\", \"tcp://127.0.0.1:{}\", \
         \"tcp://127.0.0.1:{}\", \"smtp://localhost:{}\", \"{d}/leaf.pem\", \"jks://{d}/store.jks\", \
         \"pkcs12://{d}/server.p12\"]\ntls_ca = \"{d}/root.pem\"\npassword = \"{PASSWORD}\"\n\
         [[inputs.x509_cert]]\nsources = [\"tcp://localhost:{}\"]\n",
        ng.good, ng.revoked, ng.try_later, smtp.port, ng.plain
    );
    Setup::with(config, (pki, ng, smtp))
}
