//! A DNS reply from a hostile resolver: `metrics_agent::fuzz_api::dns_reply`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent::fuzz_api::dns_reply(data);
    });
}
