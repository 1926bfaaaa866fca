//! An ICMP packet as an echo socket receives it: `metrics_agent::fuzz_api::icmp_packet`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent::fuzz_api::icmp_packet(data);
    });
}
