//! telegraf's per-input options and metric filters, judged by their effect on what `--once`
//! writes: a block pasted from telegraf.conf with any of them is accepted, and the series are
//! the ones telegraf would write.

use crate::harness::*;

fn once(config: &str) -> Vec<Line> {
    let (st, lines, err) = run_once(config);
    assert!(st.success(), "{config}\n{err}");
    parse_all(&lines)
}

fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config).unwrap();
    let (st, _, err) = run_args(&["--config", path.to_str().unwrap(), "--check-config"]);
    (st.success(), err)
}

fn field_names(l: &Line) -> Vec<&str> {
    l.fields.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn every_common_telegraf_option_is_accepted() {
    let config = r#"
[[inputs.mem]]
  interval = "10s"
  precision = "1s"
  collection_jitter = "0s"
  collection_offset = "0s"
  time_source = "metric"
  log_level = "warn"
  startup_error_behavior = "retry"
  always_include_local_tags = false
  always_include_global_tags = false
  name_override = "mem"
  name_prefix = ""
  name_suffix = ""
  alias = "m"
  namepass = ["mem"]
  namedrop = ["nothing"]
  namepass_separator = "."
  namedrop_separator = "."
  fieldpass = ["*"]
  fielddrop = ["none"]
  fieldinclude = ["*"]
  fieldexclude = ["none"]
  taginclude = ["*"]
  tagexclude = ["none"]
  [inputs.mem.tags]
    dc = "x"
  [inputs.mem.tagpass]
    dc = ["*"]
  [inputs.mem.tagdrop]
    dc = ["y"]
"#;
    let (ok, err) = check(config);
    assert!(ok, "{err}");
    // mem's lines have no tags of their own, so any tagpass drops them (selection comes before
    // the configured tags): run it without.
    let lines = once(&config.replace("[inputs.mem.tagpass]\n    dc = [\"*\"]\n", ""));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].tag("dc"), Some("x"));
    assert_eq!(lines[0].timestamp % 1_000_000_000, 0, "precision = 1s");
}

#[test]
fn refused_options_say_why() {
    let (ok, err) = check("[[inputs.mem]]\n  metricpass = \"fields.used > 0\"\n");
    assert!(!ok);
    assert!(
        err.contains("metricpass") && err.contains("namepass") && err.contains(":2:"),
        "{err}"
    );
    let (ok, err) = check("[[inputs.mem]]\n  time_source = \"gather\"\n");
    assert!(!ok && err.contains("collection_end"), "{err}");
    let (ok, err) = check("[[inputs.mem]]\n  namepass = [\"[mem\"]\n");
    assert!(
        !ok && err.contains("namepass") && err.contains("unclosed"),
        "{err}"
    );
    // The host inputs' own globs are telegraf's too, checked at load.
    let (ok, err) = check("[[inputs.diskio]]\n  devices = [\"sd{a,b\"]\n");
    assert!(
        !ok && err.contains(":2:") && err.contains("devices"),
        "{err}"
    );
    let (ok, err) = check("[[inputs.mem]]\n  startup_error_behavior = \"later\"\n");
    assert!(!ok && err.contains("ignore"), "{err}");
}

#[test]
fn field_filters_keep_and_remove_fields() {
    let lines = once("[[inputs.mem]]\n  fieldinclude = [\"used*\", \"total\"]\n");
    let mut f = field_names(&lines[0]);
    f.sort();
    assert_eq!(f, ["total", "used", "used_percent"]);

    let lines =
        once("[[inputs.mem]]\n  fieldexclude = [\"*_percent\"]\n  fielddrop = [\"free\"]\n");
    let f = field_names(&lines[0]);
    assert!(f.len() > 5, "{f:?}");
    assert!(
        f.iter().all(|k| !k.ends_with("_percent") && *k != "free"),
        "{f:?}"
    );

    // Nothing left: the metric is dropped, not written without fields.
    let lines = once("[[inputs.mem]]\n[[inputs.swap]]\n  fieldinclude = [\"no_such_field\"]\n");
    assert!(lines.iter().all(|l| l.measurement == "mem"), "{lines:?}");
}

#[test]
fn selectors_look_at_the_metric_before_renaming_and_tagging() {
    let cpu = "[[inputs.cpu]]\n  percpu = true\n  totalcpu = true\n  collect_cpu_time = true\n";
    let all = once(cpu);
    assert!(all.len() >= 2, "{all:?}");

    let lines = once(&format!(
        "{cpu}  [inputs.cpu.tagpass]\n    cpu = [\"cpu-total\"]\n"
    ));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].tag("cpu"), Some("cpu-total"));

    let lines = once(&format!(
        "{cpu}  [inputs.cpu.tagdrop]\n    cpu = [\"cpu-total\"]\n"
    ));
    assert_eq!(lines.len(), all.len() - 1);
    assert!(lines.iter().all(|l| l.tag("cpu") != Some("cpu-total")));

    // namepass sees the input's own name, before name_override (telegraf's order).
    let lines = once("[[inputs.mem]]\n  name_override = \"memory\"\n  namepass = [\"mem\"]\n");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].measurement, "memory");
    let lines = once("[[inputs.mem]]\n[[inputs.swap]]\n  namedrop = [\"sw*\"]\n");
    assert!(lines.iter().all(|l| l.measurement == "mem"), "{lines:?}");
    // tagpass does not see the configured tags either: they are added after selection.
    let lines = once(
        "[[inputs.mem]]\n  [inputs.mem.tags]\n    dc = \"x\"\n  [inputs.mem.tagpass]\n    dc = [\"x\"]\n",
    );
    assert!(lines.is_empty(), "{lines:?}");
}

#[test]
fn tag_filters_apply_to_configured_tags_unless_always_included() {
    let base =
        "[global_tags]\n  site = \"s1\"\n[[inputs.mem]]\n  [inputs.mem.tags]\n    dc = \"x\"\n";
    let lines = once(base);
    assert_eq!(
        (lines[0].tag("dc"), lines[0].tag("site")),
        (Some("x"), Some("s1"))
    );

    let lines = once(&base.replace(
        "[inputs.mem.tags]",
        "tagexclude = [\"dc\", \"site\"]\n  [inputs.mem.tags]",
    ));
    assert_eq!((lines[0].tag("dc"), lines[0].tag("site")), (None, None));

    let lines = once(&base.replace(
        "[inputs.mem.tags]",
        "taginclude = [\"nothing\"]\n  always_include_local_tags = true\n  [inputs.mem.tags]",
    ));
    assert_eq!(
        (lines[0].tag("dc"), lines[0].tag("site")),
        (Some("x"), None)
    );
}

/// `time_source = "collection_end"` stamps a gather's lines with the time it ended: a ping
/// gather of two requests 0.5 s apart cannot end earlier than 0.5 s after it started, which is
/// when the `collection_start` twin's lines are stamped.
#[test]
fn time_source_collection_end_stamps_the_end_of_the_gather() {
    let block = |alias: &str, source: &str| {
        format!(
            "[[inputs.ping]]\n  urls = [\"127.0.0.1\"]\n  count = 2\n  \
             ping_interval = \"500ms\"\n  time_source = \"{source}\"\n\
             [inputs.ping.tags]\n  which = \"{alias}\"\n"
        )
    };
    let config = block("start", "collection_start") + &block("end", "collection_end");
    let (st, lines, err) = run_once(&config);
    assert!(st.success(), "{err}");
    let ts = |alias: &str| {
        let l = parse_all(&lines)
            .into_iter()
            .find(|l| l.measurement == "ping" && l.tag("which") == Some(alias));
        l.unwrap_or_else(|| panic!("no ping line of {alias}: {lines:?}"))
            .timestamp
    };
    let gap = ts("end") - ts("start");
    assert!(gap >= 500_000_000, "end - start = {gap} ns");
}
