fn main() -> std::process::ExitCode {
    metrics_agent::output::tune_allocator();
    metrics_agent::app::main()
}
