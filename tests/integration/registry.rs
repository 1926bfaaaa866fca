//! The registry of inputs (`modules::INPUTS`) is the one list everything is derived from; this
//! checks that the rest of the project agrees with it: every input has a commented sample block
//! in `config/metrics-agent.toml` that passes `--check-config`, a row in the README's input
//! table, and with its sample block `--once` exits 0 writing lines (a probe whose example target
//! cannot be reached writes its failed result).

use metrics_agent::modules::INPUTS;

use crate::harness::*;

/// Inputs that exist only in test builds and are not documented for users.
const TEST_ONLY: &[&str] = &["chaos"];

/// Inputs whose sample may rightly write nothing in one gather, as in telegraf, and why.
const MAY_WRITE_NOTHING: &[(&str, &str)] = &[
    (
        "cpu",
        "usage_* need two samples: the first gather only records one",
    ),
    (
        "cgroup",
        "the sample's systemd service cgroups may not exist (containers)",
    ),
    (
        "mqtt_consumer",
        "a service writes what arrives while it runs; the sample's broker may not be running",
    ),
    (
        "x509_cert",
        "a source that cannot be read is a logged error, not a line (telegraf's rule)",
    ),
];

/// The sample block of `name` in the default config, uncommented: from its `[[inputs.NAME]]`
/// line (commented or not) to the next blank or `##` line.
fn sample_block(config: &str, name: &str) -> Option<String> {
    let header = format!("[[inputs.{name}]]");
    let mut lines = config
        .lines()
        .skip_while(|l| l.trim_start_matches("# ") != header);
    let first = lines.next()?;
    let mut block = vec![first.trim_start_matches("# ").to_owned()];
    for l in lines {
        if l.trim().is_empty()
            || l.starts_with("##")
            || l.trim_start_matches("# ").starts_with("[[")
        {
            break;
        }
        block.push(l.strip_prefix("# ").unwrap_or(l).to_owned());
    }
    Some(block.join("\n") + "\n")
}

#[test]
fn every_input_has_a_sample_block_a_readme_row_and_a_clean_once() {
    let root = env!("CARGO_MANIFEST_DIR");
    let config = std::fs::read_to_string(format!("{root}/config/metrics-agent.toml")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let names: Vec<&str> = INPUTS
        .iter()
        .map(|e| e.name)
        .filter(|n| !TEST_ONLY.contains(n))
        .collect();
    assert!(names.len() >= 18, "{names:?}");
    let checks: Vec<_> = names
        .iter()
        .map(|&name| {
            let block = sample_block(&config, name)
                .unwrap_or_else(|| panic!("{name}: no [[inputs.{name}]] sample block"));
            assert!(
                readme.contains(&format!("| `{name}`")) || readme.contains(&format!(", `{name}`")),
                "{name}: no row in the README's input table"
            );
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("sample.toml");
                std::fs::write(&path, &block).unwrap();
                let path = path.to_str().unwrap();
                let (st, _, err) = run_args(&["--config", path, "--check-config"]);
                assert!(
                    st.success(),
                    "{name}: sample block refused:\n{block}\n{err}"
                );
                let (st, out, err) = run_args(&["--config", path, "--once"]);
                assert!(st.success(), "{name}: --once failed:\n{block}\n{err}");
                assert!(!err.contains("panicked"), "{name}: {err}");
                let lines: Vec<String> = out.lines().map(str::to_owned).collect();
                let may_be_empty = MAY_WRITE_NOTHING.iter().any(|(n, _)| *n == name);
                assert!(
                    may_be_empty || !lines.is_empty(),
                    "{name}: --once wrote nothing:\n{block}\n{err}"
                );
                if !lines.is_empty() {
                    influx().assert_accepts(&lines);
                }
            })
        })
        .collect();
    for c in checks {
        c.join().unwrap();
    }
}
