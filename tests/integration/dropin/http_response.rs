//! telegraf's http_response (`plugins/inputs/http_response`): options and schema.

use super::{Kind::*, Series, Setup, Table};
use crate::netprobes::start_nginx;

pub(crate) const TABLE: Table = Table {
    input: "http_response",
    // A closed loopback port: every probe ends at once (connection_failed), and no option line
    // sends anything off the machine.
    base: "urls = [\"http://127.0.0.1:1/\"]\nresponse_timeout = \"2s\"",
    options: &[
        r#"urls = ["http://localhost"]"#,
        r#"http_proxy = "http://localhost:8888""#,
        r#"response_timeout = "5s""#,
        r#"method = "GET""#,
        r#"follow_redirects = false"#,
        r#"token = "my-token""#,
        r#"username = "username""#,
        r#"password = "pa$$word""#,
        "body = '''\n{'fake':'data'}\n'''",
        // sample.conf's `{ "key": "value" }` is not TOML (telegraf refuses it too, see
        // `refused`); its values are string lists, and a single string is taken as one.
        r#"body_form = { "key" = "value" }"#,
        r#"body_form = { "key" = ["v1", "v2"] }"#,
        r#"response_body_field = ''"#,
        r#"response_body_max_size = "32MiB""#,
        r#"response_string_match = "\"service_status\": \"up\"""#,
        r#"response_string_match = "ok""#,
        r#"response_string_match = "\".*_status\".?:.?\"up\"""#,
        r#"response_status_code = 0"#,
        r#"insecure_skip_verify = false"#,
        r#"tls_server_name = """#,
        r#"tls_renegotiation_method = "never""#,
        "[inputs.http_response.headers]\n  Host = \"github.com\"",
        r#"http_header_tags = {"HTTP_HEADER" = "TAG_NAME"}"#,
        r#"interface = "eth0""#,
        r#"cookie_auth_url = "https://localhost/authMe""#,
        r#"cookie_auth_method = "POST""#,
        r#"cookie_auth_username = "username""#,
        r#"cookie_auth_password = "pa$$word""#,
        r#"cookie_auth_body = '{"username": "user", "password": "pa$$word", "authenticate": "me"}'"#,
        r#"cookie_auth_renewal = "5m""#,
        // Not in sample.conf; telegraf's cookie options (plugins/common/cookie) have it.
        r#"cookie_auth_headers = { Content-Type = "application/json" }"#,
        // The deprecated form of `token` (a file), still accepted by telegraf.
        r#"bearer_token = "/dev/null""#,
    ],
    refused: &[
        // Not TOML: telegraf fails with "invalid TOML syntax" (influxdata/telegraf#16378).
        (r#"body_form = { "key": "value" }"#, "expected `=`"),
        // telegraf reads the TLS files when the plugin starts: its example paths do not exist.
        (r#"tls_ca = "/etc/telegraf/ca.pem""#, "/etc/telegraf/ca.pem"),
        (
            "tls_cert = \"/etc/telegraf/cert.pem\"\ntls_key = \"/etc/telegraf/key.pem\"",
            "/etc/telegraf/cert.pem",
        ),
    ],
    schema: &[Series {
        measurement: "http_response",
        tags: &["server", "method", "status_code", "result"],
        fields: &[
            ("response_time", Float),
            ("http_response_code", Int),
            ("content_length", Int),
            ("response_string_match", Int),
            ("response_status_code_match", Int),
            ("result_type", Str),
            ("result_code", Int),
        ],
        extra: &[
            ("dns_time", Float),
            ("connect_time", Float),
            ("tls_time", Float),
            ("request_write_time", Float),
            ("ttfb", Float),
            ("transfer_time", Float),
            ("tls_cert_expiry_s", Int),
            ("tls_verification_code", Int),
            ("tls_verification_error", Str),
            ("redirects", Int),
            ("http_version", Str),
        ],
        unseen: &[],
    }],
    setup,
};

/// nginx on loopback: a checked body and status over http, https by name with the test CA
/// (every phase), and https without the CA (the verification error, kept by
/// `insecure_skip_verify`).
fn setup() -> Setup {
    let ng = start_nginx();
    let (h, s) = (ng.http, ng.https);
    let ca = ng.pki.path("ca.pem");
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\"]\n  response_string_match = \"hello\"\n  response_status_code = 200\n\
         [[inputs.http_response]]\n  urls = [\"https://localhost:{s}/hello\"]\n  tls_ca = \"{}\"\n\
         [[inputs.http_response]]\n  urls = [\"https://127.0.0.1:{s}/hello\"]\n  insecure_skip_verify = true\n",
        ca.display()
    );
    Setup::with(config, ng)
}
