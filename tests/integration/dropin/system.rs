//! telegraf's system (`plugins/inputs/system`): options and schema (the legacy lines and the
//! one line of the other `include` values share the measurement).

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "system",
    base: "",
    options: &[
        r#"include = ["legacy"]"#,
        r#"os_cache_ttl = "8h""#,
        r#"dmi_cache_ttl = "8h""#,
        // The README's recommended and complete forms.
        r#"include = ["cpus", "load", "users", "uptime"]"#,
        r#"include = ["legacy", "cpus", "dmi", "load", "os", "uptime", "users"]"#,
        r#"include = ["os"]
os_cache_ttl = "0s""#,
    ],
    refused: &[(r#"include = ["memory"]"#, "invalid 'include' option")],
    schema: &[Series {
        measurement: "system",
        tags: &[],
        fields: &[
            ("load1", Float),
            ("load5", Float),
            ("load15", Float),
            ("n_cpus", Int),
            ("n_physical_cpus", Int),
            ("n_users", Int),
            ("n_unique_users", Int),
            ("uptime", Int),
            ("uptime_format", Str),
            ("os", Str),
            ("arch", Str),
            ("platform", Str),
            ("platform_family", Str),
            ("platform_version", Str),
            ("kernel_version", Str),
            ("bios_vendor", Str),
            ("bios_version", Str),
            ("bios_date", Str),
            ("board_vendor", Str),
            ("board_product", Str),
            ("board_version", Str),
            ("board_serial", Str),
            ("board_asset_tag", Str),
            ("chassis_vendor", Str),
            ("chassis_type_code", Str),
            ("chassis_type", Str),
            ("chassis_version", Str),
            ("chassis_serial", Str),
            ("chassis_asset_tag", Str),
            ("product_vendor", Str),
            ("product_name", Str),
            ("product_family", Str),
            ("product_version", Str),
            ("product_serial", Str),
            ("product_sku", Str),
            ("product_uuid", Str),
        ],
        extra: &[],
        unseen: &[
            (
                "n_users",
                "written only where utmp exists (/var/run/utmp); the test container has none",
            ),
            ("n_unique_users", "as n_users"),
        ],
    }],
    setup: || {
        Setup::plain(
            "[[inputs.system]]\n\
             [[inputs.system]]\n\
             include = [\"cpus\", \"dmi\", \"load\", \"os\", \"uptime\", \"users\"]\n",
        )
    },
};
