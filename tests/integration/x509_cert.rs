//! x509_cert against real servers on loopback: nginx with a root → intermediate → leaf chain
//! stapling OCSP responses made by `openssl ocsp`, aiosmtpd with STARTTLS, keystores made by
//! `openssl pkcs12` and `keytool`, tinyproxy (HTTP CONNECT) and microsocks (SOCKS5).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::harness::*;
use crate::netprobes::{
    EC_P256, NginxProcess, free_port, new_root_ca, new_signed, once, only, openssl, run_nginx,
    wait_port,
};

/// Keystore password of the fixtures.
pub(crate) const PASSWORD: &str = "changeit";

pub(crate) struct ChainPki {
    pub dir: tempfile::TempDir,
}

impl ChainPki {
    pub(crate) fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    pub(crate) fn show(&self, f: &str) -> String {
        self.path(f).display().to_string()
    }
}

fn run(dir: &Path, cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (tests/run.sh installs it)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OCSP response from the intermediate for the leaf, `good` or revoked, without the
/// responder's certificate embedded (so the issuer in the chain verifies it, as telegraf wants).
fn ocsp_response(d: &Path, serial: &str, revoked: bool, out: &str) {
    let line = match revoked {
        false => format!("V\t301231000000Z\t\t{serial}\tunknown\t/CN=localhost\n"),
        true => format!("R\t301231000000Z\t261101000000Z\t{serial}\tunknown\t/CN=localhost\n"),
    };
    std::fs::write(d.join("index.txt"), line).unwrap();
    openssl(
        d,
        &[
            "ocsp",
            "-issuer",
            "inter.pem",
            "-cert",
            "leaf.pem",
            "-reqout",
            "req.der",
            "-no_nonce",
        ],
    );
    openssl(
        d,
        &[
            "ocsp",
            "-index",
            "index.txt",
            "-rsigner",
            "inter.pem",
            "-rkey",
            "inter.key",
            "-CA",
            "inter.pem",
            "-reqin",
            "req.der",
            "-respout",
            out,
            "-ndays",
            "1",
            "-resp_no_certs",
        ],
    );
}

/// Root CA → intermediate CA → leaf (RSA 2048, localhost and 127.0.0.1, full subject);
/// `fullchain.pem` = leaf + intermediate + root; OCSP responses `good.der` and `revoked.der`;
/// `server.p12` (leaf + intermediate with the key) and `store.jks` (the root as a trusted
/// entry "root", the key entry "server" with leaf + intermediate), both with [`PASSWORD`].
pub(crate) fn make_chain_pki() -> ChainPki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    new_root_ca(d, "root", "/CN=Test Root CA", "30");
    new_signed(
        d,
        "inter",
        EC_P256,
        "/CN=Test Intermediate CA/O=Probe Test",
        "root",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n",
        "20",
    );
    new_signed(
        d,
        "leaf",
        &["rsa:2048"],
        "/CN=localhost/O=Probe Test/OU=Ops/C=DE/ST=Berlin/L=Kreuzberg",
        "inter",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        "10",
    );
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    std::fs::write(
        d.join("fullchain.pem"),
        read("leaf.pem") + &read("inter.pem") + &read("root.pem"),
    )
    .unwrap();

    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in", "leaf.pem"])
        .current_dir(d)
        .output()
        .unwrap();
    let serial = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    ocsp_response(d, &serial, false, "good.der");
    ocsp_response(d, &serial, true, "revoked.der");
    let pass = format!("pass:{PASSWORD}");
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "inter.pem",
            "-name",
            "server",
            "-out",
            "server.p12",
            "-passout",
            &pass,
        ],
    );
    let keytool = |args: &[&str]| run(d, "keytool", args);
    keytool(&[
        "-importcert",
        "-noprompt",
        "-alias",
        "root",
        "-file",
        "root.pem",
        "-keystore",
        "store.jks",
        "-storetype",
        "JKS",
        "-storepass",
        PASSWORD,
    ]);
    keytool(&[
        "-importkeystore",
        "-noprompt",
        "-srckeystore",
        "server.p12",
        "-srcstoretype",
        "PKCS12",
        "-srcstorepass",
        PASSWORD,
        "-destkeystore",
        "store.jks",
        "-deststoretype",
        "JKS",
        "-deststorepass",
        PASSWORD,
        "-destkeypass",
        PASSWORD,
    ]);
    ChainPki { dir }
}

/// A child server (single process) killed when dropped.
pub(crate) struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(cmd: &mut Command, dir: tempfile::TempDir, ports: &[u16], what: &str) -> Server {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e} (tests/run.sh installs it)"));
    let server = Server { child, _dir: dir };
    for &p in ports {
        wait_port(p, what);
    }
    server
}

/// nginx serving the chain on four ports: stapling the good response, the revoked one, an
/// OCSPResponse saying only "try later" (valid DER, no status to read), and none.
pub(crate) struct ChainNginx {
    pub good: u16,
    pub revoked: u16,
    pub try_later: u16,
    pub plain: u16,
    _process: NginxProcess,
}

pub(crate) fn start_chain_nginx(pki: &ChainPki) -> ChainNginx {
    let (good, revoked, try_later, plain) = (free_port(), free_port(), free_port(), free_port());
    let (cert, key) = (pki.show("fullchain.pem"), pki.show("leaf.key"));
    // OCSPResponse { responseStatus tryLater(3) }.
    std::fs::write(pki.path("trylater.der"), [0x30, 0x03, 0x0a, 0x01, 0x03]).unwrap();
    let server = |port: u16, staple: Option<&str>| {
        let staple = staple
            .map(|f| format!("ssl_stapling on;\n  ssl_stapling_file {};\n", pki.show(f)))
            .unwrap_or_default();
        format!(
            " server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {cert};\n  \
             ssl_certificate_key {key};\n  {staple}  location / {{ return 204; }}\n }}\n"
        )
    };
    let body = format!(
        "http {{\n access_log off;\n client_body_temp_path {{dir}}/cb;\n proxy_temp_path {{dir}}/px;\n\
          fastcgi_temp_path {{dir}}/fc;\n uwsgi_temp_path {{dir}}/uw;\n scgi_temp_path {{dir}}/sc;\n{}{}{}{}}}\n",
        server(good, Some("good.der")),
        server(revoked, Some("revoked.der")),
        server(try_later, Some("trylater.der")),
        server(plain, None),
    );
    ChainNginx {
        good,
        revoked,
        try_later,
        plain,
        _process: run_nginx("", &body, &[good, revoked, try_later, plain]),
    }
}

/// An SMTP server (Python's aiosmtpd, Debian's python3-aiosmtpd) offering STARTTLS with the
/// chain on a loopback port.
pub(crate) struct Smtpd {
    pub port: u16,
    _server: Server,
}

pub(crate) fn start_smtpd(pki: &ChainPki) -> Smtpd {
    let port = free_port();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tlscert")
        .arg(pki.path("fullchain.pem"))
        .arg("--tlskey")
        .arg(pki.path("leaf.key"));
    let server = spawn(&mut cmd, tempfile::tempdir().unwrap(), &[port], "aiosmtpd");
    Smtpd {
        port,
        _server: server,
    }
}

/// The lines of `source`.
fn of<'a>(lines: &[&'a Line], source: &str) -> Vec<&'a Line> {
    lines
        .iter()
        .copied()
        .filter(|l| l.tag("source") == Some(source))
        .collect()
}

fn unix(date: &str) -> i64 {
    let out = Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn x509_chain_verdicts_types_and_stapled_ocsp_from_nginx() {
    let pki = make_chain_pki();
    let ng = start_chain_nginx(&pki);
    let root = pki.show("root.pem");
    let config = format!(
        "[[inputs.x509_cert]]\n  sources = [\"https://localhost:{g}\", \"tcp://127.0.0.1:{r}\", \"tcp4://localhost:{p}\", \"https://localhost:{l}\"]\n  tls_ca = \"{root}\"\n\
         [[inputs.x509_cert]]\n  sources = [\"tcp://127.0.0.1:{g}\"]\n  tls_server_name = \"example.org\"\n  tls_ca = \"{root}\"\n  exclude_root_certs = true\n  pad_serial_with_zeroes = true\n\
         [[inputs.x509_cert]]\n  sources = [\"tcp6://localhost:{g}\", \"https://127.0.0.1:{p}\"]\n",
        g = ng.good,
        r = ng.revoked,
        p = ng.plain,
        l = ng.try_later,
    );
    let lines = once(&config);
    let x = only(&lines, "x509_cert");
    // Good staple, trusted root: three lines, each with its own verdict and type.
    let good = of(&x, &format!("https://localhost:{}", ng.good));
    assert_eq!(good.len(), 3, "{x:#?}");
    let (leaf, inter, root) = (good[0], good[1], good[2]);
    assert_eq!(leaf.tag("type"), Some("leaf"));
    assert_eq!(inter.tag("type"), Some("intermediate"));
    assert_eq!(root.tag("type"), Some("root"));
    for l in &good {
        assert_eq!(l.tag("verification"), Some("valid"), "{l:#?}");
        assert_eq!(l.int("verification_code"), Some(0));
        assert!(l.string("verification_error").is_none());
    }
    assert_eq!(leaf.tag("common_name"), Some("localhost"));
    assert_eq!(leaf.tag("organization"), Some("Probe Test"));
    assert_eq!(leaf.tag("organizational_unit"), Some("Ops"));
    assert_eq!(leaf.tag("country"), Some("DE"));
    assert_eq!(leaf.tag("province"), Some("Berlin"));
    assert_eq!(leaf.tag("locality"), Some("Kreuzberg"));
    assert_eq!(leaf.tag("issuer_common_name"), Some("Test Intermediate CA"));
    assert_eq!(leaf.tag("san"), Some("localhost,127.0.0.1"));
    assert_eq!(leaf.tag("signature_algorithm"), Some("ECDSA-SHA256"));
    assert_eq!(leaf.tag("public_key_algorithm"), Some("RSA"));
    assert_eq!(leaf.int("public_key_length"), Some(2048));
    assert_eq!(inter.int("public_key_length"), Some(256));
    assert_eq!(root.tag("issuer_common_name"), Some("Test Root CA"));
    // The staple: good, signed by the intermediate (the leaf's issuer in the chain).
    assert_eq!(leaf.tag("ocsp_stapled"), Some("yes"));
    assert_eq!(leaf.tag("ocsp_status"), Some("good"));
    assert_eq!(leaf.tag("ocsp_verified"), Some("yes"));
    assert_eq!(leaf.int("ocsp_status_code"), Some(0));
    let (produced, this, next) = (
        leaf.int("ocsp_produced_at").unwrap(),
        leaf.int("ocsp_this_update").unwrap(),
        leaf.int("ocsp_next_update").unwrap(),
    );
    assert_eq!(next - this, 86400, "-ndays 1");
    assert!((produced - this).abs() < 60 && leaf.int("startdate").unwrap() <= this + 60);
    assert!(leaf.int("ocsp_revoked_at").is_none());
    assert_eq!(inter.tag("ocsp_stapled"), Some("no"));
    assert!(inter.tag("ocsp_status").is_none());
    // Revoked staple.
    let revoked = of(&x, &format!("tcp://127.0.0.1:{}", ng.revoked));
    assert_eq!(revoked.len(), 3);
    assert_eq!(revoked[0].tag("ocsp_status"), Some("revoked"));
    assert_eq!(revoked[0].int("ocsp_status_code"), Some(1));
    assert_eq!(
        revoked[0].int("ocsp_revoked_at"),
        Some(unix("2026-11-01 00:00:00"))
    );
    // A staple without a status: telegraf's ocsp_error, not stapled.
    let later = of(&x, &format!("https://localhost:{}", ng.try_later));
    assert_eq!(later.len(), 3);
    assert_eq!(later[0].tag("ocsp_stapled"), Some("no"));
    assert_eq!(
        later[0].string("ocsp_error").as_deref(),
        Some("ocsp: error from server: try later")
    );
    assert!(later[0].tag("ocsp_status").is_none());
    // No staple.
    let plain = of(&x, &format!("tcp4://localhost:{}", ng.plain));
    assert_eq!(plain.len(), 3);
    assert!(plain.iter().all(|l| l.tag("ocsp_stapled") == Some("no")));
    assert_eq!(plain[0].tag("verification"), Some("valid"));
    // Wrong name: the leaf is invalid with Go's words, the CAs stay valid but the intermediate
    // is no longer met on a verified path from the leaf; only the first certificate is written.
    let named = of(&x, &format!("tcp://127.0.0.1:{}", ng.good));
    assert_eq!(named.len(), 1, "exclude_root_certs keeps the first only");
    assert_eq!(named[0].tag("verification"), Some("invalid"));
    assert_eq!(
        named[0].string("verification_error").as_deref(),
        Some("x509: certificate is valid for localhost, not example.org")
    );
    let serial = named[0].tag("serial_number").unwrap();
    assert!(serial.len() >= 16 && serial.len() <= 40, "{serial}");
    assert_eq!(
        serial.trim_start_matches('0'),
        leaf.tag("serial_number").unwrap()
    );
    // System roots only: unknown authority for leaf and intermediate; the root itself is
    // self-signed but not trusted either.
    let untrusted = of(&x, &format!("https://127.0.0.1:{}", ng.plain));
    assert_eq!(untrusted.len(), 3);
    for l in &untrusted {
        assert_eq!(
            l.string("verification_error").as_deref(),
            Some("x509: certificate signed by unknown authority"),
            "{l:#?}"
        );
    }
    assert_eq!(
        untrusted[1].tag("type"),
        Some("leaf"),
        "telegraf: unclassified"
    );
    assert_eq!(untrusted[2].tag("type"), Some("root"));
    // tcp6 on a server listening on 127.0.0.1 only: no line, the others unaffected.
    assert!(of(&x, &format!("tcp6://localhost:{}", ng.good)).is_empty());
}

#[test]
fn x509_smtp_starttls_against_aiosmtpd() {
    let pki = make_chain_pki();
    let smtp = start_smtpd(&pki);
    let config = format!(
        "[[inputs.x509_cert]]\n  sources = [\"smtp://localhost:{}\"]\n  tls_ca = \"{}\"\n  timeout = \"5s\"\n",
        smtp.port,
        pki.show("root.pem")
    );
    let lines = once(&config);
    let x = only(&lines, "x509_cert");
    let s = of(&x, &format!("smtp://localhost:{}", smtp.port));
    assert_eq!(s.len(), 3, "{x:#?}");
    assert_eq!(s[0].tag("common_name"), Some("localhost"));
    assert_eq!(s[0].tag("verification"), Some("valid"));
    assert_eq!(s[1].tag("type"), Some("intermediate"));
}

#[test]
fn x509_files_globs_and_keystores() {
    let pki = make_chain_pki();
    let d = pki.dir.path().display();
    let bad = pki.path("broken.p12");
    std::fs::write(&bad, b"not a keystore").unwrap();
    let config = format!(
        "[[inputs.x509_cert]]\n  sources = [\"{d}/*t.pem\", \"file://{d}/leaf.pem\", \"jks://{d}/store.jks\", \"pkcs12://{d}/server.p12\", \"pkcs12://{}\", \"{d}/none-*.pem\"]\n  password = \"{PASSWORD}\"\n\
         [[inputs.x509_cert]]\n  sources = [\"jks://{d}/store.jks\"]\n  password = \"wrong password\"\n  alias = \"wrong\"\n",
        bad.display()
    );
    let (st, raw, err) = run_once(&config);
    assert!(st.success(), "{err}");
    let lines = parse_all(&raw);
    let x = only(&lines, "x509_cert");
    // `*t.pem`: root.pem only (fullchain.pem, leaf.pem, inter.pem do not end in "t.pem"...
    // except root.pem), written with telegraf's file:// tag.
    let root = of(&x, &format!("file://{d}/root.pem"));
    assert_eq!(root.len(), 1, "{x:#?}");
    assert_eq!(root[0].tag("type"), Some("root"));
    assert_eq!(
        root[0].tag("verification"),
        Some("invalid"),
        "not a system root"
    );
    assert_eq!(of(&x, &format!("file://{d}/leaf.pem")).len(), 1);
    // JKS: entries in alias order ("root", then "server": leaf, intermediate), trusted for
    // themselves.
    let jks = of(&x, &format!("jks://{d}/store.jks"));
    let names: Vec<_> = jks.iter().map(|l| l.tag("common_name").unwrap()).collect();
    assert_eq!(
        names,
        ["Test Root CA", "localhost", "Test Intermediate CA"],
        "{jks:#?}"
    );
    assert!(jks.iter().all(|l| l.tag("verification") == Some("valid")));
    // PKCS#12: the key's certificate first.
    let p12 = of(&x, &format!("pkcs12://{d}/server.p12"));
    let names: Vec<_> = p12.iter().map(|l| l.tag("common_name").unwrap()).collect();
    assert_eq!(names, ["localhost", "Test Intermediate CA"]);
    assert_eq!(p12[0].tag("verification"), Some("valid"));
    // telegraf trusts a keystore's certificates, so each is a path by itself and the
    // intermediate, met on no longer path, keeps the default type.
    assert_eq!(p12[1].tag("type"), Some("leaf"));
    // Failures are log lines, not lines or a failed run.
    assert_eq!(x.len(), 1 + 1 + 3 + 2, "{x:#?}");
    assert!(err.contains("could not find file"), "{err}");
    assert!(err.contains("failed to decode PKCS#12"), "{err}");
    assert!(err.contains("keystore password was incorrect"), "{err}");
}

/// A proxy is really used: through the right proxy port the certificate comes, through a
/// closed one nothing does (a direct connection would have worked).
#[test]
fn x509_through_http_and_socks5_proxies() {
    let pki = make_chain_pki();
    let ng = start_chain_nginx(&pki);
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    std::fs::write(
        dir.path().join("tinyproxy.conf"),
        format!(
            "Port {http}\nListen 127.0.0.1\nTimeout 10\nMaxClients 8\nLogLevel Connect\n\
             LogFile \"{}\"\nConnectPort {}\n",
            dir.path().join("tinyproxy.log").display(),
            ng.plain
        ),
    )
    .unwrap();
    let mut cmd = Command::new("tinyproxy");
    cmd.arg("-d")
        .arg("-c")
        .arg(dir.path().join("tinyproxy.conf"));
    let tiny = spawn(&mut cmd, tempfile::tempdir().unwrap(), &[http], "tinyproxy");
    let socks = free_port();
    let mut cmd = Command::new("microsocks");
    cmd.args([
        "-i",
        "127.0.0.1",
        "-p",
        &socks.to_string(),
        "-u",
        "probe",
        "-P",
        "s3cret",
    ]);
    let micro = spawn(
        &mut cmd,
        tempfile::tempdir().unwrap(),
        &[socks],
        "microsocks",
    );
    let closed = free_port();
    let p = ng.plain;
    let config = format!(
        "[[inputs.x509_cert]]\n  sources = [\"tcp://127.0.0.1:{p}\"]\n  use_proxy = true\n  proxy_url = \"http://127.0.0.1:{http}\"\n\
         [[inputs.x509_cert]]\n  sources = [\"https://localhost:{p}\"]\n  use_proxy = true\n  proxy_url = \"socks5://probe:s3cret@127.0.0.1:{socks}\"\n\
         [[inputs.x509_cert]]\n  sources = [\"tcp4://127.0.0.1:{p}\"]\n  use_proxy = true\n  proxy_url = \"http://127.0.0.1:{closed}\"\n\
         [[inputs.x509_cert]]\n  sources = [\"tcp://localhost:{p}\"]\n  use_proxy = true\n  proxy_url = \"socks5://probe:wrong@127.0.0.1:{socks}\"\n"
    );
    let lines = once(&config);
    let x = only(&lines, "x509_cert");
    assert_eq!(of(&x, &format!("tcp://127.0.0.1:{p}")).len(), 3, "{x:#?}");
    assert_eq!(of(&x, &format!("https://localhost:{p}")).len(), 3);
    assert!(of(&x, &format!("tcp4://127.0.0.1:{p}")).is_empty());
    assert!(of(&x, &format!("tcp://localhost:{p}")).is_empty());
    let log = std::fs::read_to_string(dir.path().join("tinyproxy.log")).unwrap_or_default();
    assert!(log.contains("CONNECT"), "{log}");
    drop((tiny, micro));
}
