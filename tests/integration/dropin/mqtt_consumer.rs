//! telegraf's mqtt_consumer (`plugins/inputs/mqtt_consumer`): options and schema. Its series
//! are the payloads' own plus the `topic` tag; the schema run reads a retained influx-format
//! message from a real mosquitto.

use super::{Kind::*, Series, Setup, Table};
use crate::mqtt::Broker;

pub(crate) const TABLE: Table = Table {
    input: "mqtt_consumer",
    // A service runs one `interval` under --once: 1 s, not the default 10 s, per option line.
    base: "servers = [\"tcp://127.0.0.1:1\"]\ntopics = [\"sensors/#\"]\ninterval = \"1s\"",
    options: &[
        r#"servers = ["tcp://127.0.0.1:1883"]"#,
        r#"topics = ["telegraf/host01/cpu", "telegraf/+/mem", "sensors/#"]"#,
        r#"topic_tag = "topic""#,
        "qos = 0",
        r#"connection_timeout = "30s""#,
        r#"max_reconnect_interval = "30s""#,
        r#"keepalive = "60s""#,
        r#"ping_timeout = "10s""#,
        "max_undelivered_messages = 1000",
        "persistent_session = false",
        r#"client_id = """#,
        "username = \"telegraf\"\npassword = \"metricsmetricsmetricsmetrics\"",
        r#"tls_ca = "/etc/telegraf/ca.pem""#,
        "tls_cert = \"/etc/telegraf/cert.pem\"\ntls_key = \"/etc/telegraf/key.pem\"",
        "insecure_skip_verify = false",
        "client_trace = false",
        r#"data_format = "influx""#,
        "[[inputs.mqtt_consumer.topic_parsing]]\n  topic = \"sensors/+/+\"\n  measurement = \"_/measurement/_\"\n  tags = \"_/_/room\"\n  fields = \"\"\n  [inputs.mqtt_consumer.topic_parsing.types]\n    value = \"float\"",
    ],
    refused: &[(r#"qos = 3"#, "qos")],
    schema: &[Series {
        measurement: "sensor",
        tags: &["topic", "room"],
        fields: &[("temperature", Float), ("humidity", Int)],
        extra: &[],
        unseen: &[],
    }],
    setup,
};

fn setup() -> Setup {
    let broker = Broker::start("");
    let status = std::process::Command::new("mosquitto_pub")
        .args([
            "-p",
            &broker.port.to_string(),
            "-r",
            "-q",
            "1",
            "-t",
            "sensors/kitchen",
        ])
        .args(["-m", "sensor,room=kitchen temperature=21.5,humidity=40i"])
        .status()
        .expect("mosquitto_pub");
    assert!(status.success());
    let config = format!(
        "[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{}\"]\ntopics = [\"sensors/#\"]\n\
         qos = 1\ndata_format = \"influx\"\n",
        broker.port
    );
    Setup {
        seconds: 3,
        ..Setup::with(config, broker)
    }
}
