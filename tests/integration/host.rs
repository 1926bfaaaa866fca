//! Host inputs against independent tools on the same machine (`free`, `df`, `ps`, `ip -s link`,
//! `nproc`, /proc/loadavg), with stated tolerances, and adversarial names (a mount point, a
//! process name and an interface name with spaces, commas and `=`) checked after a round trip
//! through a real InfluxDB. Needs root (mount, network namespaces), as CI has.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn find<'a>(lines: &'a [Line], measurement: &str, tag: (&str, &str)) -> Option<&'a Line> {
    lines
        .iter()
        .rev()
        .find(|l| l.measurement == measurement && l.tag(tag.0) == Some(tag.1))
}

fn close(what: &str, ours: f64, theirs: f64, tol: f64) {
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: ours {ours} vs theirs {theirs} (tolerance {tol})"
    );
}

/// Runs the agent until `measurement` lines from a second gather exist (cpu needs two).
fn run_two_gathers(config: &str) -> Vec<String> {
    let agent = Agent::start(config);
    agent.wait_for("cpu usage lines", Duration::from_secs(20), |l| {
        l.iter().any(|x| x.starts_with("cpu,cpu=cpu-total "))
            && l.iter().filter(|x| x.starts_with("diskio,")).count() > 1
    })
}

#[test]
fn host_inputs_agree_with_free_df_nproc_loadavg() {
    let config = r#"
[agent]
  interval = "300ms"
  round_interval = false
[[inputs.cpu]]
  report_active = true
[[inputs.mem]]
[[inputs.swap]]
[[inputs.disk]]
  mount_points = ["/"]
[[inputs.diskio]]
[[inputs.kernel]]
  collect = ["psi"]
[[inputs.processes]]
[[inputs.netstat]]
[[inputs.system]]
"#;
    let lines = run_two_gathers(config);
    // Read the other tools right after the agent's lines.
    let free = sh("free -b");
    let df = sh("df -B1 --output=size,used,avail /");
    let nproc: usize = sh("nproc --all").trim().parse().unwrap();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap();
    influx().assert_accepts(&lines);
    let parsed = parse_all(&lines);

    // cpu: one line per CPU plus cpu-total; shares add up to 100 %.
    let mut cpus: Vec<_> = parsed
        .iter()
        .filter(|l| l.measurement == "cpu")
        .filter_map(|l| l.tag("cpu"))
        .filter(|c| *c != "cpu-total")
        .collect();
    cpus.sort();
    cpus.dedup();
    assert_eq!(cpus.len(), nproc, "{cpus:?}");
    let total = find(&parsed, "cpu", ("cpu", "cpu-total")).unwrap();
    let sum: f64 = [
        "usage_user",
        "usage_system",
        "usage_idle",
        "usage_nice",
        "usage_iowait",
        "usage_irq",
        "usage_softirq",
        "usage_steal",
    ]
    .iter()
    .map(|k| total.float(k).unwrap())
    .sum();
    close("cpu shares sum", sum, 100.0, 0.01);
    close(
        "usage_active",
        total.float("usage_active").unwrap(),
        100.0 - total.float("usage_idle").unwrap(),
        0.01,
    );

    // mem against free -b: total exact; moving values within 2 % of RAM.
    let mem = parsed
        .iter()
        .rev()
        .find(|l| l.measurement == "mem")
        .unwrap();
    let row: Vec<f64> = free
        .lines()
        .find(|l| l.starts_with("Mem:"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let (total_b, free_b, shared, buffcache, avail) = (row[0], row[2], row[3], row[4], row[5]);
    assert_eq!(mem.int("total").unwrap() as f64, total_b);
    let tol = total_b * 0.02;
    close("mem free", mem.int("free").unwrap() as f64, free_b, tol);
    close(
        "mem available",
        mem.int("available").unwrap() as f64,
        avail,
        tol,
    );
    close("mem shared", mem.int("shared").unwrap() as f64, shared, tol);
    // procps' buff/cache = Buffers + Cached + SReclaimable = our buffered + cached.
    close(
        "mem buff/cache",
        (mem.int("buffered").unwrap() + mem.int("cached").unwrap()) as f64,
        buffcache,
        tol,
    );
    let used_pct = mem.float("used_percent").unwrap();
    close(
        "used_percent",
        used_pct,
        100.0 * mem.int("used").unwrap() as f64 / total_b,
        1e-9,
    );
    // telegraf's used since 1.37: total - available.
    assert_eq!(
        mem.int("used").unwrap(),
        mem.int("total").unwrap() - mem.int("available").unwrap()
    );

    // swap against free -b: total exact.
    let swap_total: f64 = free
        .lines()
        .find(|l| l.starts_with("Swap:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let swap = parsed
        .iter()
        .rev()
        .find(|l| l.measurement == "swap" && l.int("total").is_some())
        .unwrap();
    assert_eq!(swap.int("total").unwrap() as f64, swap_total);
    assert!(
        parsed
            .iter()
            .any(|l| l.measurement == "swap" && l.int("in").is_some())
    );

    // disk / against df -B1: size exact; used/avail within 1 % of the size (builds write).
    let nums: Vec<f64> = df
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let root = find(&parsed, "disk", ("path", "/")).unwrap();
    assert_eq!(root.int("total").unwrap() as f64, nums[0]);
    close(
        "disk used",
        root.int("used").unwrap() as f64,
        nums[1],
        nums[0] * 0.01,
    );
    close(
        "disk avail",
        root.int("free").unwrap() as f64,
        nums[2],
        nums[0] * 0.01,
    );

    // system load against /proc/loadavg (it changes every 5 s by small steps).
    let la: f64 = loadavg.split_whitespace().next().unwrap().parse().unwrap();
    let sys = parsed
        .iter()
        .rev()
        .find(|l| l.measurement == "system" && l.float("load1").is_some())
        .unwrap();
    close("load1", sys.float("load1").unwrap(), la, 1.0);
    assert_eq!(sys.int("n_cpus").unwrap() as usize, nproc);

    // diskio: second gather carries the iostat-style fields.
    assert!(
        parsed
            .iter()
            .any(|l| l.measurement == "diskio" && l.float("io_util").is_some())
    );
    // kernel, processes, netstat: present with their key fields.
    let k = parsed.iter().find(|l| l.measurement == "kernel").unwrap();
    assert!(k.int("boot_time").unwrap() > 1_000_000_000 && k.int("context_switches").is_some());
    let p = parsed
        .iter()
        .find(|l| l.measurement == "processes")
        .unwrap();
    assert!(p.int("total").unwrap() > 1 && p.int("zombies").is_some());
    // netstat: tcp_none is telegraf's count of unix stream and seqpacket sockets (no TCP
    // state); `ss` lists the same sockets. Other processes open and close some meanwhile.
    let ns = parsed
        .iter()
        .rev()
        .find(|l| l.measurement == "netstat")
        .unwrap();
    let ss_unix = sh("ss -xa | awk '$1 == \"u_str\" || $1 == \"u_seq\"' | wc -l");
    let ss_unix: f64 = ss_unix.trim().parse().unwrap();
    close(
        "netstat tcp_none vs ss -x",
        ns.int("tcp_none").unwrap() as f64,
        ss_unix,
        10.0 + ss_unix * 0.1,
    );
    if path_exists("/proc/pressure/cpu") {
        assert!(find(&parsed, "pressure", ("resource", "io")).is_some());
    }
}

/// Removes what a test set up, even when it fails.
struct Cleanup(Vec<String>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in self.0.iter().rev() {
            let _ = Command::new("bash")
                .arg("-c")
                .arg(c)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Tag values InfluxDB stored for `key` of `measurement`.
fn influx_tag_values(measurement: &str, key: &str) -> String {
    influx().query(&format!(
        "SHOW TAG VALUES FROM \"{measurement}\" WITH KEY = \"{key}\""
    ))
}

#[test]
fn odd_mount_point_reaches_influxdb_intact() {
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().join("we ird,mount=1");
    std::fs::create_dir(&mp).unwrap();
    let mp_s = mp.to_str().unwrap().to_owned();
    let _c = Cleanup(vec![format!("umount -l '{mp_s}'")]);
    sh(&format!("mount -t tmpfs -o size=16m tmpfs '{mp_s}'"));
    let config = format!(
        "[[inputs.disk]]\n  ignore_fs = []\n  mount_points = [{:?}]\n",
        mp_s
    );
    let (st, lines, err) = run_once(&config);
    assert!(st.success(), "{err}");
    assert_eq!(lines.len(), 1, "{lines:?}\n{err}");
    influx().assert_accepts(&lines);
    let l = parse_line(&lines[0]);
    assert_eq!(l.tag("path"), Some(mp_s.as_str()));
    assert_eq!(l.tag("fstype"), Some("tmpfs"));
    assert_eq!(l.tag("mode"), Some("rw"));
    assert_eq!(l.int("total"), Some(16 << 20));
    let df = sh(&format!("df -B1 --output=size '{mp_s}' | tail -1"));
    assert_eq!(l.int("total").unwrap(), df.trim().parse::<i64>().unwrap());
    let stored = influx_tag_values("disk", "path");
    assert!(stored.contains(&mp_s), "{stored}");
}

/// `ip -s link show dev IF` in namespace `ns`: (rx bytes, rx packets, tx bytes, tx packets).
fn ip_link_counters(ns: &str, dev: &str) -> (i64, i64, i64, i64) {
    let out = sh(&format!("ip -n {ns} -s link show dev '{dev}'"));
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let nums = |hdr: &str| -> (i64, i64) {
        let i = lines.iter().position(|l| l.starts_with(hdr)).unwrap();
        let v: Vec<i64> = lines[i + 1]
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (v[0], v[1])
    };
    let (rb, rp) = nums("RX:");
    let (tb, tp) = nums("TX:");
    (rb, rp, tb, tp)
}

#[test]
fn net_counters_match_ip_link_in_own_namespace_with_odd_interface() {
    let ns = format!("ma-host-{}", std::process::id());
    let odd = "we,ird=1";
    let _c = Cleanup(vec![format!("ip netns del {ns}")]);
    sh(&format!("ip netns add {ns}"));
    // A dummy interface if the kernel has the driver, else one end of a veth pair.
    if Command::new("ip")
        .args(["-n", &ns, "link", "add", odd, "type", "dummy"])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
    } else {
        sh(&format!(
            "ip -n {ns} link add '{odd}' type veth peer name peer0"
        ));
        sh(&format!("ip -n {ns} link set peer0 up"));
    }
    // No IPv6 autoconfiguration chatter: the counters must stand still between reads.
    sh(&format!(
        "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"
    ));
    sh(&format!(
        "ip -n {ns} link set '{odd}' up && ip -n {ns} link set lo up"
    ));
    // Some loopback traffic: a refused TCP connection (SYN + RST) to 127.0.0.1.
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns,
            "bash",
            "-c",
            "exec 3<>/dev/tcp/127.0.0.1/9",
        ])
        .stderr(Stdio::null())
        .status();

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[[inputs.net]]\n[[inputs.net]]\n  interfaces = [\"l?\"]\n[[inputs.netstat]]\n",
    )
    .unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, agent_bin(), "--config"])
        .arg(&cfg)
        .arg("--once")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    influx().assert_accepts(&lines);
    let parsed = parse_all(&lines);
    let nets: Vec<_> = parsed.iter().filter(|l| l.measurement == "net").collect();
    // Default filter: up and not loopback = only the odd interface (peer0 too with veth).
    let default_set: Vec<_> = nets
        .iter()
        .filter_map(|l| l.tag("interface"))
        .filter(|i| *i != "lo")
        .collect();
    assert!(default_set.contains(&odd), "{lines:?}");
    assert_eq!(
        nets.iter()
            .filter(|l| l.tag("interface") == Some("lo"))
            .count(),
        1,
        "lo only from the explicit filter: {lines:?}"
    );
    for dev in ["lo", odd] {
        let l = nets
            .iter()
            .find(|l| l.tag("interface") == Some(dev))
            .unwrap();
        let (rb, rp, tb, tp) = ip_link_counters(&ns, dev);
        assert_eq!(l.int("bytes_recv"), Some(rb), "{dev}");
        assert_eq!(l.int("packets_recv"), Some(rp), "{dev}");
        assert_eq!(l.int("bytes_sent"), Some(tb), "{dev}");
        assert_eq!(l.int("packets_sent"), Some(tp), "{dev}");
        assert!(l.int("speed").is_some());
    }
    let lo = nets
        .iter()
        .find(|l| l.tag("interface") == Some("lo"))
        .unwrap();
    assert!(
        lo.int("packets_recv").unwrap() >= 2,
        "SYN and RST went over lo"
    );
    let stored = influx_tag_values("net", "interface");
    assert!(stored.contains(odd), "{stored}");
}

#[test]
fn procstat_matches_ps_for_a_child_with_an_odd_name() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("mkr{}x", std::process::id());
    // The kernel's process name is the executable's file name: copy sleep to an odd one.
    let exe = dir.path().join("sl ee,p=1");
    std::fs::copy(sh("command -v sleep").trim(), &exe).unwrap();
    let argv0 = format!("we ird,name=1 {marker}");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(
        Command::new("bash")
            .arg("-c")
            .arg(format!("exec -a '{argv0}' '{}' 300", exe.display()))
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    // Wait until the exec has happened.
    for _ in 0..100 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim() == "sl ee,p=1")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = format!(
        "[agent]\n  interval = \"300ms\"\n  round_interval = false\n\
         [[inputs.procstat]]\n  pattern = \"{marker}\"\n  tag_with = [\"cmdline\"]\n"
    );
    let agent = Agent::start(&config);
    let lines = agent.wait_for("two procstat gathers", Duration::from_secs(20), |l| {
        l.iter()
            .any(|x| x.starts_with("procstat,") && x.contains("cpu_usage="))
    });
    let ps = sh(&format!("ps -o rss=,nlwp= -p {pid}"));
    let v: Vec<i64> = ps.split_whitespace().map(|x| x.parse().unwrap()).collect();
    influx().assert_accepts(&lines);
    let parsed = parse_all(&lines);
    let p = parsed
        .iter()
        .rev()
        .find(|l| l.measurement == "procstat")
        .unwrap();
    assert_eq!(p.tag("process_name"), Some("sl ee,p=1"));
    assert_eq!(p.tag("pattern"), Some(marker.as_str()));
    assert_eq!(p.tag("cmdline"), Some(format!("{argv0} 300").as_str()));
    assert_eq!(p.int("pid"), Some(i64::from(pid as i32)));
    // A sleeping `sleep` does not grow: RSS equal to ps's within one 64 KiB step.
    close(
        "rss",
        p.int("memory_rss").unwrap() as f64,
        (v[0] * 1024) as f64,
        65536.0,
    );
    assert_eq!(p.int("num_threads"), Some(v[1]));
    assert!(p.float("cpu_usage").unwrap() < 5.0);
    let lookup = parsed
        .iter()
        .rev()
        .find(|l| l.measurement == "procstat_lookup")
        .unwrap();
    assert_eq!(lookup.int("pid_count"), Some(1));
    assert_eq!(lookup.tag("result"), Some("success"));
    let stored = influx_tag_values("procstat", "process_name");
    assert!(stored.contains("sl ee,p=1"), "{stored}");
    let stored = influx_tag_values("procstat", "cmdline");
    assert!(stored.contains(&argv0), "{stored}");
    drop(child);
}

#[test]
fn missing_pressure_or_pid_file_is_data_not_a_failed_input() {
    let config = "[agent]\n  interval = \"200ms\"\n  round_interval = false\n\
                  [[inputs.procstat]]\n  pid_file = \"/nonexistent/x.pid\"\n\
                  [[inputs.internal]]\n";
    let agent = Agent::start(config);
    let lines = agent.wait_for("lookup errors counted", Duration::from_secs(20), |l| {
        parse_all(l).iter().any(|x| {
            x.measurement == "metrics_agent_gather"
                && x.tag("input") == Some("procstat")
                && x.int("gather_errors").unwrap_or(0) >= 2
        })
    });
    let parsed = parse_all(&lines);
    let lookup = parsed
        .iter()
        .find(|l| l.measurement == "procstat_lookup")
        .unwrap();
    assert_eq!(lookup.tag("result"), Some("lookup_error"));
    assert_eq!(lookup.int("result_code"), Some(1));
    // Logged once, not every gather.
    assert_eq!(
        agent.stderr().matches("x.pid").count(),
        1,
        "{}",
        agent.stderr()
    );
    influx().assert_accepts(&lines);
}
