//! The agent process: CLI, config errors, the execd contract (stdin EOF, signals, EPIPE), reload,
//! isolation of failing inputs, and the line-protocol output checked by a real InfluxDB.

use std::time::Duration;

use crate::harness::*;

#[test]
fn once_prints_valid_lines_accepted_by_influxdb() {
    let (status, lines, stderr) = run_once("[[inputs.system]]\n[[inputs.internal]]\n");
    assert!(status.success(), "stderr: {stderr}");
    let parsed = parse_all(&lines);
    let sys: Vec<_> = parsed
        .iter()
        .filter(|l| l.measurement == "system")
        .collect();
    assert!(
        sys.iter()
            .any(|l| l.float("load1").is_some() && l.int("n_cpus").is_some())
    );
    assert!(sys.iter().any(|l| l.int("uptime").is_some()));
    assert!(sys.iter().any(|l| l.string("uptime_format").is_some()));
    assert!(parsed.iter().any(|l| l.measurement == "internal_agent"));
    influx().assert_accepts(&lines);
}
