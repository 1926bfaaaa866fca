//! Bytes a client sends to the health endpoint: `metrics_agent::fuzz_api::health_request`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent::fuzz_api::health_request(data);
    });
}
