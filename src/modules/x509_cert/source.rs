//! `sources` as telegraf reads them, the `source` tag as telegraf writes it, and file globs.

use std::path::{Path, PathBuf};

use crate::modules::probe;
use crate::options::Glob;

/// Which address family a network source may use (`tcp4://`, `tcp6://`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Any,
    V4,
    V6,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SourceKind {
    /// A TLS server; `smtp`: plain SMTP upgraded with STARTTLS first.
    Tls {
        host: String,
        port: u16,
        family: Family,
        smtp: bool,
    },
    /// A path or a glob of PEM files.
    Files(String),
    Jks(PathBuf),
    Pkcs12(PathBuf),
}

/// One entry of `sources`: what to read and the `source` tag of its lines (files get theirs
/// per matched file).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Source {
    pub tag: String,
    pub kind: SourceKind,
}

/// Characters telegraf's glob treats as special (`internal/globpath`): without them a path is
/// read as it is.
const META: [char; 3] = ['*', '?', '['];

/// Parses one `sources` entry as telegraf does.
pub(crate) fn parse_source(s: &str) -> Result<Source, String> {
    if let Some(p) = s.strip_prefix("file://") {
        return files(p);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        // telegraf takes absolute paths; a relative one is read from the working directory.
        return files(s);
    };
    let scheme = scheme.to_ascii_lowercase();
    let net = |family, smtp, default: Option<u16>| -> Result<Source, String> {
        let authority = rest.split('/').next().unwrap_or_default();
        let path = &rest[authority.len()..];
        let (host, port, tag) = match (probe::split_host_port(authority), default) {
            (Ok((h, p)), _) => (h, p, s.to_owned()),
            // telegraf adds :443 to an https source without a port, and its tag shows it.
            (Err(_), Some(p)) if !authority.contains(':') || authority.ends_with(']') => {
                let host = authority.trim_start_matches('[').trim_end_matches(']');
                (host.to_owned(), p, format!("{scheme}://{authority}:{p}{path}"))
            }
            (Err(e), _) => return Err(format!("{s:?}: {e}")),
        };
        if host.is_empty() {
            return Err(format!("{s:?}: no host"));
        }
        Ok(Source {
            tag,
            kind: SourceKind::Tls {
                host,
                port,
                family,
                smtp,
            },
        })
    };
    match scheme.as_str() {
        "https" => net(Family::Any, false, Some(443)),
        "tcp" => net(Family::Any, false, None),
        "tcp4" => net(Family::V4, false, None),
        "tcp6" => net(Family::V6, false, None),
        "smtp" => net(Family::Any, true, None),
        "jks" | "pkcs12" => {
            if rest.is_empty() {
                return Err(format!("{s:?}: no keystore path"));
            }
            let path = PathBuf::from(rest);
            let kind = match scheme.as_str() {
                "jks" => SourceKind::Jks(path),
                _ => SourceKind::Pkcs12(path),
            };
            Ok(Source {
                tag: s.to_owned(),
                kind,
            })
        }
        // telegraf speaks DTLS through pion/dtls. The Rust candidates are webrtc-rs's
        // webrtc-dtls (a WebRTC stack's part: ~30 more crates, among them second copies of
        // x509-parser and der-parser, rand 0.8 and the unmaintained bincode 1) and OpenSSL
        // bindings (a C library to link): refused rather than carried for one source type.
        "udp" | "udp4" | "udp6" => Err(format!(
            "{s:?}: udp sources need DTLS, which metrics-agent does not speak; probe the \
             service's TLS port with tcp:// or read its certificate file instead"
        )),
        "wincertstore" => Err(format!(
            "{s:?}: the Windows certificate store exists only on Windows (telegraf reads it \
             only there)"
        )),
        _ => Err(format!(
            "{s:?}: unsupported scheme (use https://, tcp://, tcp4://, tcp6://, smtp://, \
             file://, jks://, pkcs12:// or a path)"
        )),
    }
}

fn files(pattern: &str) -> Result<Source, String> {
    if pattern.is_empty() {
        return Err("empty file path".into());
    }
    if pattern.contains(META) {
        Glob::new(pattern, "/").map_err(|e| format!("could not compile glob: {e}"))?;
    }
    Ok(Source {
        tag: String::new(),
        kind: SourceKind::Files(pattern.to_owned()),
    })
}

/// The tag telegraf writes for a file: `file://` and the path as Go's `url.URL` escapes it.
pub(crate) fn file_tag(path: &str) -> String {
    let mut out = String::from("file://");
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Bounds on one glob expansion: a `**` over a large tree must not stall a gather.
const MAX_DEPTH: usize = 32;
const MAX_ENTRIES: usize = 100_000;

/// The files `pattern` names, sorted: the path itself when it has no glob characters and
/// exists, else every file under the pattern's fixed leading directories whose path matches
/// (`*` within one directory, `**` across directories; symbolic links to files count, to
/// directories are not followed).
pub(crate) fn expand(pattern: &str) -> Vec<PathBuf> {
    if !pattern.contains(META) {
        let p = PathBuf::from(pattern);
        return if p.is_file() { vec![p] } else { Vec::new() };
    }
    let Ok(glob) = Glob::new(pattern, "/") else {
        return Vec::new();
    };
    let meta_at = pattern.find(META).unwrap_or(0);
    let root = match pattern[..meta_at].rfind('/') {
        Some(0) => "/",
        Some(i) => &pattern[..i],
        None => ".",
    };
    let depth = if pattern.contains("**") {
        MAX_DEPTH
    } else {
        pattern[meta_at..].matches('/').count() + 1
    };
    let mut found = Vec::new();
    let mut budget = MAX_ENTRIES;
    walk(Path::new(root), root == ".", depth, &glob, &mut budget, &mut found);
    found.sort();
    found
}

fn walk(
    dir: &Path,
    relative: bool,
    depth: usize,
    glob: &Glob,
    budget: &mut usize,
    found: &mut Vec<PathBuf>,
) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let path = if relative {
            PathBuf::from(e.file_name())
        } else {
            e.path()
        };
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if depth > 1 {
                walk(&e.path(), false, depth - 1, glob, budget, found);
            }
            continue;
        }
        if path.to_str().is_some_and(|p| glob.matches(p)) && e.path().is_file() {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(host: &str, port: u16, family: Family, smtp: bool) -> SourceKind {
        SourceKind::Tls {
            host: host.into(),
            port,
            family,
            smtp,
        }
    }

    #[test]
    fn network_sources_and_their_tags() {
        let s = parse_source("https://example.org").unwrap();
        assert_eq!(s.kind, tls("example.org", 443, Family::Any, false));
        assert_eq!(s.tag, "https://example.org:443");
        let s = parse_source("https://[::1]/x").unwrap();
        assert_eq!(s.kind, tls("::1", 443, Family::Any, false));
        assert_eq!(s.tag, "https://[::1]:443/x");
        let s = parse_source("tcp6://[::1]:8443").unwrap();
        assert_eq!(s.kind, tls("::1", 8443, Family::V6, false));
        assert_eq!(s.tag, "tcp6://[::1]:8443");
        assert_eq!(
            parse_source("smtp://mail.localhost:25").unwrap().kind,
            tls("mail.localhost", 25, Family::Any, true)
        );
        assert_eq!(
            parse_source("tcp4://127.0.0.1:443").unwrap().kind,
            tls("127.0.0.1", 443, Family::V4, false)
        );
        assert!(parse_source("tcp://h").is_err());
        assert!(parse_source("smtp://h").is_err());
        assert!(parse_source("udp://127.0.0.1:4433").unwrap_err().contains("DTLS"));
        assert!(parse_source("wincertstore://machine:ROOT").unwrap_err().contains("Windows"));
        assert!(parse_source("ftp://h:21").is_err());
    }

    #[test]
    fn file_and_keystore_sources() {
        assert_eq!(
            parse_source("file:///etc/x.pem").unwrap().kind,
            SourceKind::Files("/etc/x.pem".into())
        );
        assert_eq!(
            parse_source("/etc/*.pem").unwrap().kind,
            SourceKind::Files("/etc/*.pem".into())
        );
        assert!(parse_source("/etc/[.pem").is_err());
        let s = parse_source("jks:///etc/k.jks").unwrap();
        assert_eq!(s.kind, SourceKind::Jks("/etc/k.jks".into()));
        assert_eq!(s.tag, "jks:///etc/k.jks");
        assert_eq!(
            parse_source("pkcs12:///etc/k.p12").unwrap().kind,
            SourceKind::Pkcs12("/etc/k.p12".into())
        );
    }

    #[test]
    fn file_tags_escape_as_go() {
        assert_eq!(file_tag("/etc/ssl/a.pem"), "file:///etc/ssl/a.pem");
        assert_eq!(file_tag("/x y/é!.pem"), "file:///x%20y/%C3%A9%21.pem");
        assert_eq!(file_tag("rel/a.pem"), "file://rel/a.pem");
    }

    #[test]
    fn globs_expand_to_files() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        for f in ["x.pem", "y.crt", "a/z.pem", "a/b/w.pem"] {
            std::fs::write(root.join(f), "").unwrap();
        }
        let r = root.display();
        let names = |p: String| -> Vec<String> {
            expand(&p)
                .iter()
                .map(|f| f.strip_prefix(root).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(names(format!("{r}/*.pem")), ["x.pem"]);
        assert_eq!(names(format!("{r}/**.pem")), ["a/b/w.pem", "a/z.pem", "x.pem"]);
        assert_eq!(names(format!("{r}/a/*/*.pem")), ["a/b/w.pem"]);
        assert_eq!(names(format!("{r}/x.pem")), ["x.pem"]);
        assert!(names(format!("{r}/none.pem")).is_empty());
        assert!(names(format!("{r}/a")).is_empty(), "a directory is no file");
    }
}
