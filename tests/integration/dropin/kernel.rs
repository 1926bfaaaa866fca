//! telegraf's kernel (`plugins/inputs/kernel`): options and schema.

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "kernel",
    base: "",
    options: &[
        r#"collect = []"#,
        r#"collect = ["ksm"]"#,
        r#"collect = ["psi"]"#,
        r#"collect = ["ksm", "psi"]"#,
    ],
    refused: &[],
    schema: &[
        Series {
            measurement: "kernel",
            tags: &[],
            fields: &[
                ("boot_time", Int),
                ("context_switches", Int),
                ("disk_pages_in", Int),
                ("disk_pages_out", Int),
                ("interrupts", Int),
                ("processes_forked", Int),
                ("entropy_avail", Int),
                ("ksm_full_scans", Int),
                ("ksm_max_page_sharing", Int),
                ("ksm_merge_across_nodes", Int),
                ("ksm_pages_shared", Int),
                ("ksm_pages_sharing", Int),
                ("ksm_pages_to_scan", Int),
                ("ksm_pages_unshared", Int),
                ("ksm_pages_volatile", Int),
                ("ksm_run", Int),
                ("ksm_sleep_millisecs", Int),
                ("ksm_stable_node_chains", Int),
                ("ksm_stable_node_chains_prune_millisecs", Int),
                ("ksm_stable_node_dups", Int),
                ("ksm_use_zero_pages", Int),
                ("ksm_general_profit", Int),
            ],
            extra: &[],
            unseen: &[(
                "ksm_general_profit",
                "only kernels since 6.7 have /sys/kernel/mm/ksm/general_profit",
            )],
        },
        Series {
            measurement: "pressure",
            tags: &["resource", "type"],
            fields: &[
                ("avg10", Float),
                ("avg60", Float),
                ("avg300", Float),
                ("total", Int),
            ],
            extra: &[],
            unseen: &[],
        },
    ],
    setup: || {
        // Only what this kernel has: telegraf refuses `ksm` without KSM.
        let collect: Vec<&str> = ["ksm", "psi"]
            .into_iter()
            .filter(|w| super::lacking(w).is_none())
            .map(|w| if w == "ksm" { "\"ksm\"" } else { "\"psi\"" })
            .collect();
        Setup::plain(format!(
            "[[inputs.kernel]]\ncollect = [{}]\n",
            collect.join(", ")
        ))
    },
};
