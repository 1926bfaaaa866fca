//! telegraf's cgroup (`plugins/inputs/cgroup`): options and schema. Fields are named after
//! the files read (`memory.limit_in_bytes`, `memory.stat.cache` ...).

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "cgroup",
    base: "",
    options: &[
        r#"paths = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/child1", "/sys/fs/cgroup/memory/child2/*"]"#,
        r#"files = ["memory.*usage*", "memory.limit_in_bytes"]"#,
    ],
    refused: &[],
    schema: &[Series {
        measurement: "cgroup",
        tags: &["path"],
        fields: &[("memory.*", Int), ("cpu.*", Int)],
        extra: &[],
        unseen: &[],
    }],
    setup,
};

/// The root cgroup's memory and cpu files, on a v1 hierarchy (controllers mounted apart) or
/// a v2 one (one tree).
fn setup() -> Setup {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory/memory.usage_in_bytes").exists();
    Setup::plain(if v1 {
        "[[inputs.cgroup]]\npaths = [\"/sys/fs/cgroup/memory\", \"/sys/fs/cgroup/cpu\"]\n\
         files = [\"memory.*usage*\", \"memory.limit_in_bytes\", \"cpu.stat\"]\n"
    } else {
        "[[inputs.cgroup]]\npaths = [\"/sys/fs/cgroup/system.slice\"]\n\
         files = [\"memory.current\", \"memory.stat\", \"cpu.stat\"]\n"
    })
}
