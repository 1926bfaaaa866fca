//! `mqtt_consumer`: a service input that subscribes to MQTT topics and writes each message's
//! metrics, as telegraf's `mqtt_consumer` input (same options, measurement names, `topic` tag).
//! Payloads are InfluxDB line protocol (`influx`), JSON (`json`) or one value (`value`);
//! metrics of the `json` and `value` formats are named `mqtt_consumer`, as in telegraf.
//!
//! Delivery is at least once into the output queue: with QoS 1 or 2 a message is acknowledged
//! only after its lines are queued (manual acknowledgements), and the queue is never made room
//! in by evicting: when it is full the input stops reading and the broker keeps the backlog.
//! A message that cannot be parsed, or whose parser panics, is counted, logged once per cause,
//! republished unchanged to `dead_letter_topic` when set, and acknowledged, so it never holds
//! a delivery slot. The connection handling (backoff, resubscription, ping timeout) is in
//! `client.rs`.
//!
//! Self-metrics (fields of this instance's `internal` line): `messages_received`,
//! `duplicates` (redeliveries flagged DUP by the broker), `parse_errors`, `dead_lettered`,
//! `acknowledged`, `in_flight`, `reconnects`, `resubscribes`, `seconds_since_last_message`.
//!
//! MQTT 3.1.1 only (rumqttc's v4 client): dead letters carry no user property with the error.

mod client;
pub(crate) mod config;
pub(crate) mod influx;
pub(crate) mod json;
pub(crate) mod topic;
pub(crate) mod value;

pub(crate) use config::{Config, Raw, resolve};

use super::service::{Service, ServiceCtx, ServiceFuture};
use super::{Built, GatherError, Input, ModuleContext, Resolve, Shape};
use crate::options::SpanError;
use crate::output::Metric;

/// Measurement of `json` and `value` metrics (telegraf names them after the input).
pub(crate) const DEFAULT_NAME: &str = "mqtt_consumer";

/// Turns one message into metrics: the payload's format, then the topic tag, then the
/// `topic_parsing` rules. Pure; run under the instance's panic isolation.
pub(crate) fn parse_message(
    cfg: &Config,
    topic: &str,
    payload: &[u8],
    now_ns: i64,
) -> Result<Vec<Metric>, String> {
    // Test builds: a payload that makes the parser panic, for the poison-message tests.
    #[cfg(feature = "chaos")]
    if payload == b"chaos:panic" {
        panic!("chaos: parser panic requested by the payload");
    }
    let mut metrics = match &cfg.format {
        config::Format::Influx => influx::parse(payload, now_ns).map_err(|e| e.to_string())?,
        config::Format::Json(opts) => json::parse(payload, opts, DEFAULT_NAME, now_ns)?,
        config::Format::Value { data_type, field } => {
            vec![value::parse(
                payload,
                *data_type,
                field,
                DEFAULT_NAME,
                now_ns,
            )?]
        }
    };
    for m in &mut metrics {
        if let Some(tag) = &cfg.topic_tag {
            topic::set_tag(m, tag, topic);
        }
        for rule in &cfg.topic_parsing {
            rule.apply(m, topic)?;
        }
    }
    Ok(metrics)
}

/// One running instance.
pub(crate) struct MqttConsumer {
    config: Config,
}

impl MqttConsumer {
    pub(crate) fn new(config: Config) -> Self {
        MqttConsumer { config }
    }
}

impl Service for MqttConsumer {
    fn run<'a>(&'a mut self, ctx: &'a ServiceCtx) -> ServiceFuture<'a> {
        Box::pin(client::run(&self.config, ctx))
    }
}

impl Resolve for Config {
    type Raw = Raw;
    fn resolve(raw: Raw) -> Result<Self, SpanError> {
        resolve(raw)
    }
}

impl Input for Config {
    fn shape(&self) -> Shape {
        Shape::Service
    }
    fn build(&self, _ctx: &ModuleContext) -> Result<Built, GatherError> {
        Ok(Built::Service(Box::new(MqttConsumer::new(self.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::FieldValue;

    fn cfg(text: &str) -> Config {
        resolve(toml::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn influx_message_gets_the_topic_tag() {
        let c = cfg("topics = [\"sensors/#\"]\n");
        let m = parse_message(
            &c,
            "sensors/kitchen",
            b"temp,room=k value=21.5 1700000000000000000\n",
            1,
        )
        .unwrap();
        assert_eq!(
            m[0].tags,
            [
                ("room".into(), "k".into()),
                ("topic".into(), "sensors/kitchen".into())
            ]
        );
    }

    #[test]
    fn value_message_with_topic_parsing() {
        let c = cfg(
            "topics = [\"/home/+/+\"]\ndata_format = \"value\"\ndata_type = \"float\"\ntopic_tag = \"\"\n[[topic_parsing]]\ntopic = \"/home/+/+\"\nmeasurement = \"_/_/_/measurement\"\ntags = \"_/_/room/_\"\n",
        );
        let m = parse_message(&c, "/home/attic/humidity", b"55.5", 3).unwrap();
        assert_eq!(m[0].name, "humidity");
        assert_eq!(m[0].tags, [("room".into(), "attic".into())]);
        assert_eq!(m[0].fields, [("value".into(), FieldValue::Float(55.5))]);
    }

    #[test]
    fn unparsable_messages_are_errors() {
        let c = cfg("topics = [\"a\"]\ndata_format = \"json\"\n");
        assert!(parse_message(&c, "a", b"not json", 0).is_err());
        let c = cfg("topics = [\"a\"]\n");
        assert!(parse_message(&c, "a", b"cpu", 0).is_err());
    }
}
