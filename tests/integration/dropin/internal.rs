//! telegraf's internal (`plugins/inputs/internal`): options, and its schema under our own
//! measurement names (`internal_agent` → `metrics_agent`, `internal_gather` →
//! `metrics_agent_gather`; why in the README). telegraf's `internal_memstats` and
//! `internal_gostats` are Go runtime figures; ours are `rss_bytes`, `threads`, `open_fds`.

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "internal",
    base: "",
    options: &[
        "collect_memstats = true",
        "collect_gostats = false",
        "collect_gostats = true",
        "per_instance = false",
        "per_instance = true",
    ],
    refused: &[],
    schema: &[
        Series {
            measurement: "metrics_agent",
            tags: &["version", "go_version"],
            fields: &[
                ("gather_errors", Int),
                ("gather_timeouts", Int),
                ("metrics_dropped", Int),
                ("metrics_gathered", Int),
                ("metrics_rejected", Int),
                ("metrics_written", Int),
                ("write_errors", Int),
            ],
            extra: &[
                ("metrics_sanitised", Int),
                ("fields_dropped", Int),
                ("tags_dropped", Int),
                ("panics", Int),
                ("restarts", Int),
                ("reloads", Int),
                ("reload_failures", Int),
                ("stuck_tasks", Int),
                ("queue_depth", Int),
                ("inputs", Int),
                ("tasks", Int),
                ("uptime_s", Float),
                ("rss_bytes", Int),
                ("threads", Int),
                ("open_fds", Int),
            ],
            unseen: &[(
                "write_errors",
                "a failed write to stdout ends the agent (telegraf restarts it): no count of \
                 survived write errors exists to report",
            )],
        },
        Series {
            measurement: "metrics_agent_gather",
            tags: &["input", "version", "go_version", "alias", "instance"],
            fields: &[
                ("errors", Int),
                ("gather_errors", Int),
                ("gather_time_ns", Int),
                ("gather_timeouts", Int),
                ("metrics_gathered", Int),
                ("startup_errors", Int),
            ],
            extra: &[
                ("gathers", Int),
                ("panics", Int),
                ("restarts", Int),
                ("ticks_skipped", Int),
            ],
            unseen: &[],
        },
    ],
    setup: || Setup {
        seconds: 2,
        ..Setup::plain("[agent]\ninterval = \"1s\"\n[[inputs.internal]]\n")
    },
};
