//! `jks://` and `pkcs12://` sources: the certificates of a Java keystore or a PKCS#12 file, in
//! telegraf's order, and trusted for that source's verification (telegraf adds them to the
//! roots).
//!
//! JKS is read here: its certificates are stored in clear, so reading them takes a walk over a
//! simple length-prefixed layout and two SHA-1 checks (ring's): the store's integrity digest,
//! which proves the password, and each private key's protector check, which decides (as in
//! telegraf) whether that key's chain is reported. PKCS#12 needs PBES1/PBES2 decryption (AES,
//! 3DES, RC2) and its own key derivation, so it is read with the `p12-keystore` crate.

use std::path::Path;

use rustls::pki_types::CertificateDer;

use super::Fetched;
use super::der::expect;

/// A keystore's certificates in report order.
#[derive(Debug)]
pub(crate) struct Store(pub Vec<CertificateDer<'static>>);

impl From<Store> for Fetched {
    fn from(s: Store) -> Fetched {
        Fetched {
            trusted: s.0.clone(),
            chain: s.0,
            ocsp: Vec::new(),
        }
    }
}

/// Reading a whole keystore into memory is fine; 16 MiB bounds a wrong path (a disk image).
const MAX_SIZE: u64 = 16 << 20;

fn read(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_SIZE {
        return Err(format!("{}: larger than 16 MiB", path.display()));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn read_jks(path: &Path, password: &str) -> Result<Store, String> {
    let data = read(path)?;
    parse_jks(&data, password).map_err(|e| format!("failed to decode JKS: {e}"))
}

pub(crate) fn read_pkcs12(path: &Path, password: &str) -> Result<Store, String> {
    let data = read(path)?;
    parse_pkcs12(&data, password)
}

/// go-pkcs12's `DecodeChain` order: the certificate of the private key first, then the others
/// as the file lists them. A file without a key (a trust store) gives its certificates in order.
pub(crate) fn parse_pkcs12(data: &[u8], password: &str) -> Result<Store, String> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(data, password)
        .map_err(|e| format!("failed to decode PKCS#12 keystore: {e}"))?;
    let key_id = archive
        .keys
        .iter()
        .find_map(|k| k.local_key_id.as_ref().map(|id| id.0.clone()));
    let is_leaf = |b: &p12_keystore::CertificateBag| {
        key_id.is_some() && b.local_key_id.as_ref() == key_id.as_ref()
    };
    let certs = archive
        .certs
        .iter()
        .filter(|b| is_leaf(b))
        .chain(archive.certs.iter().filter(|b| !is_leaf(b)))
        .map(|b| CertificateDer::from(b.cert.as_der().to_vec()))
        .collect();
    Ok(Store(certs))
}

/// Big-endian reader over a JKS file.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated keystore".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// Java's `writeUTF`: a 16-bit length and modified UTF-8.
    fn utf(&mut self) -> Result<String, String> {
        let n = self.take(2)?;
        let b = self.take(usize::from(u16::from_be_bytes([n[0], n[1]])))?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

const JKS_MAGIC: u32 = 0xfeed_feed;
/// Java's fixed salt of the integrity digest.
const WHITENER: &[u8] = b"Mighty Aphrodite";
/// Upper bound on entries and chain lengths, so a corrupt count cannot allocate much.
const MAX_ITEMS: u32 = 100_000;

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The password as Java hashes it: UTF-16 big-endian code units.
fn utf16be(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Sun's JKS key protector: is `protected` (an EncryptedPrivateKeyInfo) readable with
/// `password`? The key is XORed with a SHA-1 stream and followed by SHA-1(password, key).
fn key_opens(protected: &[u8], pw: &[u8]) -> bool {
    let Ok(data) = (|| -> Result<&[u8], String> {
        let (info, _) = expect(protected, 0x30)?;
        let (_alg, rest) = expect(info, 0x30)?;
        Ok(expect(rest, 0x04)?.0)
    })() else {
        return false;
    };
    if data.len() < 40 {
        return false;
    }
    let (salt, rest) = data.split_at(20);
    let (enc, check) = rest.split_at(rest.len() - 20);
    let mut key = Vec::with_capacity(enc.len());
    let mut digest = salt.to_vec();
    for block in enc.chunks(20) {
        digest = sha1(&[pw, &digest]).to_vec();
        key.extend(block.iter().zip(&digest).map(|(a, b)| a ^ b));
    }
    sha1(&[pw, &key]) == check
}

/// The certificates of a JKS keystore, entries in alias order (as telegraf's keystore library
/// lists them): a trusted certificate entry's certificate, a private key entry's chain when the
/// password opens the key.
pub(crate) fn parse_jks(data: &[u8], password: &str) -> Result<Store, String> {
    if data.len() < 20 {
        return Err("too short".into());
    }
    let pw = utf16be(password);
    let (body, digest) = data.split_at(data.len() - 20);
    if sha1(&[&pw, WHITENER, body]) != digest {
        return Err("keystore password was incorrect or the file is corrupt".into());
    }
    let mut r = Reader(body);
    if r.u32()? != JKS_MAGIC {
        return Err("not a JKS keystore (a JCEKS or PKCS#12 file? use pkcs12:// for the latter)".into());
    }
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(format!("unknown JKS version {version}"));
    }
    let count = r.u32()?;
    if count > MAX_ITEMS {
        return Err("too many entries".into());
    }
    let mut entries: Vec<(String, Vec<CertificateDer<'static>>)> = Vec::new();
    let cert = |r: &mut Reader<'_>| -> Result<CertificateDer<'static>, String> {
        if version == 2 {
            r.utf()?;
        }
        Ok(CertificateDer::from(r.bytes()?.to_vec()))
    };
    for _ in 0..count {
        let tag = r.u32()?;
        let alias = r.utf()?;
        r.take(8)?;
        match tag {
            1 => {
                let key = r.bytes()?;
                let n = r.u32()?;
                if n > MAX_ITEMS {
                    return Err("chain too long".into());
                }
                let mut chain = Vec::new();
                for _ in 0..n {
                    chain.push(cert(&mut r)?);
                }
                if key_opens(key, &pw) {
                    entries.push((alias, chain));
                }
            }
            2 => entries.push((alias, vec![cert(&mut r)?])),
            t => return Err(format!("unknown entry type {t}")),
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Store(entries.into_iter().flat_map(|e| e.1).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(alias, protected key, chain)`; no key for a trusted certificate entry.
    type Entry<'a> = (&'a str, Option<&'a [u8]>, &'a [&'a [u8]]);

    /// Builds a JKS file.
    fn jks(entries: &[Entry<'_>], password: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&JKS_MAGIC.to_be_bytes());
        b.extend_from_slice(&2u32.to_be_bytes());
        b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        let utf = |b: &mut Vec<u8>, s: &str| {
            b.extend_from_slice(&(s.len() as u16).to_be_bytes());
            b.extend_from_slice(s.as_bytes());
        };
        let bytes = |b: &mut Vec<u8>, d: &[u8]| {
            b.extend_from_slice(&(d.len() as u32).to_be_bytes());
            b.extend_from_slice(d);
        };
        for (alias, key, chain) in entries {
            b.extend_from_slice(&(if key.is_some() { 1u32 } else { 2 }).to_be_bytes());
            utf(&mut b, alias);
            b.extend_from_slice(&0u64.to_be_bytes());
            if let Some(k) = key {
                bytes(&mut b, k);
                b.extend_from_slice(&(chain.len() as u32).to_be_bytes());
            }
            for c in *chain {
                utf(&mut b, "X.509");
                bytes(&mut b, c);
            }
        }
        let d = sha1(&[&utf16be(password), WHITENER, &b]);
        b.extend_from_slice(&d);
        b
    }

    /// A protected key as Sun's protector writes it, for `key` and `password`.
    fn protect(key: &[u8], password: &str) -> Vec<u8> {
        let pw = utf16be(password);
        let salt = [7u8; 20];
        let mut digest = salt.to_vec();
        let mut enc = Vec::new();
        for block in key.chunks(20) {
            digest = sha1(&[&pw, &digest]).to_vec();
            enc.extend(block.iter().zip(&digest).map(|(a, b)| a ^ b));
        }
        let mut data = salt.to_vec();
        data.extend_from_slice(&enc);
        data.extend_from_slice(&sha1(&[&pw, key]));
        // EncryptedPrivateKeyInfo { AlgorithmIdentifier { OID }, OCTET STRING }
        let alg = [0x30, 0x0e, 0x06, 0x0a, 0x2b, 6, 1, 4, 1, 0x2a, 2, 0x11, 1, 1, 0x05, 0x00];
        let mut octets = vec![0x04, data.len() as u8];
        octets.extend_from_slice(&data);
        let mut out = vec![0x30, (alg.len() + octets.len()) as u8];
        out.extend_from_slice(&alg);
        out.extend_from_slice(&octets);
        out
    }

    /// Keystores made by `openssl pkcs12 -export` and `keytool` (fuzz seeds; the first byte is
    /// the fuzz selector): a key with leaf + intermediate; the root trusted as "root" plus that
    /// key as "server".
    #[test]
    fn real_keystores() {
        let cn = |d: &CertificateDer<'_>| {
            crate::modules::tls::parse_cert(d).unwrap().common_name.unwrap()
        };
        let p12 = &include_bytes!("../../../fuzz/seeds/x509/pkcs12-key-and-chain")[1..];
        let s = parse_pkcs12(p12, "changeit").unwrap();
        let names: Vec<String> = s.0.iter().map(cn).collect();
        assert_eq!(names, ["localhost", "Test Intermediate CA"]);
        assert!(parse_pkcs12(p12, "wrong").is_err());
        let jks = &include_bytes!("../../../fuzz/seeds/x509/jks-trusted-and-key")[1..];
        let s = parse_jks(jks, "changeit").unwrap();
        let names: Vec<String> = s.0.iter().map(cn).collect();
        assert_eq!(names, ["Test Root CA", "localhost", "Test Intermediate CA"]);
    }

    #[test]
    fn jks_entries_in_alias_order_with_openable_keys() {
        let key = protect(b"a private key of some length...", "changeit");
        let other = protect(b"a private key of some length...", "different");
        let file = jks(
            &[
                ("zeta", None, &[b"Z"]),
                ("alpha", Some(&key), &[b"L", b"I"]),
                ("beta", Some(&other), &[b"X"]),
            ],
            "changeit",
        );
        let s = parse_jks(&file, "changeit").unwrap();
        let got: Vec<&[u8]> = s.0.iter().map(|c| c.as_ref()).collect();
        assert_eq!(got, [b"L".as_slice(), b"I", b"Z"]);
        assert!(parse_jks(&file, "wrong").unwrap_err().contains("password"));
        assert!(parse_jks(&file[..30], "changeit").is_err());
    }
}
