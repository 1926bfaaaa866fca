//! The response body: read within `response_body_max_size`, then judged
//! (`response_status_code`, `response_string_match`) and kept for `response_body_field`.

use std::fmt::Display;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::config::Config;
use super::{Outcome, Report};

/// What was read of a body: its length so far and, when kept, its bytes.
#[derive(Debug, Default)]
pub(super) struct Collected {
    pub(super) data: Vec<u8>,
    pub(super) len: u64,
}

/// Reads `body` to its end into `into` (bytes only when `keep`); a body longer than `max`
/// bytes is an error. What was read before an error or a timeout stays in `into`.
pub(super) async fn read_limited<B>(
    mut body: B,
    max: u64,
    keep: bool,
    into: &mut Collected,
) -> Result<(), String>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(chunk) = frame.into_data() {
            into.len += chunk.len() as u64;
            if into.len > max {
                return Err(format!("body larger than {max} bytes"));
            }
            if keep {
                into.data.extend_from_slice(&chunk);
            }
        }
    }
    Ok(())
}

/// `response_status_code` and `response_string_match` on a response read whole: the match
/// fields, and the outcome when one does not match (the string match has the last word).
pub(super) fn judge(c: &Config, status: u16, body: &[u8], report: &mut Report) {
    if let Some(want) = c.expected_status {
        let ok = want == status;
        report.status_match = Some(ok);
        if !ok {
            report.outcome = Outcome::StatusCodeMismatch;
        }
    }
    if let Some(re) = &c.string_match {
        let ok = re.is_match(body);
        report.string_match = Some(ok);
        if !ok {
            report.outcome = Outcome::StringMismatch;
        }
    }
}

/// The `response_body_field` value (invalid UTF-8 replaced), when that option is set.
pub(super) fn field(c: &Config, body: &[u8]) -> Option<String> {
    c.body_field
        .as_ref()
        .map(|_| String::from_utf8_lossy(body).into_owned())
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::super::config::{Raw, resolve};
    use super::super::empty_report;
    use super::*;

    fn read(body: &'static [u8], max: u64, keep: bool) -> (Result<(), String>, Collected) {
        let mut got = Collected::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(read_limited(
            Full::new(Bytes::from_static(body)),
            max,
            keep,
            &mut got,
        ));
        (r, got)
    }

    #[test]
    fn body_within_and_over_the_limit() {
        let (r, got) = read(b"hello", 5, true);
        assert_eq!(
            (r, got.len, got.data.as_slice()),
            (Ok(()), 5, &b"hello"[..])
        );
        let (r, got) = read(b"hello", 5, false);
        assert!(r.is_ok() && got.len == 5 && got.data.is_empty(), "{got:?}");
        let (r, got) = read(b"hello!", 5, true);
        assert!(r.unwrap_err().contains("larger than 5 bytes"));
        assert_eq!(got.len, 6);
    }

    #[test]
    fn string_match_has_the_last_word() {
        let c = resolve(
            toml::from_str::<Raw>(
                "response_status_code = 200\nresponse_string_match = \"^ok\"\nresponse_body_field = \"b\"",
            )
            .unwrap(),
        )
        .unwrap();
        let mut r = empty_report(Outcome::Success);
        judge(&c, 200, b"ok then", &mut r);
        assert_eq!(
            (r.outcome, r.status_match, r.string_match),
            (Outcome::Success, Some(true), Some(true))
        );
        let mut r = empty_report(Outcome::Success);
        judge(&c, 404, b"not ok", &mut r);
        assert_eq!(
            (r.outcome, r.status_match, r.string_match),
            (Outcome::StringMismatch, Some(false), Some(false))
        );
        assert_eq!(field(&c, b"a\xffb").as_deref(), Some("a\u{fffd}b"));
    }
}
