//! telegraf's procstat (`plugins/inputs/procstat`): options and schema.

use super::{Kind::*, Series, Setup, Table};
use crate::procstat_dropin::{Sleeper, Sockets};

/// Every tag, in slices: `procstat_lookup`'s own two, then the selector's (old style; a filter
/// adds `filter`, supervisor units their status), then the process's (`tag_with`'s among them),
/// then the socket's.
const TAGS: &[&str] = &[
    "pid_finder",
    "result",
    "pidfile",
    "exe",
    "pattern",
    "user",
    "systemd_unit",
    "cgroup",
    "cgroup_full",
    "supervisor_unit",
    "win_service",
    "status",
    "uptimes",
    "error",
    "parent_pid",
    "filter",
    // 16: the process's
    "process_name",
    "child_level",
    "level",
    "pid",
    "ppid",
    "cmdline",
    // 22: the socket's
    "protocol",
    "state",
    "src",
    "src_port",
    "dest",
    "dest_port",
    "name",
];
const LOOKUP_TAGS: &[&str] = TAGS.split_at(16).0;
const PROCESS_TAGS: &[&str] = TAGS.split_at(22).0.split_at(2).1;
const SOCKET_TAGS: &[&str] = TAGS.split_at(2).1;

pub(crate) const TABLE: Table = Table {
    input: "procstat",
    base: "exe = \"metrics-agent\"",
    options: &[
        r#"pid_file = "/var/run/nginx.pid""#,
        r#"exe = "nginx""#,
        r#"pattern = "nginx""#,
        r#"user = "nginx""#,
        r#"systemd_unit = "nginx.service""#,
        r#"include_systemd_children = false"#,
        "systemd_unit = \"nginx.service\"\ninclude_systemd_children = true",
        r#"cgroup = "systemd/system.slice/nginx.service""#,
        r#"cgroup = "*""#,
        r#"supervisor_units = ["webserver", "proxy"]"#,
        r#"win_service = """#,
        r#"process_name = "bar""#,
        r#"prefix = """#,
        r#"prefix = "x""#,
        r#"mode = "irix""#,
        r#"mode = "solaris""#,
        r#"tag_with = []"#,
        r#"tag_with = ["cmdline", "pid", "ppid", "status", "user", "child_level", "parent_pid"]"#,
        "properties = [\"sockets\"]\n\
         tag_with = [\"protocol\", \"state\", \"src\", \"src_port\", \"dest\", \"dest_port\", \"name\"]",
        r#"properties = ["cpu", "limits", "memory", "mmap"]"#,
        r#"properties = ["cpu", "limits", "memory", "mmap", "sockets"]"#,
        r#"socket_protocols = ["all"]"#,
        "properties = [\"sockets\"]\nsocket_protocols = [\"all\"]",
        "properties = [\"sockets\"]\nsocket_protocols = [\"tcp4\", \"tcp6\", \"udp4\", \"udp6\", \"unix\"]",
        r#"pid_finder = "pgrep""#,
        // Deprecated in telegraf 1.29, still accepted by 1.39 (removed in 1.40).
        "pid_tag = true",
        "cmdline_tag = true",
        r#"supervisor_unit = ["webserver"]"#,
        r#"pid_finder = "native""#,
        // New style: the base's `exe` is cleared (telegraf refuses both styles together).
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nsystemd_units = []",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\ncgroups = []",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nsupervisor_units = []",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nwin_services = []",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\npid_files = []",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\npatterns = ['.*']",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nusers = ['*']",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nexecutables = ['*']",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nprocess_names = ['*']",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nrecursion_depth = 0",
        "exe = \"\"\ntag_with = [\"level\"]\n[[inputs.procstat.filter]]\nname = \"shell\"\n\
         process_names = ['metrics-agent']\nrecursion_depth = -1",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\n\
         systemd_units = [\"nginx*\"]",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\n\
         cgroups = [\"system.slice/*\"]",
        "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\n\
         supervisor_units = [\"webserver\", \"proxy\"]",
    ],
    refused: &[
        (r#"win_service = "nginx""#, "Windows"),
        // The sample's key in the filter is `win_service`; telegraf's is `win_services` and it
        // refuses the other as an unused field.
        (
            "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nwin_service = []",
            "win_service",
        ),
        (
            "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\nwin_services = [\"x\"]",
            "Windows",
        ),
        (r#"tag_with = ["protocol"]"#, "without sockets"),
        (r#"tag_with = ["parent"]"#, "tag_with"),
        (r#"properties = ["socket"]"#, "properties"),
        (
            "properties = [\"sockets\"]\nsocket_protocols = [\"all\", \"tcp4\"]",
            "besides 'all'",
        ),
        (
            "properties = [\"sockets\"]\nsocket_protocols = [\"tcp\"]",
            "socket_protocol",
        ),
        (r#"pid_finder = "ps""#, "pid_finder"),
        (
            "exe = \"\"\n[[inputs.procstat.filter]]\npatterns = ['.*']",
            "named",
        ),
        ("[[inputs.procstat.filter]]\nname = \"shell\"", "mixed mode"),
        (
            "exe = \"\"\n[[inputs.procstat.filter]]\nname = \"shell\"\ncgroups = [\"a\"]\n\
             pid_files = [\"/b\"]",
            "multiple services",
        ),
        ("exe = \"\"", "require filter option"),
    ],
    schema: &[
        Series {
            measurement: "procstat",
            tags: PROCESS_TAGS,
            fields: &[
                ("pid", Int),
                ("ppid", Int),
                ("cmdline", Str),
                ("status", Str),
                ("user", Str),
                ("num_threads", Int),
                ("num_fds", Int),
                ("voluntary_context_switches", Int),
                ("involuntary_context_switches", Int),
                ("minor_faults", Int),
                ("major_faults", Int),
                ("child_minor_faults", Int),
                ("child_major_faults", Int),
                ("read_count", Int),
                ("write_count", Int),
                ("read_bytes", Int),
                ("write_bytes", Int),
                ("disk_read_bytes", Int),
                ("disk_write_bytes", Int),
                ("created_at", Int),
                ("cpu_time_user", Float),
                ("cpu_time_system", Float),
                ("cpu_time_iowait", Float),
                ("cpu_usage", Float),
                ("memory_rss", Int),
                ("memory_vms", Int),
                ("memory_usage", Float),
                ("memory_size", Int),
                ("memory_pss", Int),
                ("memory_shared_clean", Int),
                ("memory_shared_dirty", Int),
                ("memory_private_clean", Int),
                ("memory_private_dirty", Int),
                ("memory_referenced", Int),
                ("memory_anonymous", Int),
                ("memory_swap", Int),
                ("rlimit_cpu_time_soft", Int),
                ("rlimit_cpu_time_hard", Int),
                ("rlimit_memory_data_soft", Int),
                ("rlimit_memory_data_hard", Int),
                ("rlimit_memory_stack_soft", Int),
                ("rlimit_memory_stack_hard", Int),
                ("rlimit_memory_rss_soft", Int),
                ("rlimit_memory_rss_hard", Int),
                ("rlimit_num_fds_soft", Int),
                ("rlimit_num_fds_hard", Int),
                ("rlimit_memory_locked_soft", Int),
                ("rlimit_memory_locked_hard", Int),
                ("rlimit_memory_vms_soft", Int),
                ("rlimit_memory_vms_hard", Int),
                ("rlimit_file_locks_soft", Int),
                ("rlimit_file_locks_hard", Int),
                ("rlimit_signals_pending_soft", Int),
                ("rlimit_signals_pending_hard", Int),
                ("rlimit_nice_priority_soft", Int),
                ("rlimit_nice_priority_hard", Int),
                ("rlimit_realtime_priority_soft", Int),
                ("rlimit_realtime_priority_hard", Int),
                ("cpu_time", Int),
                ("memory_data", Int),
                ("memory_stack", Int),
                ("memory_locked", Int),
                ("signals_pending", Int),
                ("nice_priority", Int),
                ("realtime_priority", Int),
            ],
            extra: &[],
            unseen: &[],
        },
        Series {
            measurement: "procstat_lookup",
            tags: LOOKUP_TAGS,
            fields: &[
                ("pid_count", Int),
                ("running", Int),
                ("result_code", Int),
                ("level", Int),
            ],
            extra: &[],
            unseen: &[],
        },
        Series {
            measurement: "procstat_socket",
            tags: SOCKET_TAGS,
            fields: &[
                ("protocol", Str),
                ("state", Str),
                ("pid", Int),
                ("src", Str),
                ("src_port", Int),
                ("dest", Str),
                ("dest_port", Int),
                ("bytes_received", Int),
                ("bytes_sent", Int),
                ("lost", Int),
                ("retransmits", Int),
                ("rx_queue", Int),
                ("tx_queue", Int),
                ("type", Str),
                ("name", Str),
                ("inode", Int),
                ("peer", Int),
            ],
            extra: &[],
            unseen: &[],
        },
    ],
    setup,
};

/// A `sleep` child (every property, two gathers for `cpu_usage`), the same child through a
/// filter with `level`, and a child holding TCP, UDP and unix sockets on loopback.
fn setup() -> Setup {
    let sleeper = Sleeper::start();
    let sockets = Sockets::start();
    let config = format!(
        "[agent]\n  interval = \"400ms\"\n  round_interval = false\n\
         [[inputs.procstat]]\n  pid_file = \"{sleep}\"\n\
         properties = [\"cpu\", \"limits\", \"memory\", \"mmap\"]\n\
         [[inputs.procstat]]\n  tag_with = [\"level\"]\n\
         [[inputs.procstat.filter]]\n  name = \"sleep\"\n  pid_files = [\"{sleep}\"]\n\
         [[inputs.procstat]]\n  pid_file = \"{socks}\"\n  properties = [\"sockets\"]\n",
        sleep = sleeper.pid_file().display(),
        socks = sockets.pid_file().display(),
    );
    let mut s = Setup::with(config, (sleeper, sockets));
    s.seconds = 2;
    s
}
