//! A sock_diag netlink reply datagram: `metrics_agent::fuzz_api::sock_diag`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent::fuzz_api::sock_diag(data);
    });
}
