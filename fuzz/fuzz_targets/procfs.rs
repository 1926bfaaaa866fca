//! A /proc or /sys file, the first byte picking its parser: `metrics_agent::fuzz_api::procfs`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent::fuzz_api::procfs(data);
    });
}
