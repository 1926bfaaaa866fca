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
                // telegraf reads at most max + 1 bytes and reports that as content_length.
                into.len = max + 1;
                return Err(format!("body larger than {max} bytes"));
            }
            if keep {
                into.data.extend_from_slice(&chunk);
            }
        }
    }
    Ok(())
}

/// The verdict on a response whose body was read (`read_failed`: the read ended in an error or
/// a timeout), in telegraf's order: a failed read, or a body that is not UTF-8 when
/// `response_body_field` is set, is `body_read_error` with `response_string_match = 0` when
/// that option is set; else the string match, then the status code, the later failure having
/// the last word (`response_status_code_mismatch` when both fail).
pub(super) fn judge(c: &Config, status: u16, body: &[u8], read_failed: bool, report: &mut Report) {
    let bad_text = c.body_field.is_some() && std::str::from_utf8(body).is_err();
    if read_failed || bad_text {
        if bad_text && !read_failed {
            tracing::debug!("the response body is not valid UTF-8");
        }
        report.outcome = Outcome::BodyReadError;
        report.string_match = c.string_match.as_ref().map(|_| false);
        return;
    }
    report.body = c
        .body_field
        .as_ref()
        .map(|_| String::from_utf8_lossy(body).into_owned());
    if let Some(re) = &c.string_match {
        let ok = re.is_match(body);
        report.string_match = Some(ok);
        if !ok {
            report.outcome = Outcome::StringMismatch;
        }
    }
    if let Some(want) = c.expected_status {
        let ok = want == status;
        report.status_match = Some(ok);
        if !ok {
            report.outcome = Outcome::StatusCodeMismatch;
        }
    }
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
        let (r, got) = read(b"hello, world", 5, true);
        assert!(r.unwrap_err().contains("larger than 5 bytes"));
        assert_eq!(got.len, 6);
    }

    fn config(toml: &str) -> Config {
        resolve(toml::from_str::<Raw>(toml).unwrap()).unwrap()
    }

    #[test]
    fn status_code_has_the_last_word() {
        let c = config(
            "response_status_code = 200\nresponse_string_match = \"^ok\"\nresponse_body_field = \"b\"",
        );
        let mut r = empty_report(Outcome::Success);
        judge(&c, 200, b"ok then", false, &mut r);
        assert_eq!(
            (r.outcome, r.status_match, r.string_match),
            (Outcome::Success, Some(true), Some(true))
        );
        assert_eq!(r.body.as_deref(), Some("ok then"));
        let mut r = empty_report(Outcome::Success);
        judge(&c, 404, b"not ok", false, &mut r);
        assert_eq!(
            (r.outcome, r.status_match, r.string_match),
            (Outcome::StatusCodeMismatch, Some(false), Some(false))
        );
        let mut r = empty_report(Outcome::Success);
        judge(&c, 200, b"not ok", false, &mut r);
        assert_eq!(r.outcome, Outcome::StringMismatch);
    }

    #[test]
    fn body_read_errors() {
        let c = config("response_string_match = \"ok\"\nresponse_status_code = 200");
        let mut r = empty_report(Outcome::Success);
        judge(&c, 200, b"ok", true, &mut r);
        assert_eq!(
            (r.outcome, r.string_match, r.status_match),
            (Outcome::BodyReadError, Some(false), None)
        );
        // Not UTF-8 with a body field: telegraf's body_read_error, no field.
        let c = config("response_body_field = \"b\"");
        let mut r = empty_report(Outcome::Success);
        judge(&c, 200, b"a\xffb", false, &mut r);
        assert_eq!((r.outcome, r.string_match, r.body), (Outcome::BodyReadError, None, None));
        // Without a body field, bytes are fine.
        let c = config("response_string_match = \"a\"");
        let mut r = empty_report(Outcome::Success);
        judge(&c, 200, b"a\xffb", false, &mut r);
        assert_eq!(r.outcome, Outcome::Success);
    }
}
