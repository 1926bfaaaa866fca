use std::time::Duration;

use super::*;

fn err(text: &str) -> String {
    match Config::parse(text, "agent.toml") {
        Ok(_) => panic!("config should be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded_default().expect("embedded default parses");
    assert!(!c.inputs.is_empty());
    assert_eq!(c.agent.interval, Duration::from_secs(10));
    assert_eq!(c.agent.trigger, Trigger::Interval);
}

#[test]
fn common_options_and_tags_resolve() {
    let c = Config::parse(
        r#"
[agent]
interval = "5s"
hostname = "h1"
precision = "1ms"
[agent.tags]
dc = "eu"
[global_tags]
rack = "r1"
dc = "ignored"
[[inputs.system]]
interval = "1m"
alias = "sys"
name_override = "sysx"
tags = { dc = "inst" }
[[inputs.system]]
"#,
        "a.toml",
    )
    .expect("valid");
    assert_eq!(c.inputs.len(), 2);
    let a = &c.inputs[0];
    assert_eq!(
        (a.id.as_str(), a.display.as_str()),
        ("inputs.system[0]", "system::sys")
    );
    assert_eq!(a.interval, Duration::from_secs(60));
    assert_eq!(a.decoration.name_override.as_deref(), Some("sysx"));
    assert_eq!(a.decoration.precision_ns, 1_000_000);
    let tags: Vec<(&str, &str)> = a
        .decoration
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(tags, [("dc", "inst"), ("host", "h1"), ("rack", "r1")]);
    assert_eq!(c.inputs[1].interval, Duration::from_secs(5));
}

#[test]
fn unknown_key_is_located() {
    let e = err("[[inputs.system]]\n\n[[inputs.internal]]\n  collect_memstatz = true\n");
    assert!(e.starts_with("agent.toml:4:3: "), "{e}");
    assert!(e.contains("collect_memstatz"), "{e}");
}

#[test]
fn unknown_input_lists_known_ones() {
    let e = err("[[inputs.nope]]\n");
    assert!(
        e.starts_with("agent.toml:1:10: inputs.nope: unknown input"),
        "{e}"
    );
    assert!(e.contains("system"), "{e}");
}

#[test]
fn semantic_errors_name_the_key() {
    let e = err("[[inputs.system]]\ninterval = \"0s\"\n");
    assert_eq!(e, "agent.toml:2:12: inputs.system[0].interval: must be > 0");
    let e = err("[agent]\nmetric_buffer_limit = 5\n[[inputs.system]]\n");
    assert_eq!(
        e,
        "agent.toml:2:23: agent.metric_buffer_limit: must be >= 100"
    );
    let e = err("[[inputs.system]]\nname_override = \"#x\"\n");
    assert!(
        e.starts_with("agent.toml:2:17: inputs.system[0].name_override: "),
        "{e}"
    );
}

#[test]
fn bad_duration_and_enum_are_located() {
    let e = err("[agent]\ninterval = \"10 parsecs\"\n[[inputs.system]]\n");
    assert!(e.starts_with("agent.toml:2:12: "), "{e}");
    assert!(e.contains("parsecs"), "{e}");
    let e = err("[agent]\ntrigger = \"sometimes\"\n[[inputs.system]]\n");
    assert!(e.starts_with("agent.toml:2:11: "), "{e}");
}

#[test]
fn syntax_error_is_located() {
    let e = err("[agent\ninterval = 1\n");
    assert!(e.starts_with("agent.toml:1:"), "{e}");
}

#[test]
fn unknown_section_and_no_inputs() {
    let e = err("[outputs.file]\n[[inputs.system]]\n");
    assert!(
        e.starts_with("agent.toml:1:2: outputs: unknown section"),
        "{e}"
    );
    let e = err("[agent]\ninterval = \"1s\"\n");
    assert!(e.contains("no [[inputs.NAME]]"), "{e}");
}

#[test]
fn integer_durations_are_seconds() {
    let c = Config::parse("[agent]\ninterval = 3\n[[inputs.system]]\n", "a.toml").unwrap();
    assert_eq!(c.agent.interval, Duration::from_secs(3));
}
