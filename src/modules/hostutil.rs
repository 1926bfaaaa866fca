//! Helpers shared by the host inputs (`cpu`, `mem`, `disk`, `procstat` ...): reading /proc and
//! /sys files into reused buffers, the glob matcher for `devices`/`interfaces`/`mount_points`,
//! once-per-cause error reporting, and running blocking work on the blocking pool with at most
//! one call in flight.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::options::{GlobError, GlobSet, SpanError};

use tokio::task::JoinHandle;

/// Reads a whole file into `buf` (cleared first), reusing its allocation. Unlike
/// `read_to_string` it asks for no size hint (/proc files report 0 anyway), which saves a
/// `statx` and an `lseek` per file.
pub(crate) fn read_into(path: impl AsRef<Path>, buf: &mut String) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    read_at_zero(&f, buf)
}

/// Like [`read_into`] for files that may hold non-UTF-8 bytes (cmdline, comm, mountinfo paths).
pub(crate) fn read_bytes_into(path: impl AsRef<Path>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    read_bytes_at_zero(&f, buf)
}

/// Like [`read_bytes_into`], but stops at the first read that returns less than it asked for:
/// for files whose reads always return all there is, and where the read that finds the end
/// costs the kernel as much as a read of the data (/proc/<pid>/cmdline).
pub(crate) fn read_bytes_until_short(
    path: impl AsRef<Path>,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    read_bytes_from_zero(&f, buf, true)
}

/// Reads `f` from offset 0 to its end with `pread`. /proc and /sys files regenerate their
/// content on a read at offset 0, so a file kept open can be read again without reopening.
pub(crate) fn read_bytes_at_zero(f: &std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    read_bytes_from_zero(f, buf, false)
}

/// [`read_bytes_at_zero`]; `short_is_end`: a read that fills less than the room offered ends it.
fn read_bytes_from_zero(
    f: &std::fs::File,
    buf: &mut Vec<u8>,
    short_is_end: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    buf.clear();
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(buf.capacity().max(4096));
        }
        let start = buf.len();
        let room = buf.capacity() - start;
        buf.resize(start + room, 0);
        let n = match f.read_at(&mut buf[start..], start as u64) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                buf.truncate(start);
                continue;
            }
            Err(e) => {
                buf.truncate(start);
                return Err(e);
            }
        };
        buf.truncate(start + n);
        if n == 0 || (short_is_end && n < room) {
            return Ok(());
        }
    }
}

/// [`read_bytes_at_zero`] into a `String`; invalid UTF-8 is replaced, not an error.
pub(crate) fn read_at_zero(f: &std::fs::File, buf: &mut String) -> std::io::Result<()> {
    let mut bytes = std::mem::take(buf).into_bytes();
    let r = read_bytes_at_zero(f, &mut bytes);
    *buf = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    r
}

/// The number of entries of the directory `path`, but `.` and `..`: `getdents64` into `buf`
/// (kept by the caller), so no `DIR` stream is allocated and no `fstat` made per directory, as
/// `readdir(3)` and `std::fs::read_dir` do. For /proc/<pid>/fd, counted for every process in
/// every `procstat` scan.
pub(crate) fn count_entries(path: &str, buf: &mut Vec<u8>) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)?;
    // Room for ~100 entries of /proc/<pid>/fd per call; more entries take more calls.
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut n = 0;
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes; `dir` is an open directory.
        let got = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        let got = match usize::try_from(got) {
            Ok(0) => return Ok(n),
            Ok(g) => g.min(buf.len()),
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
        };
        n += count_dirents(&buf[..got]);
    }
}

/// The entries of a `getdents64` result (`struct linux_dirent64`: inode u64, offset i64,
/// record length u16, type u8, then the NUL-terminated name), but `.` and `..`.
fn count_dirents(mut b: &[u8]) -> u64 {
    let mut n = 0;
    while b.len() >= 19 {
        let reclen = usize::from(u16::from_ne_bytes([b[16], b[17]]));
        if reclen < 19 || reclen > b.len() {
            break;
        }
        let name = &b[19..reclen];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        if name != b"." && name != b".." {
            n += 1;
        }
        b = &b[reclen..];
    }
    n
}

/// A /proc or /sys file opened once and re-read with `pread` at offset 0 on every gather
/// (one syscall per read instead of open+read+close). Reopened after an error. The path is
/// mapped through `HOST_PROC`/`HOST_SYS` (`procfs::host`) once, here.
#[derive(Debug)]
pub(crate) struct ProcFile {
    path: String,
    file: Option<std::fs::File>,
}

impl ProcFile {
    pub(crate) fn new(path: &str) -> Self {
        ProcFile {
            path: super::procfs::host::path(path).into_owned(),
            file: None,
        }
    }

    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    pub(crate) fn read(&mut self, buf: &mut String) -> std::io::Result<()> {
        let f = match &self.file {
            Some(f) => f,
            None => self.file.insert(std::fs::File::open(&self.path)?),
        };
        let r = read_at_zero(f, buf);
        if r.is_err() {
            self.file = None;
        }
        r
    }

    /// [`Self::read`] for a file the gather cannot do without: the error names the file.
    pub(crate) fn read_required(&mut self, buf: &mut String) -> Result<(), super::GatherError> {
        self.read(buf)
            .map_err(|e| super::GatherError::io(&self.path, e))
    }
}

/// Bytes per page (for /proc counters in pages).
pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Clock ticks per second (USER_HZ) for /proc times.
pub(crate) fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// A list of globs (telegraf's forms, see `options::Glob`), compiled once; empty = no filter
/// configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Globs(GlobSet);

impl Globs {
    pub(crate) fn new(patterns: &[String]) -> Result<Globs, GlobError> {
        GlobSet::new(patterns, "").map(Globs)
    }

    /// `key`'s patterns from a raw config; a malformed one is an error at the list.
    pub(crate) fn resolve(
        patterns: Option<Spanned<Vec<String>>>,
        key: &str,
    ) -> Result<Globs, SpanError> {
        match patterns {
            None => Ok(Globs::default()),
            Some(p) => {
                Globs::new(p.get_ref()).map_err(|e| SpanError::new(p.span(), key, e.to_string()))
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        self.0.matches(name)
    }
}

/// Why an offloaded call produced no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OffloadError {
    #[error("did not finish within {0:?} (still running on the blocking pool)")]
    TimedOut(Duration),
    #[error("the previous call has still not returned (hung); not started again")]
    Busy,
    #[error("panicked: {0}")]
    Panicked(String),
}

/// Runs a blocking call with state `S` on tokio's blocking pool, with a timeout and never more
/// than one call in flight: a call that times out keeps running (blocking calls cannot be
/// cancelled) and holds the state; until it returns, later calls fail with `Busy` at once instead
/// of piling up threads behind a hung NFS mount or a stuck process.
pub(crate) struct Offload<S, R> {
    state: Option<S>,
    pending: Option<JoinHandle<(S, R)>>,
}

impl<S: Default + Send + 'static, R: Send + 'static> Default for Offload<S, R> {
    fn default() -> Self {
        Offload {
            state: Some(S::default()),
            pending: None,
        }
    }
}

impl<S: Default + Send + 'static, R: Send + 'static> Offload<S, R> {
    pub(crate) async fn run(
        &mut self,
        timeout: Duration,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Result<R, OffloadError> {
        if let Some(h) = self.pending.take() {
            if !h.is_finished() {
                self.pending = Some(h);
                return Err(OffloadError::Busy);
            }
            // A late result is stale: keep only the state (buffers, previous samples).
            self.state = Some(match h.await {
                Ok((s, _)) => s,
                Err(_) => S::default(),
            });
        }
        let mut state = self.state.take().unwrap_or_default();
        let mut handle = tokio::task::spawn_blocking(move || {
            let r = f(&mut state);
            (state, r)
        });
        match tokio::time::timeout(timeout, &mut handle).await {
            Ok(Ok((s, r))) => {
                self.state = Some(s);
                Ok(r)
            }
            Ok(Err(join)) => {
                self.state = Some(S::default());
                let msg = if join.is_panic() {
                    crate::isolation::panic_message(join.into_panic())
                } else {
                    "cancelled".to_owned()
                };
                Err(OffloadError::Panicked(msg))
            }
            Err(_) => {
                self.pending = Some(handle);
                Err(OffloadError::TimedOut(timeout))
            }
        }
    }
}

/// Parses a `Key:   123 kB` style value (meminfo, status): the first number after the colon and
/// whether it carries a `kB` unit. A number above `u64::MAX / 1024` is refused (`None`): callers
/// turn kB into bytes with `* 1024`, and no count these files hold comes near 2^54 (a context
/// switch counter at a million a second takes 570 years), so only a corrupt or hostile file
/// (under `HOST_PROC`, any file) has one.
pub(crate) fn kv_number(rest: &str) -> Option<(u64, bool)> {
    let rest = rest.trim();
    let (num, unit) = match rest.split_once(' ') {
        Some((n, u)) => (n, u.trim()),
        None => (rest, ""),
    };
    let n: u64 = num.parse().ok()?;
    (n <= u64::MAX / 1024).then_some((n, unit == "kB"))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs a gather into a real accumulator and returns the encoded lines.
    use std::sync::Arc;
    use std::time::Duration;

    use crate::output::{Accumulator, Decoration, Queue};
    use crate::stats::{InstanceStats, Registry};

    pub(crate) struct TestAcc {
        pub acc: Accumulator,
        queue: Arc<Queue>,
        pub stats: Arc<InstanceStats>,
    }

    impl Default for TestAcc {
        fn default() -> Self {
            Self::new()
        }
    }

    impl TestAcc {
        pub(crate) fn new() -> Self {
            let queue = Arc::new(Queue::new(100_000, 64 << 20));
            let stats = Arc::new(InstanceStats::new("t[0]", "t", "t", None));
            let acc = Accumulator::new(
                Arc::new(Decoration::default()),
                queue.clone(),
                Arc::new(Registry::default()),
                stats.clone(),
            );
            TestAcc { acc, queue, stats }
        }

        pub(crate) fn lines(&mut self) -> Vec<String> {
            self.acc.flush();
            let mut out = Vec::new();
            for b in self.queue.take_all(Duration::from_millis(1)) {
                let text = String::from_utf8(b.bytes).expect("utf8");
                out.extend(text.lines().map(str::to_owned));
            }
            out
        }

        pub(crate) fn errors(&self) -> u64 {
            crate::stats::get(&self.stats.gather_errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_file_rereads_fresh_content() {
        let mut f = ProcFile::new("/proc/self/stat");
        let mut a = String::new();
        f.read(&mut a).unwrap();
        let mut b = String::new();
        f.read(&mut b).unwrap();
        assert!(a.starts_with(&format!("{} (", std::process::id())));
        assert!(b.ends_with('\n') && b.len() > 50);
        let mut big = ProcFile::new("/proc/self/maps");
        let mut m = String::with_capacity(8);
        big.read(&mut m).unwrap();
        // Larger than the initial capacity: read in several chunks, complete.
        assert!(m.len() > 1024 && m.contains("[stack]") && m.ends_with('\n'));
        assert!(ProcFile::new("/nonexistent").read(&mut m).is_err());
    }

    #[test]
    fn counts_directory_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let sub = tmp.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        // Names long enough that the entries fill several 4 KiB getdents64 buffers.
        for i in 0..300 {
            std::fs::write(sub.join(format!("{i:0>60}")), b"").unwrap();
        }
        std::fs::write(tmp.path().join("f"), b"hello").unwrap();
        let mut buf = Vec::new();
        let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
        assert_eq!(count_entries(&path(&sub), &mut buf).unwrap(), 300);
        assert!(count_entries(&path(&tmp.path().join("f")), &mut buf).is_err());
        assert!(count_entries("/nonexistent", &mut buf).is_err());
        // /proc/<pid>/fd, the use it is made for: the same count as readdir, on a child whose
        // descriptors do not change (this process's do, with tests running in parallel).
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fds = format!("/proc/{}/fd", child.id());
        let n = count_entries(&fds, &mut buf).unwrap();
        let listed = std::fs::read_dir(&fds).unwrap().count() as u64;
        let _ = child.kill();
        let _ = child.wait();
        // At least stdin, stdout and stderr (and whatever the test harness lets children inherit).
        assert!(n >= 3, "{n}");
        assert_eq!(n, listed);
    }

    #[test]
    fn reads_until_a_short_read() {
        let mut b = Vec::with_capacity(8);
        read_bytes_until_short("/proc/self/cmdline", &mut b).unwrap();
        let whole = std::fs::read("/proc/self/cmdline").unwrap();
        assert_eq!(b, whole);
        // More than one read's room (a regular file fills every read): still whole.
        let tmp = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(tmp.path().join("big"), &big).unwrap();
        read_bytes_until_short(tmp.path().join("big"), &mut b).unwrap();
        assert_eq!(b, big);
        assert!(read_bytes_until_short("/nonexistent", &mut b).is_err());
    }

    #[test]
    fn kv_numbers() {
        assert_eq!(kv_number("   16384 kB"), Some((16384, true)));
        assert_eq!(kv_number(" 12"), Some((12, false)));
        assert_eq!(kv_number("x"), None);
        // The largest number whose kB still fit in bytes, and one more (a hostile file).
        let max = u64::MAX / 1024;
        assert_eq!(kv_number(&format!("{max} kB")), Some((max, true)));
        assert_eq!(kv_number(&format!("{} kB", max + 1)), None);
    }

    #[tokio::test]
    async fn offload_one_in_flight() {
        let mut o: Offload<u32, u32> = Offload::default();
        let r = o
            .run(Duration::from_secs(5), |s| {
                *s += 1;
                *s
            })
            .await;
        assert_eq!(r.unwrap(), 1);
        let r = o
            .run(Duration::from_millis(20), |_| {
                std::thread::sleep(Duration::from_millis(300));
                0
            })
            .await;
        assert!(matches!(r, Err(OffloadError::TimedOut(_))));
        let r = o.run(Duration::from_secs(1), |_| 7).await;
        assert!(matches!(r, Err(OffloadError::Busy)));
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The state held by the late call comes back.
        let r = o.run(Duration::from_secs(1), |s| *s).await;
        assert_eq!(r.unwrap(), 1);
    }
}

#[cfg(test)]
mod timing {
    /// Pure gather cost of the host inputs, without the agent around them:
    /// `cargo test --release --lib hostutil::timing -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn gather_cost() {
        use crate::modules::*;
        let mut t = super::testing::TestAcc::new();
        macro_rules! time {
            ($name:expr, $m:expr) => {{
                let mut m = $m;
                for _ in 0..20 {
                    m.gather(&mut t.acc).await.unwrap();
                }
                t.lines();
                let start = std::time::Instant::now();
                let n = 500;
                for _ in 0..n {
                    m.gather(&mut t.acc).await.unwrap();
                }
                let took = start.elapsed();
                t.lines();
                eprintln!(
                    "{}: {:.1} µs wall per gather",
                    $name,
                    took.as_secs_f64() * 1e6 / n as f64
                );
            }};
        }
        time!(
            "cpu",
            cpu::Cpu::new(cpu::resolve(Default::default()).unwrap())
        );
        time!(
            "mem",
            mem::Mem::new(mem::resolve(Default::default()).unwrap())
        );
        time!(
            "swap",
            swap::Swap::new(swap::resolve(Default::default()).unwrap())
        );
        time!(
            "kernel",
            kernel::Kernel::new(kernel::resolve(Default::default()).unwrap())
        );
        time!(
            "system",
            system::System::new(system::resolve(Default::default()).unwrap())
        );
        time!(
            "disk",
            disk::Disk::new(disk::resolve(Default::default()).unwrap())
        );
        time!(
            "diskio",
            diskio::DiskIo::new(diskio::resolve(Default::default()).unwrap())
        );
        time!(
            "net",
            net::Net::new(net::resolve(Default::default()).unwrap())
        );
        time!(
            "netstat",
            netstat::Netstat::new(netstat::resolve(Default::default()).unwrap())
        );
    }
}
