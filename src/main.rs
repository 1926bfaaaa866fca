fn main() -> std::process::ExitCode {
    metrics_agent::output::tune_allocator();
    metrics_agent::app::main()
}

/// tokio's multi-thread scheduler calls `pow` (its poll-time average) and nothing else of ours
/// needs libm: defined here, the linker (`--as-needed`) leaves libm.so out of the process. Why:
/// loading it maps 0.5 MB of it at rest (its IFUNC resolvers and symbol tables run at start-up,
/// bench/rest.sh) for one function; `libm` is the pure-Rust port of musl's, to within 1 ULP.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
