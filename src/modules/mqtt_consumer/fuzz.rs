//! Entry points for the fuzz targets: every parser of this input on arbitrary bytes must return
//! (metrics or an error), never panic or hang.

use super::json::JsonOptions;
use super::value::DataType;

/// Line protocol payloads.
pub fn influx(data: &[u8]) {
    let _ = super::influx::parse(data, 0);
}

/// JSON payloads with every option that walks the document in use.
pub fn json(data: &[u8]) {
    let opts = JsonOptions {
        tag_keys: vec!["id*".into()],
        string_fields: vec!["s*".into()],
        name_key: Some("name".into()),
        ..Default::default()
    };
    let _ = super::json::parse(data, &opts, "mqtt_consumer", 0);
}

/// `value` payloads of every data type.
pub fn value(data: &[u8]) {
    for t in [
        DataType::Integer,
        DataType::Float,
        DataType::String,
        DataType::Boolean,
        DataType::AutoInteger,
        DataType::AutoFloat,
    ] {
        let _ = super::value::parse(data, t, "value", "mqtt_consumer", 0);
    }
}

/// A topic (the input's first line) through a `topic_parsing` rule with `+` and `#`, and the
/// filter matcher.
pub fn topic(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (rule, topic) = text.split_once('\n').unwrap_or(("+/#/x", text));
    let raw = super::config::RawTopicParsing {
        topic: toml::Spanned::new(0..0, rule.to_owned()),
        measurement: None,
        tags: Some(rule.to_owned()),
        fields: Some(rule.to_owned()),
        types: None,
    };
    let _ = super::topic::filter_matches(rule, topic);
    if let Ok(p) = super::topic::TopicParser::new(&raw) {
        let mut m = crate::output::Metric::new("m", 0).field("v", 1.0);
        let _ = p.apply(&mut m, topic);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_points_take_garbage() {
        for input in [
            &b""[..],
            b"\xff\xfe",
            b"{\"a\":[{\"b\":",
            b"a b=\"",
            b"#\n/#/+",
            b"+/+\n/",
        ] {
            super::influx(input);
            super::json(input);
            super::value(input);
            super::topic(input);
        }
    }
}
