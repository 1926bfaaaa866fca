fn main() -> std::process::ExitCode {
    metrics_agent::app::main()
}
