//! telegraf's disk (`plugins/inputs/disk`): options and schema.

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "disk",
    base: "",
    options: &[
        r#"mount_points = ["/"]"#,
        r#"ignore_fs = ["tmpfs", "devtmpfs", "devfs", "iso9660", "overlay", "aufs", "squashfs"]"#,
        r#"ignore_mount_opts = []"#,
        // The README's example: bind mounts left out.
        r#"ignore_mount_opts = ["bind"]"#,
    ],
    refused: &[],
    schema: &[Series {
        measurement: "disk",
        tags: &["path", "device", "fstype", "mode", "label"],
        fields: &[
            ("total", Int),
            ("free", Int),
            ("used", Int),
            ("used_percent", Float),
            ("inodes_total", Int),
            ("inodes_free", Int),
            ("inodes_used", Int),
            ("inodes_used_percent", Float),
        ],
        extra: &[],
        unseen: &[],
    }],
    setup: || Setup::plain("[[inputs.disk]]\nmount_points = [\"/\"]\n"),
};
