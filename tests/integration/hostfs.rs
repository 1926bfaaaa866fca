//! `HOST_PROC`, `HOST_SYS`, `HOST_ETC`, `HOST_RUN`, `HOST_VAR`, `HOST_DEV` and
//! `HOST_MOUNT_PREFIX`: the agent, started with them pointing at a directory of crafted files
//! (what a container sees of the host under `/hostfs`), reports the crafted values, which
//! differ from this machine's.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;

fn put(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// One glibc utmp record (384 bytes): `ut_type` at 0, `ut_user` at 44.
fn utmp_record(ut_type: i16, user: &str) -> Vec<u8> {
    let mut rec = vec![0u8; 384];
    rec[..2].copy_from_slice(&ut_type.to_ne_bytes());
    rec[44..44 + user.len()].copy_from_slice(user.as_bytes());
    rec
}

/// The fake host: every file the host inputs read, with values no real machine has.
fn fake_host(root: &Path) {
    let meminfo = include_str!("../fixtures/mem/meminfo");
    let meminfo = meminfo.replacen("MemTotal:       24684084 kB", "MemTotal:       1234 kB", 1);
    assert!(meminfo.starts_with("MemTotal:       1234 kB"));
    put(root, "proc/meminfo", meminfo);
    put(root, "proc/loadavg", "7.25 6.50 5.75 3/999 4242\n");
    put(root, "proc/uptime", "90061.50 10.00\n");
    put(
        root,
        "proc/stat",
        "cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 4242 0\nctxt 777777\n\
         btime 1234567890\nprocesses 31337\nprocs_running 1\nprocs_blocked 0\n",
    );
    put(
        root,
        "proc/diskstats",
        "   8       0 sdz 100 1 800 10 200 2 1600 20 0 30 40 0 0 0 0\n",
    );
    put(
        root,
        "proc/net/dev",
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  \
         fake0: 5555 55 0 0 0 0 0 0 6666 66 0 0 0 0 0 0\n",
    );
    let tcp_header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    put(
        root,
        "proc/net/tcp",
        format!(
            "{tcp_header}   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 11 1\n   \
             1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000 0 0 12 1\n   \
             2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 0 0 13 1\n"
        ),
    );
    put(root, "proc/net/tcp6", tcp_header);
    put(
        root,
        "proc/net/udp",
        format!(
            "{tcp_header}  5: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 14 2\n"
        ),
    );
    put(root, "proc/net/udp6", tcp_header);
    put(
        root,
        "proc/net/unix",
        "Num       RefCount Protocol Flags    Type St Inode Path\n\
         0000000000000000: 00000002 00000000 00010000 0001 01 20304 /run/a\n\
         0000000000000000: 00000002 00000000 00000000 0001 03 20305\n\
         0000000000000000: 00000002 00000000 00000000 0005 01 20306\n\
         0000000000000000: 00000002 00000000 00000000 0002 01 20307 /dev/log\n",
    );
    // Two processes: one running, one sleeping (20 threads).
    put(
        root,
        "proc/100/stat",
        "100 (fake one) R 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1\n",
    );
    put(
        root,
        "proc/101/stat",
        "101 (fake two) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 20 0 1 1 1\n",
    );
    // The host's mounts: / from a device-mapper volume, a bind mount of one of its
    // directories, and /boot as /dev/root (resolved through /sys/dev/block).
    put(
        root,
        "proc/1/mountinfo",
        "21 1 253:3 / / rw,relatime - ext4 /dev/mapper/vg-root rw\n\
         22 21 253:3 /srv/data /data rw,relatime - ext4 /dev/mapper/vg-root rw\n\
         23 21 8:1 / /boot ro,relatime - ext4 /dev/root ro\n",
    );
    std::fs::create_dir_all(root.join("dev/mapper")).unwrap();
    std::fs::create_dir_all(root.join("dev/disk/by-id")).unwrap();
    put(root, "dev/dm-3", "");
    put(root, "dev/sdz", "");
    symlink("../../sdz", root.join("dev/disk/by-id/ata-FAKE_DISK_42")).unwrap();
    symlink("../dm-3", root.join("dev/mapper/vg-root")).unwrap();
    put(root, "sys/block/dm-3/dm/name", "vg-root\n");
    std::fs::create_dir_all(root.join("sys/dev/block")).unwrap();
    symlink(
        "../../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sdz/sdz1",
        root.join("sys/dev/block/8:1"),
    )
    .unwrap();
    for dir in ["", "data", "boot"] {
        std::fs::create_dir_all(root.join("hostroot").join(dir)).unwrap();
    }
    for (rel, content) in [
        ("proc/vmstat", "pgpgin 11\npgpgout 22\n"),
        ("proc/sys/kernel/random/entropy_avail", "123\n"),
        ("sys/devices/system/cpu/online", "0-6\n"),
        ("sys/class/net/fake0/flags", "0x1003\n"),
        ("sys/class/net/fake0/speed", "2500\n"),
        ("sys/block/sdz/wwid", "naa.5000c500fake\n"),
        ("sys/kernel/mm/ksm/pages_shared", "4242\n"),
        ("etc/os-release", "ID=fakeos\nVERSION_ID=\"7.1\"\n"),
    ] {
        put(root, rel, content);
    }
    put(
        root,
        "run/udev/data/b8:0",
        "S:disk/by-id/ata-FAKE_DISK_42\nE:ID_SERIAL=FAKE_DISK_42\nE:ID_FS_LABEL=fakelabel\n",
    );
    put(
        root,
        "sys/class/block/sdz/uevent",
        "MAJOR=8\nMINOR=0\nDEVNAME=sdz\nDEVTYPE=disk\n",
    );
    let mut utmp = utmp_record(2, "reboot");
    utmp.extend(utmp_record(7, "alice"));
    utmp.extend(utmp_record(7, "alice"));
    utmp.extend(utmp_record(7, "bob"));
    put(root, "var/run/utmp", utmp);
}

/// `metrics-agent --once` on `config` with the `HOST_*` variables set to `root`'s trees.
fn run_once_hosted(root: &Path, config: &str) -> (Vec<String>, String) {
    let cfg = root.join("agent.toml");
    std::fs::write(&cfg, config).unwrap();
    let r = |d: &str| root.join(d);
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(&cfg)
        .arg("--once")
        .env("HOST_PROC", r("proc"))
        .env("HOST_SYS", r("sys"))
        .env("HOST_ETC", r("etc"))
        .env("HOST_RUN", r("run"))
        .env("HOST_VAR", r("var"))
        .env("HOST_DEV", r("dev"))
        .env("HOST_MOUNT_PREFIX", r("hostroot"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    (stdout.lines().map(str::to_owned).collect(), stderr)
}

#[test]
fn host_inputs_read_the_trees_the_host_variables_name() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fake_host(root);
    let (lines, stderr) = run_once_hosted(
        root,
        "[[inputs.mem]]\n\
         [[inputs.system]]\ninclude = [\"legacy\", \"os\"]\n\
         [[inputs.kernel]]\ncollect = [\"ksm\"]\n\
         [[inputs.diskio]]\nskip_serial_number = false\nname_templates = [\"$ID_FS_LABEL\"]\n\
         [[inputs.diskio]]\nname_override = \"diskio_link\"\n\
         devices = [\"/dev/disk/by-id/ata-FAKE_DISK_42\"]\n\
         [[inputs.diskio]]\nname_override = \"diskio_glob\"\ndevices = [\"disk/by-id/ata-*\"]\n\
         [[inputs.diskio]]\nname_override = \"diskio_none\"\ndevices = [\"sda\", \"disk/by-id/x*\"]\n\
         [[inputs.net]]\n\
         [[inputs.netstat]]\n\
         [[inputs.processes]]\n\
         [[inputs.disk]]\nignore_fs = []\n\
         [[inputs.disk]]\nignore_fs = []\nignore_mount_opts = [\"bind\"]\nname_override = \"disk_nobind\"\n",
    );
    let parsed = parse_all(&lines);
    let find = |m: &str, pred: &dyn Fn(&Line) -> bool| -> &Line {
        parsed
            .iter()
            .find(|l| l.measurement == m && pred(l))
            .unwrap_or_else(|| panic!("no {m} line: {lines:#?}\n{stderr}"))
    };
    let any = |_: &Line| true;

    assert_eq!(find("mem", &any).int("total"), Some(1234 * 1024));

    let gauge = find("system", &|l| l.field("load1").is_some());
    assert_eq!(gauge.float("load1"), Some(7.25));
    assert_eq!(gauge.int("n_cpus"), Some(7));
    assert_eq!(
        (gauge.int("n_users"), gauge.int("n_unique_users")),
        (Some(3), Some(2))
    );
    assert_eq!(
        find("system", &|l| l.field("uptime").is_some()).int("uptime"),
        Some(90061)
    );
    let os = find("system", &|l| l.field("platform").is_some());
    assert_eq!(os.string("platform").as_deref(), Some("fakeos"));
    assert_eq!(os.string("platform_version").as_deref(), Some("7.1"));

    let k = find("kernel", &any);
    assert_eq!(k.int("boot_time"), Some(1_234_567_890));
    assert_eq!(k.int("context_switches"), Some(777_777));
    assert_eq!(k.int("entropy_avail"), Some(123));
    assert_eq!(k.int("disk_pages_in"), Some(11));
    assert_eq!(k.int("ksm_pages_shared"), Some(4242));

    let d = find("diskio", &any);
    assert_eq!(
        d.tag("name"),
        Some("fakelabel"),
        "name_templates from udev data"
    );
    assert_eq!(d.tag("serial"), Some("FAKE_DISK_42"));
    assert_eq!(d.tag("wwid"), Some("naa.5000c500fake"));
    // `devices` by a link under HOST_DEV, by a glob over the udev links; none matching.
    assert_eq!(find("diskio_link", &any).tag("name"), Some("sdz"));
    assert_eq!(find("diskio_glob", &any).tag("name"), Some("sdz"));
    assert!(
        !lines.iter().any(|l| l.starts_with("diskio_none")),
        "{lines:#?}"
    );
    assert_eq!(
        (d.int("reads"), d.int("read_bytes")),
        (Some(100), Some(800 * 512))
    );

    let n = find("net", &any);
    assert_eq!(n.tag("interface"), Some("fake0"));
    assert_eq!(
        (n.int("bytes_recv"), n.int("speed")),
        (Some(5555), Some(2500))
    );

    let ns = find("netstat", &any);
    assert_eq!(
        (
            ns.int("tcp_listen"),
            ns.int("tcp_established"),
            ns.int("tcp_none"),
            ns.int("udp_socket")
        ),
        (Some(1), Some(2), Some(3), Some(2)),
        "from the files under HOST_PROC, unix sockets counted as telegraf does"
    );

    let p = find("processes", &any);
    assert_eq!(
        (
            p.int("total"),
            p.int("running"),
            p.int("sleeping"),
            p.int("total_threads")
        ),
        (Some(2), Some(1), Some(1), Some(21))
    );

    // disk: statvfs under HOST_MOUNT_PREFIX, paths without it; the device-mapper volume as its
    // dm-N with its name as label, /dev/root as the partition, the bind mount only when not
    // ignored, with the device of the file system it shows.
    let disk = |m: &str, path: &str| {
        parsed
            .iter()
            .find(|l| l.measurement == m && l.tag("path") == Some(path))
    };
    let rootfs = disk("disk", "/").unwrap_or_else(|| panic!("{lines:#?}\n{stderr}"));
    assert_eq!(
        (rootfs.tag("device"), rootfs.tag("label")),
        (Some("dm-3"), Some("vg-root"))
    );
    assert_eq!(rootfs.tag("mode"), Some("rw"));
    let boot = disk("disk", "/boot").unwrap();
    assert_eq!(
        (boot.tag("device"), boot.tag("mode")),
        (Some("sdz1"), Some("ro"))
    );
    assert_eq!(
        disk("disk", "/data").and_then(|l| l.tag("device")),
        Some("dm-3")
    );
    assert!(disk("disk_nobind", "/").is_some() && disk("disk_nobind", "/data").is_none());
    assert!(
        !parsed
            .iter()
            .any(|l| l.tag("path").is_some_and(|p| p.contains("hostroot"))),
        "{lines:#?}"
    );
}
