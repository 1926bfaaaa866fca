//! MQTT messages (topic and payload) through mqtt_consumer's parsers:
//! `metrics_agent::fuzz_api::mqtt_message`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent::fuzz_api::mqtt_message(data);
    });
}
