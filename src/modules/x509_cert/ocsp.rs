//! Stapled OCSP responses (RFC 6960), read for telegraf's `ocsp_*` tags and fields: the status
//! of the first single response, its times, and whether the issuer signed it.
//!
//! Hand-written over a small DER reader: the response is five nested SEQUENCEs of which a
//! handful of fields are read; the signature check reuses `x509-parser`'s (ring). The bytes
//! come from the server, so every length is checked (fuzzed: `fuzz_api::x509`).

use x509_parser::prelude::*;

use super::der::{element, expect, raw};

/// Go's `time.Time{}.Unix()`: what telegraf writes for a response without nextUpdate.
pub(crate) const GO_ZERO_TIME: i64 = -62_135_596_800;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ocsp {
    /// 0 good, 1 revoked, 2 unknown (Go's `ocsp.Good`, `Revoked`, `Unknown`).
    pub status: i64,
    pub revoked_at: Option<i64>,
    pub produced_at: i64,
    pub this_update: i64,
    /// [`GO_ZERO_TIME`] when absent.
    pub next_update: i64,
    /// The first certificate embedded in the response (a delegated responder's), DER.
    pub responder: Option<Vec<u8>>,
    /// The DER of `tbsResponseData`, its signature algorithm and signature, for `signed_by`.
    tbs: Vec<u8>,
    sig_alg: Vec<u8>,
    signature: Vec<u8>,
}

/// `YYYYMMDDHHMMSS[.f*]Z` to Unix seconds.
fn generalized_time(v: &[u8]) -> Result<i64, String> {
    let s = std::str::from_utf8(v).map_err(|_| "bad time")?;
    let digits = s.get(..14).filter(|d| d.bytes().all(|c| c.is_ascii_digit()));
    let (Some(d), true) = (digits, s.ends_with('Z')) else {
        return Err(format!("bad time {s:?}"));
    };
    let n = |r: std::ops::Range<usize>| d[r].parse::<i64>().unwrap_or(0);
    let (y, mo, day, h, mi, sec) = (n(0..4), n(4..6), n(6..8), n(8..10), n(10..12), n(12..14));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return Err(format!("bad time {s:?}"));
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86400 + h * 3600 + mi * 60 + sec)
}

/// Parses an OCSPResponse; errors read like Go's `ocsp.ParseResponse` where it matters.
pub(crate) fn parse(der: &[u8]) -> Result<Ocsp, String> {
    const SEQ: u8 = 0x30;
    let (resp, _) = expect(der, SEQ)?;
    let (status, rest) = expect(resp, 0x0a)?;
    if status != [0] {
        return Err(format!(
            "ocsp: error from server: {}",
            match status {
                [1] => "malformed",
                [2] => "internal error",
                [3] => "try later",
                [5] => "signature required",
                [6] => "unauthorized",
                _ => "unknown OCSP status",
            }
        ));
    }
    let (bytes, _) = expect(rest, 0xa0)?;
    let (bytes, _) = expect(bytes, SEQ)?;
    let (_oid, rest) = expect(bytes, 0x06)?;
    let (basic, _) = expect(rest, 0x04)?;
    let (basic, _) = expect(basic, SEQ)?;
    let tbs = raw(basic)?;
    let (data, rest) = expect(basic, SEQ)?;
    let sig_alg = raw(rest)?;
    let (_, rest) = expect(rest, SEQ)?;
    let signature = raw(rest)?;
    let (_, rest) = expect(rest, 0x03)?;
    // certs [0] EXPLICIT SEQUENCE OF Certificate: the responder's certificate comes first.
    let responder = match rest.first() {
        Some(0xa0) => {
            let (certs, _) = expect(rest, 0xa0)?;
            let (certs, _) = expect(certs, SEQ)?;
            (!certs.is_empty()).then(|| raw(certs)).transpose()?.map(<[u8]>::to_vec)
        }
        _ => None,
    };
    // ResponseData: [0] version?, responderID ([1] or [2]), producedAt, responses, [1] exts?
    let mut d = data;
    if d.first() == Some(&0xa0) {
        d = expect(d, 0xa0)?.1;
    }
    let (tag, _, rest) = element(d)?;
    if tag != 0xa1 && tag != 0xa2 {
        return Err("bad responder id".into());
    }
    let (produced, rest) = expect(rest, 0x18)?;
    let (responses, _) = expect(rest, SEQ)?;
    if responses.is_empty() {
        return Err("OCSP response contains no certificate responses".into());
    }
    let (single, _) = expect(responses, SEQ)?;
    let (_cert_id, rest) = expect(single, SEQ)?;
    let (tag, status, rest) = element(rest)?;
    let (status, revoked_at) = match tag {
        0x80 => (0, None),
        0xa1 => {
            let (t, _) = expect(status, 0x18)?;
            (1, Some(generalized_time(t)?))
        }
        0x82 => (2, None),
        _ => return Err("bad certificate status".into()),
    };
    let (this_update, rest) = expect(rest, 0x18)?;
    let next_update = match rest.first() {
        Some(0xa0) => {
            let (v, _) = expect(rest, 0xa0)?;
            generalized_time(expect(v, 0x18)?.0)?
        }
        _ => GO_ZERO_TIME,
    };
    Ok(Ocsp {
        status,
        revoked_at,
        produced_at: generalized_time(produced)?,
        this_update: generalized_time(this_update)?,
        next_update,
        responder,
        tbs: tbs.to_vec(),
        sig_alg: sig_alg.to_vec(),
        signature: signature.to_vec(),
    })
}

impl Ocsp {
    /// Whether `issuer` signed the response (telegraf's `ocsp_verified`).
    pub(crate) fn signed_by(&self, issuer: &X509Certificate<'_>) -> bool {
        use x509_parser::asn1_rs::{BitString, FromDer};
        let (Ok((_, alg)), Ok((_, sig))) = (
            AlgorithmIdentifier::from_der(&self.sig_alg),
            BitString::from_der(&self.signature),
        ) else {
            return false;
        };
        x509_parser::verify::verify_signature(issuer.public_key(), &alg, &sig, &self.tbs).is_ok()
    }

    /// telegraf's `ocsp_status` tag.
    pub(crate) fn status_name(&self) -> &'static str {
        match self.status {
            0 => "good",
            1 => "revoked",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(generalized_time(b"19700101000000Z"), Ok(0));
        assert_eq!(generalized_time(b"20261202120909Z"), Ok(1_796_213_349));
        assert_eq!(generalized_time(b"20000229000000.5Z"), Ok(951_782_400));
        assert!(generalized_time(b"2026120212Z").is_err());
        assert!(generalized_time(b"20261302120909Z").is_err());
    }

    /// Responses `openssl ocsp` made (fuzz seeds; the first byte is the fuzz selector).
    #[test]
    fn openssl_responses() {
        let revoked = &include_bytes!("../../../fuzz/seeds/x509/ocsp-revoked")[1..];
        let r = parse(revoked).unwrap();
        assert_eq!((r.status, r.status_name()), (1, "revoked"));
        assert_eq!(r.revoked_at, Some(1_793_491_200), "2026-11-01");
        assert_eq!(r.next_update - r.this_update, 86400);
        assert!(r.responder.is_none(), "-resp_no_certs");
        let good = &include_bytes!("../../../fuzz/seeds/x509/ocsp-good-embedded-responder")[1..];
        let g = parse(good).unwrap();
        assert_eq!((g.status, g.revoked_at), (0, None));
        let responder = g.responder.as_deref().unwrap();
        let (_, cert) = X509Certificate::from_der(responder).unwrap();
        assert!(g.signed_by(&cert), "signed by the embedded responder");
        assert!(!r.signed_by(&cert) || r.tbs != g.tbs);
        for cut in [10, revoked.len() / 2, revoked.len() - 1] {
            assert!(parse(&revoked[..cut]).is_err());
        }
    }

    #[test]
    fn refuses_truncated_and_error_responses() {
        assert!(parse(&[]).is_err());
        assert!(parse(&[0x30, 0x03, 0x0a, 0x01, 0x01]).unwrap_err().contains("malformed"));
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(parse(&[0x30, 0x05, 0x0a, 0x01, 0x00]).is_err());
    }
}
