//! `encode_line` on arbitrary metrics decoded from bytes.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent_fuzz::check_encode(data);
    });
}
