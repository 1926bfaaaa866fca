//! `Config::parse` on arbitrary text.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent_fuzz::check_config(data);
    });
}
