//! telegraf's cpu (`plugins/inputs/cpu`): options and schema.

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "cpu",
    base: "",
    options: &[
        "percpu = true",
        "totalcpu = true",
        "collect_cpu_time = false",
        "report_active = false",
        "core_tags = false",
        "percpu = false\ntotalcpu = true\ncollect_cpu_time = true\nreport_active = true\ncore_tags = true",
    ],
    refused: &[],
    schema: &[Series {
        measurement: "cpu",
        tags: &["cpu", "core_id", "physical_id"],
        fields: &[
            ("time_user", Float),
            ("time_system", Float),
            ("time_idle", Float),
            ("time_active", Float),
            ("time_nice", Float),
            ("time_iowait", Float),
            ("time_irq", Float),
            ("time_softirq", Float),
            ("time_steal", Float),
            ("time_guest", Float),
            ("time_guest_nice", Float),
            ("usage_user", Float),
            ("usage_system", Float),
            ("usage_idle", Float),
            ("usage_active", Float),
            ("usage_nice", Float),
            ("usage_iowait", Float),
            ("usage_irq", Float),
            ("usage_softirq", Float),
            ("usage_steal", Float),
            ("usage_guest", Float),
            ("usage_guest_nice", Float),
        ],
        extra: &[],
        unseen: &[],
    }],
    setup: || Setup {
        seconds: 3,
        ..Setup::plain(
            "[agent]\ninterval = \"1s\"\n[[inputs.cpu]]\npercpu = true\ntotalcpu = true\n\
             collect_cpu_time = true\nreport_active = true\ncore_tags = true\n",
        )
    },
};
