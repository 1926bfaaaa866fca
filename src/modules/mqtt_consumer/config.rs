//! `[[inputs.mqtt_consumer]]` options, with telegraf's names and defaults, and their resolution
//! into a validated [`Config`].

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::json::{JsonOptions, TimeFormat};
use super::topic::TopicParser;
use super::value::DataType;
use crate::options::{ConfigDuration, GlobSet, SecretSource, SpanError};
use crate::modules::tls::{self, Trust};

/// `[[inputs.mqtt_consumer]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Broker URLs, `scheme://host:port`: `tcp://` (or `mqtt://`, port 1883 by default),
    /// `ssl://` (or `tls://`, `mqtts://`, port 8883), `ws://` (port 80) and `wss://` (port 443,
    /// with a path such as `/mqtt`). Several servers are tried in turn, one connection at a
    /// time. Default `["tcp://127.0.0.1:1883"]`.
    servers: Option<Vec<Spanned<String>>>,
    /// Topic filters subscribed to (`+` one level, `#` the rest). Required.
    topics: Spanned<Vec<String>>,
    /// Tag that receives the message's topic. Default `"topic"`; `""` adds no tag.
    topic_tag: Option<String>,
    /// QoS of the subscriptions: 0 at most once, 1 at least once, 2 exactly once. Default 0.
    /// With 1 or 2 a message is acknowledged only once its lines are in the output queue; with
    /// `persistent_session` messages published while the agent is away are kept by the broker.
    qos: Option<Spanned<u8>>,
    /// Bound on one connection attempt (TCP, TLS, CONNECT/CONNACK). Default 30s. Whole seconds
    /// (rounded up): the client counts in seconds.
    connection_timeout: Option<ConfigDuration>,
    /// Longest wait between two connection attempts; the wait doubles from 1s up to this, with
    /// ±20 % jitter. Default 30s.
    max_reconnect_interval: Option<ConfigDuration>,
    /// MQTT keep-alive: a PINGREQ is sent after this long; whole seconds, at least 1s, or 0 to
    /// disable (then a silent broker is never detected). Default 60s.
    keepalive: Option<ConfigDuration>,
    /// A PINGREQ not answered within this long drops the connection and reconnects, so a broker
    /// that accepts but never speaks is detected within `keepalive + ping_timeout`. Default 10s.
    ping_timeout: Option<ConfigDuration>,
    /// Logs every MQTT packet sent and received at debug level. Default false.
    client_trace: Option<bool>,
    /// Messages received but not yet queued for output (and so not yet acknowledged); beyond it
    /// the input stops reading from the broker, which keeps the backlog. Default 1000.
    max_undelivered_messages: Option<Spanned<usize>>,
    /// Keeps the broker session (subscriptions and QoS 1/2 messages) across disconnections and
    /// restarts of the agent. Requires `client_id`. Default false.
    persistent_session: Option<Spanned<bool>>,
    /// Client identifier. Default: a random `metrics-agent-XXXXXXXX` per run.
    client_id: Option<String>,
    /// User name for the broker.
    username: Option<String>,
    /// Password given inline. Never logged.
    password: Option<String>,
    /// File whose content (trimmed) is the password, read at every connection attempt so it
    /// can rotate.
    password_file: Option<String>,
    /// Environment variable holding the password, read at every connection attempt.
    password_env: Option<String>,
    /// PEM file of CA certificates that replaces the system roots (`ssl://`, `wss://`).
    tls_ca: Option<Spanned<String>>,
    /// Client certificate (PEM, leaf first) and key (PEM) for brokers that require mutual TLS.
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<String>,
    /// Name used for SNI and certificate verification instead of the server's host.
    tls_server_name: Option<Spanned<String>>,
    /// Accept any broker certificate (signatures of the handshake are still checked).
    /// Default false.
    insecure_skip_verify: Option<bool>,
    /// `influx` (line protocol, default), `json` (telegraf's `json` parser) or `value`.
    data_format: Option<Spanned<String>>,
    /// `value` format: `integer`, `float`, `long`, `string`, `boolean`, `auto_integer` or
    /// `auto_float`. Required with `data_format = "value"`.
    data_type: Option<Spanned<String>>,
    /// `value` format: name of the field. Default `value`.
    value_field_name: Option<String>,
    /// `json`: keys (after flattening nested objects with `_`) written as tags; `*` globs.
    tag_keys: Option<Spanned<Vec<String>>>,
    /// `json`: string values kept as string fields (others are dropped, as in telegraf); `*`
    /// globs.
    json_string_fields: Option<Spanned<Vec<String>>>,
    /// `json`: key whose string value is the measurement name.
    json_name_key: Option<String>,
    /// `json`: key holding the timestamp; absent means the time of receipt.
    json_time_key: Option<String>,
    /// `json`: `unix`, `unix_ms`, `unix_us`, `unix_ns` or a Go layout such as
    /// `2006-01-02T15:04:05Z07:00`. Required with `json_time_key`.
    json_time_format: Option<Spanned<String>>,
    /// `json`: path of the object or array to parse, dot-separated keys and array indices
    /// (`data.readings`, `items.0`), the plain-path subset of telegraf's GJSON syntax.
    json_query: Option<String>,
    /// Messages that cannot be parsed (or make a parser panic) are republished unchanged to
    /// this topic, at the subscription QoS, before being acknowledged. Default: none.
    dead_letter_topic: Option<Spanned<String>>,
    /// Measurement, tags and fields taken from the topic's levels.
    topic_parsing: Option<Vec<RawTopicParsing>>,
}

/// `[[inputs.mqtt_consumer.topic_parsing]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopicParsing {
    /// Topics this rule applies to, level by level: a literal level must match, `+` matches any
    /// one level, `#` any number (the levels after it count from the end).
    pub(super) topic: Spanned<String>,
    /// Same levels as `topic`: the one level not `_` is the measurement name.
    pub(super) measurement: Option<String>,
    /// Same levels as `topic`: each level not `_` names a tag whose value is the topic's level.
    pub(super) tags: Option<String>,
    /// Same levels as `topic`: each level not `_` names a field whose value is the topic's level.
    pub(super) fields: Option<String>,
    /// Types of those fields: `int`, `uint` or `float` (string otherwise).
    pub(super) types: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Tcp,
    Tls,
    Ws,
    Wss,
}

/// One broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Server {
    /// As configured, for logs.
    pub url: String,
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// For `ws://`/`wss://`: the path, `/` when absent.
    pub path: String,
}

#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    pub trust: Trust,
    pub server_name: Option<String>,
    pub insecure: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Format {
    Influx,
    Json(Arc<JsonOptions>),
    Value { data_type: DataType, field: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub servers: Vec<Server>,
    pub topics: Vec<String>,
    pub topic_tag: Option<String>,
    pub qos: u8,
    pub connection_timeout: Duration,
    pub max_reconnect_interval: Duration,
    pub keepalive: Duration,
    pub ping_timeout: Duration,
    pub client_trace: bool,
    pub max_undelivered: usize,
    pub persistent_session: bool,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    pub tls: Option<TlsSettings>,
    pub format: Format,
    pub topic_parsing: Vec<TopicParser>,
    pub dead_letter_topic: Option<String>,
}

/// Parses `scheme://host[:port][/path]`.
pub(crate) fn parse_server(url: &str) -> Result<Server, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?}: expected scheme://host:port"))?;
    let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "tcp" | "mqtt" => (Scheme::Tcp, 1883),
        "ssl" | "tls" | "mqtts" => (Scheme::Tls, 8883),
        "ws" => (Scheme::Ws, 80),
        "wss" => (Scheme::Wss, 443),
        other => {
            return Err(format!(
                "{url:?}: unsupported scheme {other:?} (tcp, ssl, ws or wss)"
            ));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!(
            "{url:?}: credentials in the URL are not supported; use username/password"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or_else(|| format!("{url:?}: unclosed ["))?;
        (h.to_owned(), tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?}: missing host"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{url:?}: invalid port {p:?}"))?,
    };
    if matches!(scheme, Scheme::Tcp | Scheme::Tls) && path != "/" {
        return Err(format!(
            "{url:?}: a path is only meaningful for ws:// and wss://"
        ));
    }
    Ok(Server {
        url: url.to_owned(),
        scheme,
        host,
        port,
        path: path.to_owned(),
    })
}

/// `true` when `filter` is a valid MQTT topic filter: non-empty, `#` only as the last whole
/// level, `+` only as a whole level, no NUL.
pub(crate) fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        (*l == "#" && i == levels.len() - 1) || *l == "+" || (!l.contains('#') && !l.contains('+'))
    })
}

/// Key patterns in telegraf's glob forms, errors pointing at `key`.
fn globs(list: &Option<Spanned<Vec<String>>>, key: &str) -> Result<GlobSet, SpanError> {
    match list {
        None => Ok(GlobSet::default()),
        Some(l) => GlobSet::new(l.get_ref(), "").map_err(|e| SpanError::new(l.span(), key, e.to_string())),
    }
}

fn duration_secs(d: Option<ConfigDuration>, default: u64) -> Duration {
    d.map_or(Duration::from_secs(default), ConfigDuration::get)
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let servers = match &raw.servers {
        None => vec![
            parse_server("tcp://127.0.0.1:1883").map_err(|e| SpanError::new(0..0, "servers", e))?,
        ],
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for s in list {
                out.push(
                    parse_server(s.get_ref())
                        .map_err(|e| SpanError::new(s.span(), "servers", e))?,
                );
            }
            out
        }
    };
    if servers.is_empty() {
        return Err(SpanError::new(
            0..0,
            "servers",
            "at least one server is required",
        ));
    }
    let topics_span = raw.topics.span();
    let topics = raw.topics.into_inner();
    if topics.is_empty() {
        return Err(SpanError::new(
            topics_span,
            "topics",
            "at least one topic is required",
        ));
    }
    if let Some(bad) = topics.iter().find(|t| !valid_filter(t)) {
        return Err(SpanError::new(
            topics_span,
            "topics",
            format!(
                "{bad:?} is not a valid topic filter (`#` only as the last level, `+` only as a whole level)"
            ),
        ));
    }
    let qos = match &raw.qos {
        None => 0,
        Some(q) if *q.get_ref() <= 2 => *q.get_ref(),
        Some(q) => return Err(SpanError::new(q.span(), "qos", "must be 0, 1 or 2")),
    };
    let keepalive = duration_secs(raw.keepalive, 60);
    if !keepalive.is_zero() && keepalive < Duration::from_secs(1) {
        return Err(SpanError::new(
            0..0,
            "keepalive",
            "must be 0 or at least 1s",
        ));
    }
    // The client counts keep-alive and timeouts in whole seconds.
    let keepalive = Duration::from_secs(keepalive.as_secs_f64().ceil() as u64);
    let connection_timeout = duration_secs(raw.connection_timeout, 30).max(Duration::from_secs(1));
    let max_reconnect_interval =
        duration_secs(raw.max_reconnect_interval, 30).max(Duration::from_secs(1));
    let ping_timeout = duration_secs(raw.ping_timeout, 10);
    let max_undelivered = match &raw.max_undelivered_messages {
        None => 1000,
        Some(n) if *n.get_ref() >= 1 => *n.get_ref(),
        Some(n) => {
            return Err(SpanError::new(
                n.span(),
                "max_undelivered_messages",
                "must be at least 1",
            ));
        }
    };
    let client_id = raw.client_id.filter(|c| !c.is_empty());
    let persistent_session = match &raw.persistent_session {
        Some(p) if *p.get_ref() && client_id.is_none() => {
            return Err(SpanError::new(
                p.span(),
                "persistent_session",
                "requires client_id: the broker finds the session by the client identifier",
            ));
        }
        Some(p) => *p.get_ref(),
        None => false,
    };
    let password = SecretSource::from_options(
        raw.password,
        raw.password_file,
        raw.password_env,
        ["password", "password_file", "password_env"],
    )
    .map_err(|e| SpanError::new(0..0, "password", e))?;
    let needs_tls = servers
        .iter()
        .any(|s| matches!(s.scheme, Scheme::Tls | Scheme::Wss));
    let tls = if needs_tls {
        let trust = Trust::from_options(&raw.tls_ca, &raw.tls_cert, &raw.tls_key)?;
        let server_name = match &raw.tls_server_name {
            Some(n) => {
                tls::server_name(n.get_ref())
                    .map_err(|e| SpanError::new(n.span(), "tls_server_name", e))?;
                Some(n.get_ref().clone())
            }
            None => None,
        };
        Some(TlsSettings {
            trust,
            server_name,
            insecure: raw.insecure_skip_verify.unwrap_or(false),
        })
    } else {
        None
    };
    let format = match raw
        .data_format
        .as_ref()
        .map(|f| (f.get_ref().as_str(), f.span()))
    {
        None | Some(("influx", _)) => Format::Influx,
        Some(("json", _)) => {
            let time_format = match (&raw.json_time_key, &raw.json_time_format) {
                (None, _) => None,
                (Some(_), None) => {
                    return Err(SpanError::new(
                        0..0,
                        "json_time_format",
                        "required with json_time_key",
                    ));
                }
                (Some(_), Some(f)) => Some(
                    TimeFormat::parse(f.get_ref())
                        .map_err(|e| SpanError::new(f.span(), "json_time_format", e))?,
                ),
            };
            Format::Json(Arc::new(JsonOptions {
                tag_keys: globs(&raw.tag_keys, "tag_keys")?,
                string_fields: globs(&raw.json_string_fields, "json_string_fields")?,
                name_key: raw.json_name_key.filter(|k| !k.is_empty()),
                time_key: raw.json_time_key.filter(|k| !k.is_empty()),
                time_format,
                query: raw.json_query.filter(|q| !q.is_empty()),
            }))
        }
        Some(("value", span)) => {
            let data_type = match &raw.data_type {
                None => {
                    return Err(SpanError::new(
                        span,
                        "data_type",
                        "required with data_format = \"value\"",
                    ));
                }
                Some(t) => DataType::parse(t.get_ref())
                    .map_err(|e| SpanError::new(t.span(), "data_type", e))?,
            };
            Format::Value {
                data_type,
                field: raw
                    .value_field_name
                    .filter(|f| !f.is_empty())
                    .unwrap_or_else(|| "value".to_owned()),
            }
        }
        Some((other, span)) => {
            return Err(SpanError::new(
                span,
                "data_format",
                format!("unsupported format {other:?} (influx, json or value)"),
            ));
        }
    };
    let mut topic_parsing = Vec::new();
    for rule in raw.topic_parsing.unwrap_or_default() {
        let span = rule.topic.span();
        topic_parsing
            .push(TopicParser::new(&rule).map_err(|e| SpanError::new(span, "topic_parsing", e))?);
    }
    let dead_letter_topic = match raw.dead_letter_topic {
        None => None,
        Some(t) if t.get_ref().is_empty() => None,
        Some(t) => {
            if t.get_ref().contains(['+', '#', '\0']) {
                return Err(SpanError::new(
                    t.span(),
                    "dead_letter_topic",
                    "a topic to publish to cannot contain + or #",
                ));
            }
            if topics
                .iter()
                .any(|f| super::topic::filter_matches(f, t.get_ref()))
            {
                return Err(SpanError::new(
                    t.span(),
                    "dead_letter_topic",
                    "is matched by one of `topics`: dead letters would come back as messages",
                ));
            }
            Some(t.into_inner())
        }
    };
    Ok(Config {
        servers,
        topics,
        topic_tag: match raw.topic_tag {
            None => Some("topic".to_owned()),
            Some(t) if t.is_empty() => None,
            Some(t) => Some(t),
        },
        qos,
        connection_timeout,
        max_reconnect_interval,
        keepalive,
        ping_timeout,
        client_trace: raw.client_trace.unwrap_or(false),
        max_undelivered,
        persistent_session,
        client_id,
        username: raw.username,
        password,
        tls,
        format,
        topic_parsing,
        dead_letter_topic,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, SpanError> {
        resolve(toml::from_str(text).map_err(|e| SpanError::new(0..0, "", e.to_string()))?)
    }

    #[test]
    fn defaults_are_telegrafs() {
        let c = parse("topics = [\"sensors/#\"]\n").unwrap();
        assert_eq!(c.servers[0].host, "127.0.0.1");
        assert_eq!(c.servers[0].port, 1883);
        assert_eq!(c.servers[0].scheme, Scheme::Tcp);
        assert_eq!(c.topic_tag.as_deref(), Some("topic"));
        assert_eq!(c.qos, 0);
        assert_eq!(c.connection_timeout, Duration::from_secs(30));
        assert_eq!(c.max_reconnect_interval, Duration::from_secs(30));
        assert_eq!(c.keepalive, Duration::from_secs(60));
        assert_eq!(c.ping_timeout, Duration::from_secs(10));
        assert_eq!(c.max_undelivered, 1000);
        assert!(!c.persistent_session);
        assert!(matches!(c.format, Format::Influx));
        assert!(c.tls.is_none());
    }

    #[test]
    fn servers_of_every_scheme() {
        let s = parse_server("ssl://broker.example:8884").unwrap();
        assert_eq!((s.scheme, s.port), (Scheme::Tls, 8884));
        let s = parse_server("ws://[::1]/mqtt").unwrap();
        assert_eq!(
            (s.scheme, s.host.as_str(), s.port, s.path.as_str()),
            (Scheme::Ws, "::1", 80, "/mqtt")
        );
        assert_eq!(parse_server("wss://b").unwrap().port, 443);
        assert_eq!(parse_server("mqtt://b").unwrap().port, 1883);
        assert!(parse_server("http://b").is_err());
        assert!(parse_server("tcp://u:p@b:1883").is_err());
        assert!(parse_server("tcp://b:0").is_err());
        assert!(parse_server("tcp://b/x").is_err());
        assert!(parse_server("b:1883").is_err());
    }

    #[test]
    fn persistent_session_needs_client_id() {
        let e = parse("topics = [\"a\"]\npersistent_session = true\n").unwrap_err();
        assert_eq!(e.key, "persistent_session");
        let c = parse("topics = [\"a\"]\npersistent_session = true\nclient_id = \"x\"\n").unwrap();
        assert!(c.persistent_session);
    }

    #[test]
    fn invalid_values_are_refused_with_their_key() {
        for (text, key) in [
            ("topics = []\n", "topics"),
            ("topics = [\"a/#/b\"]\n", "topics"),
            ("topics = [\"a/b+\"]\n", "topics"),
            ("topics = [\"a\"]\nqos = 3\n", "qos"),
            ("topics = [\"a\"]\nkeepalive = \"500ms\"\n", "keepalive"),
            (
                "topics = [\"a\"]\nmax_undelivered_messages = 0\n",
                "max_undelivered_messages",
            ),
            (
                "topics = [\"a\"]\npassword = \"x\"\npassword_env = \"Y\"\n",
                "password",
            ),
            ("topics = [\"a\"]\ndata_format = \"xml\"\n", "data_format"),
            ("topics = [\"a\"]\ndata_format = \"value\"\n", "data_type"),
            (
                "topics = [\"a\"]\ndata_format = \"value\"\ndata_type = \"complex\"\n",
                "data_type",
            ),
            (
                "topics = [\"a\"]\ndata_format = \"json\"\njson_time_key = \"t\"\n",
                "json_time_format",
            ),
            (
                "topics = [\"a/#\"]\ndead_letter_topic = \"a/dead\"\n",
                "dead_letter_topic",
            ),
            (
                "topics = [\"a\"]\ndead_letter_topic = \"d/+\"\n",
                "dead_letter_topic",
            ),
            (
                "topics = [\"a\"]\nservers = [\"ssl://b\"]\ntls_cert = \"/x\"\n",
                "tls_cert",
            ),
        ] {
            let e = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert_eq!(e.key, key, "{text}");
        }
        assert!(parse("topics = [\"a\"]\nbogus = 1\n").is_err());
    }

    #[test]
    fn password_sources_and_redaction() {
        let c = parse("topics = [\"a\"]\nusername = \"u\"\npassword = \"hunter2\"\n").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let c = parse(&format!(
            "topics = [\"a\"]\npassword_file = {:?}\n",
            f.display().to_string()
        ))
        .unwrap();
        assert_eq!(c.password.unwrap().read().unwrap().expose(), "s3cret");
        let c = parse("topics = [\"a\"]\npassword_env = \"MQTT_TEST_SURELY_UNSET_VAR\"\n").unwrap();
        assert!(c.password.unwrap().read().is_err());
    }

    #[test]
    fn formats_resolve() {
        let c =
            parse("topics = [\"a\"]\ndata_format = \"value\"\ndata_type = \"integer\"\n").unwrap();
        assert!(
            matches!(c.format, Format::Value { data_type: DataType::Integer, ref field } if field == "value")
        );
        let c = parse(
            "topics = [\"a\"]\ndata_format = \"json\"\ntag_keys = [\"id\"]\njson_time_key = \"ts\"\njson_time_format = \"unix_ms\"\n",
        )
        .unwrap();
        let Format::Json(j) = c.format else { panic!() };
        assert!(j.tag_keys.matches("id") && !j.tag_keys.matches("idx"));
        assert_eq!(j.time_format, Some(TimeFormat::UnixMs));
        let c = parse("topics = [\"a\"]\ntopic_tag = \"\"\n").unwrap();
        assert_eq!(c.topic_tag, None);
    }

    #[test]
    fn topic_parsing_tables() {
        let c = parse(
            "topics = [\"telegraf/+/cpu/23\"]\n[[topic_parsing]]\ntopic = \"telegraf/one/cpu/23\"\nmeasurement = \"_/_/measurement/_\"\ntags = \"tag/_/_/_\"\nfields = \"_/_/_/test\"\n[topic_parsing.types]\ntest = \"int\"\n",
        )
        .unwrap();
        assert_eq!(c.topic_parsing.len(), 1);
        let e = parse(
            "topics = [\"a\"]\n[[topic_parsing]]\ntopic = \"a/b\"\nmeasurement = \"m/_/_\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "topic_parsing");
    }
}
