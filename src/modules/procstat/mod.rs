//! `procstat`: per-process resource use, as telegraf's `procstat` input on Linux.
//!
//! Selection (see `config::Raw`): old style, the first selector set in telegraf's order
//! (`supervisor_units`, `systemd_unit`, `cgroup`, `pid_file`, `exe`, `pattern`, `user`), or one
//! or more `[[inputs.procstat.filter]]` tables. Processes are found by reading /proc (through
//! `HOST_PROC`); `systemd_unit` asks `systemctl show` for the MainPID and `supervisor_units`
//! `supervisorctl status` for each program's process (whose children are reported), as telegraf
//! does.
//!
//! Measurement `procstat`, one line per process: tags `process_name` (the `process_name` option
//! or the process's name), the selector's (`pidfile`, `exe`, `pattern`, `user`, `systemd_unit`,
//! `cgroup` and `cgroup_full`, `supervisor_unit` with `status` and `uptimes`), in filter mode
//! `filter` (and `parent_pid`, `level`), and any `tag_with` keys. Fields: `pid` (never
//! prefixed), `ppid`, `cmdline`, `status`, `user` (the real user; unless in `tag_with`),
//! `num_threads`, `num_fds`, `voluntary_context_switches`, `involuntary_context_switches`,
//! `minor_faults`, `major_faults`, `child_minor_faults`, `child_major_faults`, `read_count`,
//! `write_count` (syscalls), `read_bytes`, `write_bytes` (`rchar`/`wchar`), `disk_read_bytes`,
//! `disk_write_bytes`, `created_at` (ns since epoch); property `cpu`: `cpu_time_user`,
//! `cpu_time_system`, `cpu_time_iowait` (float s), `cpu_usage` (float %: one CPU, or all with
//! `mode = "solaris"`; needs two gathers that saw the process); `memory`: `memory_rss`,
//! `memory_vms` (bytes), `memory_usage` (float, % of MemTotal); `mmap` (`smaps_rollup`):
//! `memory_size`, `memory_pss`, `memory_shared_clean`, `memory_shared_dirty`,
//! `memory_private_clean`, `memory_private_dirty`, `memory_referenced`, `memory_anonymous`,
//! `memory_swap`; `limits` (`/proc/<pid>/limits`): `rlimit_<r>_soft`, `rlimit_<r>_hard` for
//! `cpu_time`, `memory_data`, `memory_stack`, `memory_rss`, `num_fds`, `memory_locked`,
//! `memory_vms`, `file_locks`, `signals_pending`, `nice_priority`, `realtime_priority`
//! (unlimited: the largest int) and the use of each but `file_locks` under its own name, as
//! gopsutil measures it. `/proc/<pid>/io` of another user's process needs root or
//! CAP_SYS_PTRACE: without it those fields are left out.
//!
//! Measurement `procstat_socket` (property `sockets`), one line per socket of the process of
//! the `socket_protocols`: the process's tags, then `protocol`, `state`, `pid`, `src`,
//! `src_port`, `dest`, `dest_port`, `rx_queue`, `tx_queue`, TCP's `bytes_received`,
//! `bytes_sent`, `lost`, `retransmits`, unix sockets' `type`, `name`, `inode`, `peer` (fields or,
//! by `tag_with`, tags). See `sockets`.
//!
//! Measurement `procstat_lookup`: old style one line per gather, tags `pid_finder`, `result`
//! (`success`|`lookup_error`) and the selector's; per filter one line tagged `filter` and
//! `result` (with `tag_with = ["level"]` also one per group with field `level`); fields
//! `pid_count`, `running` (processes whose metrics were read), `result_code` (0|1).
//!
//! Reading `/proc/<pid>/…` of a process stuck in the kernel can block, so the whole scan runs on
//! the blocking pool, bounded by `timeout`, with at most one scan in flight.

mod config;
mod finder;
pub(crate) mod proc;
mod scan;
pub(crate) mod services;
pub(crate) mod sockets;

use super::GatherError;
use super::hostutil::{Offload, clk_tck, page_size};
use crate::output::{Accumulator, now_ns};
pub(crate) use config::{Config, Raw, resolve};
use config::Lookup;
use scan::{Host, ScanResult, ScanState, lookup_error, scan};

pub(crate) struct Procstat {
    config: std::sync::Arc<Config>,
    host: Host,
    offload: Offload<ScanState, ScanResult>,
}

impl Procstat {
    pub(crate) fn new(config: Config) -> Self {
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Procstat {
            config: std::sync::Arc::new(config),
            host: Host {
                hz: clk_tck(),
                page: page_size(),
                ncpu,
            },
            offload: Offload::default(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let cfg = self.config.clone();
        let host = self.host;
        let result = self
            .offload
            .run(self.config.timeout, move |st| scan(st, &cfg, host, ts))
            .await;
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                acc.add_error();
                match &self.config.lookup {
                    Lookup::Old { pid_finder, .. } => {
                        acc.add(lookup_error(ts, ("pid_finder", pid_finder)));
                    }
                    Lookup::Filters(filters) => {
                        for f in filters {
                            acc.add(lookup_error(ts, ("filter", &f.name)));
                        }
                    }
                }
                return Err(GatherError::Failed(format!("scanning /proc: {e}")));
            }
        };
        for m in r.metrics {
            acc.add(m);
        }
        for what in &r.cleared {
            acc.clear_error(what);
        }
        for (what, e) in &r.errors {
            acc.partial_error(what, e);
        }
        Ok(())
    }
}

super::ticked_input!(Procstat, super::Shape::Ticked);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::modules::hostutil::testing::TestAcc;

    #[tokio::test]
    async fn finds_a_child_by_pattern_and_pid_file() {
        let marker = format!("procstat-unit-{}", std::process::id());
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("sleep 30; : {marker}"))
            .spawn()
            .unwrap();
        // Until the shell's child has exec'd `sleep`, that child is a copy of the shell and
        // matches the pattern too: wait for the exec, so that exactly one process matches.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let settled = std::time::Instant::now();
        loop {
            let kids = std::fs::read_to_string(&children).unwrap_or_default();
            let exec_done = kids.split_whitespace().next().is_some_and(|k| {
                std::fs::read(format!("/proc/{k}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
            });
            if exec_done {
                break;
            }
            assert!(
                settled.elapsed() < Duration::from_secs(10),
                "sleep never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let raw: Raw =
            toml::from_str(&format!("pattern = \"sh -c sleep 30; : {marker}\"")).unwrap();
        let mut p = Procstat::new(resolve(raw).unwrap());
        let mut t = TestAcc::new();
        p.gather(&mut t.acc).await.unwrap();
        p.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        let procs: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with("procstat,"))
            .collect();
        assert_eq!(procs.len(), 2, "{lines:?}");
        assert!(
            procs[0].contains(&format!("pid={}i", child.id())),
            "{procs:?}"
        );
        assert!(procs[0].starts_with("procstat,process_name=sh,pattern="));
        assert!(!procs[0].contains("cpu_usage"));
        assert!(procs[1].contains("cpu_usage="));
        let lookup: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with("procstat_lookup,"))
            .collect();
        assert!(
            lookup[0].contains("pid_count=1i,running=1i,result_code=0i"),
            "{lookup:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("x.pid");
        std::fs::write(&pf, format!("{}\n", child.id())).unwrap();
        let raw: Raw = toml::from_str(&format!(
            "pid_file = {:?}\ntag_with = [\"pid\"]\nprefix = \"x\"",
            pf.display().to_string()
        ))
        .unwrap();
        let mut p = Procstat::new(resolve(raw).unwrap());
        p.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert!(
            lines[0].contains(&format!(",pid={} ", child.id())),
            "{lines:?}"
        );
        assert!(lines[0].contains("x_num_threads=1i"), "{lines:?}");
        let _ = child.kill();
        let _ = child.wait();

        std::fs::remove_file(&pf).unwrap();
        p.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("result=lookup_error"), "{lines:?}");
        assert_eq!(t.errors(), 1);
    }
}
