//! x509_cert sources, PEM files and DER certificates: `metrics_agent::fuzz_api::x509`.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        metrics_agent::fuzz_api::x509(data);
    });
}
