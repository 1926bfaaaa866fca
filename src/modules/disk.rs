//! `disk`: file-system usage per mount, as telegraf's `disk` input: measurement `disk`, tags
//! `path` (mount point), `device` (source without `/dev/`: `/dev/mapper/X` as its `dm-N`,
//! `/dev/root` as the real partition), `fstype`, `mode` (`rw`|`ro`), `label` (device-mapper
//! name or udev file-system label, when there is one), fields
//! `total, free, used, inodes_total, inodes_free, inodes_used` (int bytes / inodes),
//! `used_percent` = 100·used/(used+free) and `inodes_used_percent` (float). `free` is what an
//! unprivileged user may still use (`f_bavail`), `used` = blocks − `f_bfree`: the same numbers as
//! `df`. File systems with 0 blocks (proc, sysfs, cgroup …) are skipped, as telegraf does.
//!
//! Mounts come from `/proc/1/mountinfo` (else `/proc/self/mountinfo`), under `HOST_PROC`, octal
//! escapes such as `\040` decoded; with `HOST_MOUNT_PREFIX` the mounts are measured under
//! that prefix and reported without it. `statvfs` can
//! block forever on a dead NFS/CIFS server, so the calls for such mounts run on the blocking pool
//! (one task walking them) with a timeout; the mount a timed-out task is stuck in is not asked
//! again until that call returns: it is a counted, logged error for that mount while the other
//! mounts are still reported. Local file systems (see [`answers_locally`]) are asked inline:
//! handing the calls to another thread costs two thread wake-ups per gather, more than the calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use super::GatherError;
use super::hostutil::{Globs, read_bytes_at_zero};
use super::procfs::host;
use crate::options::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.disk]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Only these mount points (globs allowed, e.g. `"/mnt/*"`). Default: every mount.
    mount_points: Option<toml::Spanned<Vec<String>>>,
    /// File-system types to skip. Default (telegraf's sample config): tmpfs, devtmpfs, devfs,
    /// iso9660, overlay, aufs, squashfs. `ignore_fs = []` reports every type.
    ignore_fs: Option<Vec<String>>,
    /// Skip mounts having any of these mount options; `"bind"` matches bind mounts (a
    /// directory of a file system mounted elsewhere). Default none.
    ignore_mount_opts: Option<Vec<String>>,
    /// Longest wait for one mount's `statvfs` (a hung network file system). Default 5s.
    /// (An addition: telegraf has no such limit.)
    timeout: Option<toml::Spanned<ConfigDuration>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub mount_points: Globs,
    pub ignore_fs: Vec<String>,
    pub ignore_mount_opts: Vec<String>,
    pub timeout: Duration,
}

const DEFAULT_IGNORE_FS: &[&str] = &[
    "tmpfs", "devtmpfs", "devfs", "iso9660", "overlay", "aufs", "squashfs",
];

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let timeout = match raw.timeout {
        Some(t) if t.get_ref().get().is_zero() => {
            return Err(SpanError::new(t.span(), "timeout", "must be more than 0"));
        }
        Some(t) => t.into_inner().get(),
        None => Duration::from_secs(5),
    };
    Ok(Config {
        mount_points: Globs::resolve(raw.mount_points, "mount_points")?,
        ignore_fs: raw
            .ignore_fs
            .unwrap_or_else(|| DEFAULT_IGNORE_FS.iter().map(|s| s.to_string()).collect()),
        ignore_mount_opts: raw.ignore_mount_opts.unwrap_or_default(),
        timeout,
    })
}

/// One line of mountinfo, decoded, with what telegraf (gopsutil) makes of it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    /// Per-mount options (`rw,nosuid,relatime`), plus `bind` for a bind mount as gopsutil adds
    /// it (so that `ignore_mount_opts = ["bind"]` leaves bind mounts out).
    pub options: String,
    /// Per-superblock options (`rw,lowerdir=…,upperdir=…` for an overlay).
    pub super_options: String,
    /// `major:minor` of the file system.
    pub dev_id: String,
    /// The directory of the file system mounted here (`/` unless a bind or subvolume mount).
    pub root: String,
    /// gopsutil's device: the source when it is a path or the whole file system is mounted,
    /// else the root (an nsfs `net:[…]`); a later mount of the same file system (a bind mount)
    /// takes the first one's. `/dev/mapper/…` and `/dev/root` are resolved by [`resolve_device`].
    pub device_path: String,
    /// telegraf's `label` tag (device-mapper name or udev `ID_FS_LABEL`), when there is one.
    pub label: Option<String>,
    /// What `statvfs` is called on: the mount point under `HOST_MOUNT_PREFIX`.
    pub stat_path: String,
    /// The `path` tag: the mount point without `HOST_MOUNT_PREFIX`.
    pub path: String,
}

impl Mount {
    /// gopsutil's effective mode: read-only if the mount or its superblock is, read-write if
    /// both are.
    pub(crate) fn mode(&self) -> &'static str {
        let has = |opts: &str, o: &str| opts.split(',').any(|x| x == o);
        if has(&self.options, "ro") || has(&self.super_options, "ro") {
            "ro"
        } else if has(&self.options, "rw") && has(&self.super_options, "rw") {
            "rw"
        } else if has(&self.options, "rw") {
            // The superblock said neither (a made-up line): the mount's own word.
            "rw"
        } else {
            "unknown"
        }
    }

    /// Telegraf's `device` tag: the device without `/dev/`, the file-system type when there
    /// is none.
    pub(crate) fn device(&self) -> String {
        match self.device_path.as_str() {
            "" | "none" => self.fstype.clone(),
            d => d.replace("/dev/", ""),
        }
    }
}

/// `/dev/mapper/NAME` → the `/dev/dm-N` it links to, `/dev/root` → the partition of the
/// file system's `major:minor` (`/sys/dev/block/M:m`), as gopsutil does; then the `label`.
pub(crate) fn resolve_device(m: &mut Mount) {
    if let Some(name) = m.device_path.strip_prefix("/dev/mapper/") {
        let link = host::path("/dev/mapper").into_owned() + "/" + name;
        if let Ok(target) = std::fs::canonicalize(&link)
            && let Some(base) = target.file_name().and_then(|b| b.to_str())
        {
            m.device_path = format!("/dev/{base}");
        }
    }
    if m.device_path == "/dev/root"
        && let Ok(target) = std::fs::read_link(&*host::path(&format!("/sys/dev/block/{}", m.dev_id)))
        && let Some(base) = target.file_name().and_then(|b| b.to_str())
    {
        m.device_path = format!("/dev/{base}");
    }
    m.label = label(m.device_path.strip_prefix("/dev/").unwrap_or(&m.device_path));
}

/// gopsutil's `disk.Label`: the device-mapper name of `name`, else udev's `ID_FS_LABEL` for
/// the block device `/dev/<name>`.
fn label(name: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    if let Ok(dm) = std::fs::read_to_string(&*host::path(&format!("/sys/block/{name}/dm/name"))) {
        return Some(dm.trim().to_owned()).filter(|s| !s.is_empty());
    }
    use std::os::unix::fs::MetadataExt;
    let rdev = std::fs::metadata(&*host::path(&format!("/dev/{name}")))
        .ok()?
        .rdev();
    let data = std::fs::read_to_string(&*host::path(&udev_data_path(rdev))).ok()?;
    let mut info = super::diskio::DevInfo::new();
    super::diskio::parse_udev(&data, &mut info);
    info.remove("ID_FS_LABEL").filter(|s| !s.is_empty())
}

/// `/run/udev/data/b<major>:<minor>` of a block device number.
fn udev_data_path(rdev: u64) -> String {
    format!(
        "/run/udev/data/b{}:{}",
        libc::major(rdev as libc::dev_t),
        libc::minor(rdev as libc::dev_t)
    )
}

/// The mount options with gopsutil's effective mode in place of `rw`/`ro` (a read-write mount
/// of a read-only superblock is `ro`), so that `ignore_mount_opts` sees what telegraf sees.
fn effective_options(options: &str, mode: &str) -> String {
    if mode == "unknown" {
        return options.to_owned();
    }
    let rest = options.split(',').filter(|o| !matches!(*o, "rw" | "ro" | ""));
    std::iter::once(mode).chain(rest).collect::<Vec<_>>().join(",")
}

/// `HOST_MOUNT_PREFIX` as telegraf applies it: `statvfs` on prefix + mount point (a mount
/// point already under the prefix is used as it is) and the `path` tag without the prefix.
/// `false`: leave the mount out, prefix + mount point is itself one of `all` (the mount of the
/// prefix seen from inside, which would be reported twice).
pub(crate) fn apply_prefix(m: &mut Mount, prefix: &str, all: &std::collections::HashSet<&str>) -> bool {
    if prefix.is_empty() {
        return true;
    }
    let join = |a: &str, b: &str| {
        let b = b.trim_start_matches('/');
        match b.is_empty() {
            true => a.to_owned(),
            false => format!("{a}/{b}"),
        }
    };
    match m.mount_point.strip_prefix(prefix) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            m.stat_path = m.mount_point.clone();
            m.path = join("", rest);
            if m.path.is_empty() {
                m.path = "/".into();
            }
        }
        _ => {
            let joined = join(prefix, &m.mount_point);
            if all.contains(joined.as_str()) {
                return false;
            }
            m.stat_path = joined;
        }
    }
    true
}

/// Decodes mountinfo's `\NNN` octal escapes (space, tab, newline, backslash).
pub(crate) fn unescape_octal(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mountinfo file: `id parent maj:min root mountpoint opts [optional…] - fstype
/// source superopts`, with gopsutil's device and bind-mount reading (see [`Mount`]).
pub(crate) fn parse_mountinfo(text: &[u8]) -> Vec<Mount> {
    let mut out = Vec::new();
    let mut first_device: HashMap<String, String> = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        let mut m = Mount {
            mount_point: unescape_octal(fields[4]),
            options: String::from_utf8_lossy(fields[5]).into_owned(),
            fstype: unescape_octal(fields[sep + 1]),
            source: unescape_octal(fields[sep + 2]),
            super_options: fields
                .get(sep + 3)
                .map(|f| unescape_octal(f))
                .unwrap_or_default(),
            dev_id: String::from_utf8_lossy(fields[2]).into_owned(),
            root: unescape_octal(fields[3]),
            ..Default::default()
        };
        let from_path = m.source.starts_with('/');
        m.device_path = match from_path || m.root == "/" {
            true => m.source.clone(),
            false => m.root.clone(),
        };
        if let Some(first) = first_device.get(&m.dev_id) {
            m.device_path = first.clone();
        } else {
            first_device.insert(m.dev_id.clone(), m.device_path.clone());
        }
        // A btrfs subvolume mount has the subvolume as its root and is no bind mount.
        let subvol = m
            .super_options
            .split(',')
            .find_map(|o| o.strip_prefix("subvol="))
            .is_some_and(|v| v == m.root);
        m.options = effective_options(&m.options, m.mode());
        if from_path && m.root != "/" && !subvol {
            m.options.push_str(",bind");
        }
        m.stat_path = m.mount_point.clone();
        m.path = m.mount_point.clone();
        out.push(m);
    }
    out
}

/// Whether `statvfs` on a mount of this type answers from the kernel's memory (or at worst from a
/// local disk), never waiting on a network peer or a user-space daemon, so that it can be called
/// on the async worker. These keep their free-space counters in the in-memory superblock:
/// - local disk file systems: ext2/3/4, xfs, btrfs, f2fs, jfs, reiserfs, nilfs2, bcachefs, zfs
///   (the pool's in-memory space accounting), ubifs, the FAT/exFAT/NTFS (in-kernel ntfs3)/HFS/UDF
///   family and the read-only images (iso9660, squashfs, erofs, cramfs, romfs). vfat counts its
///   free clusters from the on-disk FAT once, on the first call after mounting: local I/O.
/// - memory file systems: tmpfs, ramfs, devtmpfs, hugetlbfs.
/// - kernel pseudo file systems (fixed or zero figures): proc, sysfs, devpts, cgroup, cgroup2,
///   mqueue, debugfs, tracefs, securityfs, pstore, bpf, configfs, fusectl (the FUSE control
///   directory, not a FUSE mount), binfmt_misc, nsfs, selinuxfs, rpc_pipefs and nfsd (the NFS
///   client's and server's control file systems, no remote peer), efivarfs (a firmware call).
/// - overlay with an upper layer: it reports the upper layer's figures, and the kernel refuses
///   a remote file system as upper layer. A lower-only overlay reports its top lower layer,
///   which may be remote: offloaded.
///
/// Everything else is offloaded: network and cluster file systems (nfs, nfs4, cifs, smb3, ceph,
/// 9p, glusterfs, virtiofs, ocfs2, gfs2, lustre …), FUSE (`fuse`, `fuse.*`, `fuseblk`: a stuck
/// daemon blocks the call), autofs (`statvfs` on the trigger mounts the target, often NFS) and
/// any type not named here.
pub(crate) fn answers_locally(fstype: &str, super_options: &str) -> bool {
    match fstype {
        "ext2" | "ext3" | "ext4" | "xfs" | "btrfs" | "f2fs" | "jfs" | "reiserfs" | "nilfs2"
        | "bcachefs" | "zfs" | "ubifs" | "vfat" | "msdos" | "exfat" | "ntfs3" | "hfs"
        | "hfsplus" | "udf" | "iso9660" | "squashfs" | "erofs" | "cramfs" | "romfs" => true,
        "tmpfs" | "ramfs" | "devtmpfs" | "hugetlbfs" => true,
        "proc" | "sysfs" | "devpts" | "cgroup" | "cgroup2" | "mqueue" | "debugfs" | "tracefs"
        | "securityfs" | "pstore" | "bpf" | "configfs" | "fusectl" | "binfmt_misc" | "nsfs"
        | "selinuxfs" | "rpc_pipefs" | "nfsd" | "efivarfs" => true,
        "overlay" => super_options.split(',').any(|o| o.starts_with("upperdir=")),
        _ => false,
    }
}

/// Whether `statvfs` on a mount of this type always reports 0 blocks, so that the mount is never
/// reported and need not be asked: kernel pseudo file systems whose statfs is the kernel's
/// generic `simple_statfs`, which fills in the type, block size and name length only. (Not
/// efivarfs, hugetlbfs, tmpfs: they report sizes.) Most mounts of a host are of these types
/// (14 of the 21 mounts on this machine: proc, sysfs, 2 devpts and 10 cgroup hierarchies).
pub(crate) fn always_empty(fstype: &str) -> bool {
    matches!(
        fstype,
        "proc"
            | "sysfs"
            | "devpts"
            | "cgroup"
            | "cgroup2"
            | "mqueue"
            | "debugfs"
            | "tracefs"
            | "securityfs"
            | "pstore"
            | "bpf"
            | "configfs"
            | "fusectl"
            | "binfmt_misc"
            | "nsfs"
            | "rpc_pipefs"
            | "nfsd"
    )
}

/// For each mount, whether its `statvfs` can run inline: its own type answers locally
/// ([`answers_locally`]) and the path to it crosses no mount that does not (looking up
/// `/mnt/nfs/sub` in a dead NFS server's directory hangs too, whatever is mounted on `sub`).
/// `mounts` is every mount of mountinfo, so that a remote one left out of the report still
/// counts.
pub(crate) fn inline_ok(mounts: &[Mount]) -> Vec<bool> {
    let remote: Vec<&str> = mounts
        .iter()
        .filter(|m| !answers_locally(&m.fstype, &m.super_options))
        .map(|m| m.mount_point.as_str())
        .collect();
    mounts
        .iter()
        .map(|m| {
            answers_locally(&m.fstype, &m.super_options)
                && !remote.iter().any(|r| at_or_under(&m.mount_point, r))
        })
        .collect()
}

/// `path` is `dir` or below it (whole components: `/mnt/a` is not under `/mnt/ab`).
fn at_or_under(path: &str, dir: &str) -> bool {
    dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The numbers of one `statvfs` call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub frsize: u64,
    pub files: u64,
    pub ffree: u64,
}

pub(crate) fn statvfs(path: &str) -> std::io::Result<Usage> {
    let c = std::ffi::CString::new(path)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a struct we own for statvfs to fill.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Usage {
        blocks: st.f_blocks as u64,
        bfree: st.f_bfree as u64,
        bavail: st.f_bavail as u64,
        frsize: if st.f_frsize > 0 {
            st.f_frsize as u64
        } else {
            st.f_bsize as u64
        },
        files: st.f_files as u64,
        ffree: st.f_ffree as u64,
    })
}

/// The `disk` line for one mount, or `None` for a file system without blocks. The numbers are
/// whatever the file system says (a FUSE daemon or a network server chooses them): byte counts
/// saturate rather than overflow.
pub(crate) fn metric(ts: i64, m: &Mount, u: &Usage) -> Option<Metric> {
    let total = u.blocks.saturating_mul(u.frsize);
    if total == 0 {
        return None;
    }
    let free = u.bavail.saturating_mul(u.frsize);
    let used = u.blocks.saturating_sub(u.bfree).saturating_mul(u.frsize);
    let used_percent = if used > 0 || free > 0 {
        100.0 * used as f64 / (used as f64 + free as f64)
    } else {
        0.0
    };
    let inodes_used = u.files.saturating_sub(u.ffree);
    let inodes_pct = if u.files > 0 {
        100.0 * inodes_used as f64 / u.files as f64
    } else {
        0.0
    };
    let mut metric = Metric::new("disk", ts)
        .tag("path", m.path.clone())
        .tag("device", m.device())
        .tag("fstype", m.fstype.clone())
        .tag("mode", m.mode());
    if let Some(l) = &m.label {
        metric = metric.tag("label", l.clone());
    }
    Some(
        metric
            .field("total", total)
            .field("free", free)
            .field("used", used)
            .field("used_percent", used_percent)
            .field("inodes_total", u.files)
            .field("inodes_free", u.ffree)
            .field("inodes_used", inodes_used)
            .field("inodes_used_percent", inodes_pct),
    )
}

/// gopsutil's choice: init's mount table (`/proc/1/mountinfo`, the host's when `HOST_PROC`
/// points at the host's /proc), else the agent's own (`/proc/self/mountinfo`: pid 1 not
/// readable).
fn open_mountinfo() -> std::io::Result<(String, std::fs::File)> {
    let init = host::path("/proc/1/mountinfo").into_owned();
    match std::fs::File::open(&init) {
        Ok(f) => Ok((init, f)),
        Err(_) => {
            let own = host::path("/proc/self/mountinfo").into_owned();
            let f = std::fs::File::open(&own)?;
            Ok((own, f))
        }
    }
}

pub(crate) struct Disk {
    config: Config,
    /// The mountinfo file (see [`open_mountinfo`]), kept open: it is both re-read and polled
    /// for changes.
    mountinfo: Option<std::fs::File>,
    mountinfo_path: String,
    buf: Vec<u8>,
    /// The mounts to report (wanted, visible) with whether each is asked inline, from the last
    /// read of mountinfo; `None` = read it again.
    targets: Option<Vec<(Mount, bool)>>,
    /// statvfs calls that timed out and have not returned yet, by mount point.
    hung: HashMap<String, JoinHandle<Vec<std::io::Result<Usage>>>>,
}

impl Disk {
    pub(crate) fn new(config: Config) -> Self {
        Disk {
            config,
            mountinfo: None,
            mountinfo_path: host::path("/proc/1/mountinfo").into_owned(),
            buf: Vec::with_capacity(8192),
            targets: None,
            hung: HashMap::new(),
        }
    }

    fn wanted(&self, m: &Mount) -> bool {
        if !self.config.mount_points.is_empty() && !self.config.mount_points.matches(&m.mount_point)
        {
            return false;
        }
        // autofs trigger mounts are never asked (telegraf too): it would mount the target.
        if m.fstype == "autofs" || self.config.ignore_fs.contains(&m.fstype) {
            return false;
        }
        !m.options
            .split(',')
            .any(|o| self.config.ignore_mount_opts.iter().any(|i| i == o))
    }

    /// The mounts to report, from mountinfo read again only when the mount table changed.
    ///
    /// The kernel flags an open mountinfo file with POLLPRI (and POLLERR) after every mount,
    /// unmount or remount in the agent's mount namespace since the file's last poll (proc(5)).
    /// One `poll` with no wait replaces reading the file (the kernel formats every mount: ~38 µs
    /// here for 21 mounts) and parsing it (~13 µs). A change between the poll and the read is
    /// in what is read and flagged again at the next poll: nothing is missed.
    fn targets(&mut self) -> std::io::Result<Vec<(Mount, bool)>> {
        use std::os::fd::AsRawFd;
        let file = match &self.mountinfo {
            Some(f) => f,
            None => {
                self.targets = None;
                let (path, file) = open_mountinfo()?;
                self.mountinfo_path = path;
                self.mountinfo.insert(file)
            }
        };
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        if rc != 0 {
            // Changed, or poll failed: read again.
            self.targets = None;
        }
        if let Some(t) = self.targets.take() {
            return Ok(t);
        }
        if let Err(e) = read_bytes_at_zero(file, &mut self.buf) {
            self.mountinfo = None;
            return Err(e);
        }
        let mounts = parse_mountinfo(&self.buf);
        let inline = inline_ok(&mounts);
        let all: std::collections::HashSet<&str> =
            mounts.iter().map(|m| m.mount_point.as_str()).collect();
        // A mount point mounted over keeps only its last (visible) mount.
        let mut seen = std::collections::HashSet::new();
        let mut visible: Vec<(Mount, bool)> = Vec::with_capacity(mounts.len());
        for (m, inline) in mounts.iter().zip(inline).rev() {
            if self.wanted(m) && seen.insert(m.mount_point.as_str()) && !always_empty(&m.fstype)
            {
                let mut m = m.clone();
                if apply_prefix(&mut m, host::mount_prefix(), &all) {
                    resolve_device(&mut m);
                    visible.push((m, inline));
                }
            }
        }
        visible.reverse();
        Ok(visible)
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let visible = self
            .targets()
            .map_err(|e| GatherError::io(&self.mountinfo_path, e))?;

        // Hung calls that have returned since: forget them (their result is stale).
        self.hung.retain(|_, h| !h.is_finished());

        // Results in mount order: local mounts' now, the others' after the blocking task.
        let mut todo = Vec::with_capacity(visible.len());
        let mut results: Vec<Option<std::io::Result<Usage>>> = Vec::with_capacity(visible.len());
        let mut offload = Vec::new();
        for (m, inline) in &visible {
            if self.hung.contains_key(&m.mount_point) {
                let what = format!("statvfs {}", m.mount_point);
                acc.partial_error(&what,
                    &"previous call has not returned (hung file system?); not retried until it does",
                );
                continue;
            }
            if *inline {
                results.push(Some(statvfs(&m.stat_path)));
            } else {
                offload.push(todo.len());
                results.push(None);
            }
            todo.push(m);
        }
        if !offload.is_empty() {
            // One blocking task walks all those mounts (one thread hand-off per gather instead
            // of one per mount); `progress` tells which mount it is on if it does not come back
            // in time.
            let paths: Vec<String> = offload
                .iter()
                .map(|&i| todo[i].stat_path.clone())
                .collect();
            let progress = Arc::new(AtomicUsize::new(0));
            let p2 = progress.clone();
            let mut handle = tokio::task::spawn_blocking(move || {
                paths
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        p2.store(i, Ordering::Release);
                        statvfs(p)
                    })
                    .collect::<Vec<_>>()
            });
            match tokio::time::timeout(self.config.timeout, &mut handle).await {
                Ok(Ok(done)) => {
                    for (&i, r) in offload.iter().zip(done) {
                        results[i] = Some(r);
                    }
                }
                Ok(Err(join)) => acc.partial_error("statvfs", &join),
                Err(_) => {
                    // The task is stuck in the mount it was on: that mount is left out until
                    // the call returns; the others are measured again next gather.
                    let i = offload[progress.load(Ordering::Acquire).min(offload.len() - 1)];
                    let stuck = &todo[i];
                    let what = format!("statvfs {}", stuck.mount_point);
                    acc.partial_error(&what,
                        &format!("no answer within {:?}", self.config.timeout),
                    );
                    self.hung.insert(stuck.mount_point.clone(), handle);
                }
            }
        }
        for (m, r) in todo.iter().zip(results) {
            let Some(r) = r else { continue };
            match r {
                Ok(u) => {
                    if acc.errors_logged() {
                        acc.clear_error(&format!("statvfs {}", m.mount_point));
                    }
                    if let Some(metric) = metric(ts, m, &u) {
                        acc.add(metric);
                    }
                }
                // A mount that vanished since mountinfo was read is not an error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    let what = format!("statvfs {}", m.mount_point);
                    acc.partial_error(&what, &e);
                }
            }
        }
        self.targets = Some(visible);
        Ok(())
    }
}

super::ticked_input!(Disk, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fixture() {
        let mounts = parse_mountinfo(include_bytes!("../../tests/fixtures/disk/mountinfo"));
        let root = mounts.iter().find(|m| m.mount_point == "/").unwrap();
        assert_eq!(root.fstype, "ext4");
        assert_eq!(root.source, "/dev/vda");
        assert_eq!(root.mode(), "rw");
        assert_eq!(root.device(), "vda");
        assert!(mounts.iter().any(|m| m.fstype == "proc"));
        let ro = mounts.iter().find(|m| m.options.starts_with("ro")).unwrap();
        assert_eq!(ro.mode(), "ro");
    }

    #[test]
    fn octal_escapes_and_optional_fields() {
        let line = b"36 35 98:0 /mnt1 /mnt/a\\040b,c=d\\011e rw,noatime master:1 shared:7 - ext3 /dev/my\\040disk rw,errors=continue\n";
        let m = &parse_mountinfo(line)[0];
        assert_eq!(m.mount_point, "/mnt/a b,c=d\te");
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/my disk");
        assert_eq!(m.device(), "my disk");
        assert_eq!(unescape_octal(b"a\\134b\\"), "a\\b\\");
        assert_eq!(unescape_octal(b"\\04"), "\\04");
    }

    /// gopsutil's reading: bind mounts get the `bind` option and the first mount's device, a
    /// btrfs subvolume is no bind, a pseudo file system's device is its root, and the mode is
    /// read-only when the superblock is.
    #[test]
    fn devices_binds_and_modes_as_gopsutil() {
        let text = b"1 0 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n\
2 1 8:1 /srv/data /data rw - ext4 /dev/sda1 rw\n\
3 1 0:50 /@home /home rw - btrfs /dev/sdb1 rw,subvol=/@home\n\
4 1 0:4 net:[4026531840] /run/netns/x rw - nsfs nsfs rw\n\
5 1 0:30 / /tmp rw - tmpfs tmpfs rw\n\
6 1 8:2 / /boot rw - ext4 /dev/sda2 ro\n\
7 1 253:0 / /var rw - xfs /dev/mapper/vg-var rw\n\
8 1 0:31 / /x rw - tmpfs none rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m[0].options, "rw,relatime");
        assert_eq!((m[1].options.as_str(), m[1].device().as_str()), ("rw,bind", "sda1"));
        assert_eq!((m[2].options.as_str(), m[2].device().as_str()), ("rw", "sdb1"));
        assert_eq!(m[3].device(), "net:[4026531840]");
        assert_eq!(m[4].device(), "tmpfs");
        assert_eq!((m[5].mode(), m[0].mode()), ("ro", "rw"));
        assert_eq!(m[5].options, "ro", "the superblock's ro is the mount's");
        assert_eq!(m[7].device(), "tmpfs", "source none: the fstype");
        // Without such a device-mapper link the name stays (the label lookup finds nothing).
        let mut var = m[6].clone();
        resolve_device(&mut var);
        assert_eq!(var.device(), "mapper/vg-var");
    }

    #[test]
    fn mount_prefix_as_telegraf() {
        let mut mounts = parse_mountinfo(
            b"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n2 1 8:1 / /hostfs rw - ext4 /dev/sda1 rw\n\
3 1 8:2 / /hostfs/boot rw - ext4 /dev/sda2 rw\n4 1 8:3 / /home rw - ext4 /dev/sda3 rw\n",
        );
        let all: std::collections::HashSet<String> =
            mounts.iter().map(|m| m.mount_point.clone()).collect();
        let all = all.iter().map(String::as_str).collect();
        let got: Vec<_> = mounts
            .iter_mut()
            .filter_map(|m| {
                apply_prefix(m, "/hostfs", &all).then(|| (m.stat_path.clone(), m.path.clone()))
            })
            .collect();
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            got,
            [
                s("/hostfs", "/"),
                s("/hostfs/boot", "/boot"),
                s("/hostfs/home", "/home")
            ],
            "/ → /hostfs is a mount itself: left out, its inside view reported once"
        );
    }

    #[test]
    fn usage_math_like_df() {
        let m = Mount {
            mount_point: "/".into(),
            fstype: "ext4".into(),
            source: "/dev/vda".into(),
            options: "rw".into(),
            super_options: "rw".into(),
            device_path: "/dev/vda".into(),
            path: "/".into(),
            ..Default::default()
        };
        let u = Usage {
            blocks: 1000,
            bfree: 300,
            bavail: 250,
            frsize: 4096,
            files: 100,
            ffree: 75,
        };
        let metric = metric(1, &m, &u).unwrap();
        let f = |k: &str| {
            metric
                .fields
                .iter()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .clone()
        };
        use crate::output::FieldValue::*;
        assert_eq!(f("total"), UInt(4_096_000));
        assert_eq!(f("used"), UInt(700 * 4096));
        assert_eq!(f("free"), UInt(250 * 4096));
        assert_eq!(f("used_percent"), Float(100.0 * 700.0 / 950.0));
        assert_eq!(f("inodes_used"), UInt(25));
        assert_eq!(f("inodes_used_percent"), Float(25.0));
        assert!(super::metric(1, &m, &Usage { blocks: 0, ..u }).is_none());
    }

    #[test]
    fn which_file_systems_are_asked_inline() {
        for t in [
            "ext4", "xfs", "btrfs", "zfs", "vfat", "tmpfs", "devtmpfs", "proc", "sysfs", "cgroup2",
            "squashfs", "fusectl", "nfsd",
        ] {
            assert!(answers_locally(t, "rw"), "{t}");
        }
        for t in [
            "nfs",
            "nfs4",
            "cifs",
            "smb3",
            "ceph",
            "9p",
            "virtiofs",
            "fuse",
            "fuse.sshfs",
            "fuse.glusterfs",
            "fuseblk",
            "davfs",
            "autofs",
            "ocfs2",
            "gfs2",
            "lustre",
            "",
            "aufs",
            "made-up",
        ] {
            assert!(!answers_locally(t, "rw"), "{t}");
        }
        assert!(answers_locally(
            "overlay",
            "rw,lowerdir=/l,upperdir=/u,workdir=/w"
        ));
        assert!(!answers_locally("overlay", "ro,lowerdir=/a:/b"));
    }

    /// The types left out unasked do report 0 blocks here (those this machine has).
    #[test]
    fn always_empty_types_report_no_blocks() {
        let all = parse_mountinfo(&std::fs::read("/proc/self/mountinfo").unwrap());
        let mut asked = 0;
        for m in all.iter().filter(|m| always_empty(&m.fstype)) {
            if let Ok(u) = statvfs(&m.mount_point) {
                assert_eq!(u.blocks, 0, "{m:?}");
                asked += 1;
            }
        }
        assert!(asked >= 3, "proc, sysfs, devpts at least: {all:?}");
        assert!(!always_empty("tmpfs") && !always_empty("efivarfs") && !always_empty("ext4"));
    }

    #[test]
    fn a_local_mount_below_a_remote_one_is_offloaded() {
        let m = |mount_point: &str, fstype: &str| Mount {
            mount_point: mount_point.into(),
            fstype: fstype.into(),
            source: "x".into(),
            options: "rw".into(),
            super_options: "rw".into(),
            ..Default::default()
        };
        let mounts = [
            m("/", "ext4"),
            m("/proc", "proc"),
            m("/mnt/nfs", "nfs4"),
            m("/mnt/nfs/disk", "ext4"),
            m("/mnt/nfsx", "ext4"),
            m("/srv", "cifs"),
            m("/srv", "tmpfs"), // mounted over the cifs mount: its path still ends there
            m("/home", "xfs"),
        ];
        assert_eq!(
            inline_ok(&mounts),
            [true, true, false, false, true, false, false, true]
        );
        // A network root: every path crosses it.
        assert_eq!(
            inline_ok(&[m("/", "nfs"), m("/boot", "ext4")]),
            [false, false]
        );
        // This machine's mounts (the fixture) are all local.
        let fixture = parse_mountinfo(include_bytes!("../../tests/fixtures/disk/mountinfo"));
        assert!(inline_ok(&fixture).iter().all(|ok| *ok), "{fixture:?}");
        assert!(
            fixture
                .iter()
                .find(|m| m.mount_point == "/")
                .is_some_and(|m| m.super_options.starts_with("rw,discard"))
        );
    }

    #[test]
    fn statvfs_root() {
        let u = statvfs("/").unwrap();
        assert!(u.blocks > 0 && u.frsize > 0);
        assert!(statvfs("/definitely/not/here").is_err());
    }

    #[tokio::test]
    async fn filters() {
        let cfg = resolve(Raw {
            mount_points: Some(toml::Spanned::new(0..0, vec!["/".into()])),
            ..Default::default()
        })
        .unwrap();
        let mut d = Disk::new(cfg);
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        d.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("disk,path=/,device="), "{lines:?}");
    }

    /// The mount list is kept between gathers, and a mount, a remount and an unmount made
    /// after it was read are each seen by the next gather.
    #[tokio::test]
    async fn mount_table_changes_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path().to_str().unwrap().to_owned();
        let mut d = Disk::new(Config {
            mount_points: Globs::new(&[mp.clone(), "/".into()]).unwrap(),
            ignore_fs: vec![],
            ignore_mount_opts: vec![],
            timeout: Duration::from_secs(5),
        });
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        let mut gather = async || {
            d.gather(&mut t.acc).await.unwrap();
            let lines = t.lines();
            assert!(
                lines.iter().any(|l| l.starts_with("disk,path=/,")),
                "{lines:?}"
            );
            lines
                .into_iter()
                .find(|l| l.starts_with(&format!("disk,path={mp},")))
        };
        assert_eq!(gather().await, None);
        assert_eq!(gather().await, None);
        let sh = |cmd: String| {
            let st = std::process::Command::new("sh")
                .args(["-c", &cmd])
                .status()
                .unwrap();
            assert!(st.success(), "{cmd}");
        };
        struct Unmount(String);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount")
                    .args(["-l", &self.0])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        sh(format!("mount -t tmpfs -o size=8m tmpfs '{mp}'"));
        let guard = Unmount(mp.clone());
        let l = gather().await.expect("the new mount is reported");
        assert!(
            l.contains("fstype=tmpfs,mode=rw ") && l.contains("total=8388608i"),
            "{l}"
        );
        sh(format!("mount -o remount,ro '{mp}'"));
        let l = gather().await.expect("still mounted");
        assert!(l.contains(",mode=ro "), "{l}");
        sh(format!("umount '{mp}'"));
        drop(guard);
        assert_eq!(gather().await, None);
    }

    /// Undoes the FUSE mount of [`hung_fuse_mount_is_offloaded`] whatever happens.
    struct FuseGuard {
        daemon: std::process::Child,
        mount_point: std::path::PathBuf,
    }

    impl Drop for FuseGuard {
        fn drop(&mut self) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.daemon.id() as libc::pid_t, libc::SIGCONT) };
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }

    /// A FUSE mount whose daemon is stopped (what a dead network server looks like to
    /// `statvfs`): its call runs on the blocking pool and times out, while the local `/` next to
    /// it is still reported by every gather, and the mount is asked again once the call returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hung_fuse_mount_is_offloaded() {
        use std::time::Instant;
        let dir = tempfile::tempdir().unwrap();
        let (src, mp) = (dir.path().join("src"), dir.path().join("mnt"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&mp).unwrap();
        // bindfs: a FUSE file system in one process (tests/packages.txt).
        let daemon = std::process::Command::new("bindfs")
            .arg("-f")
            .arg(&src)
            .arg(&mp)
            .spawn()
            .expect("bindfs (Debian package bindfs) runs");
        let guard = FuseGuard {
            daemon,
            mount_point: mp.clone(),
        };
        let mp_s = mp.to_str().unwrap().to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        let fuse = loop {
            let all = parse_mountinfo(&std::fs::read("/proc/self/mountinfo").unwrap());
            if let Some(m) = all.into_iter().find(|m| m.mount_point == mp_s) {
                break m;
            }
            assert!(Instant::now() < deadline, "bindfs did not mount");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(fuse.fstype.starts_with("fuse"), "{fuse:?}");
        assert!(!answers_locally(&fuse.fstype, &fuse.super_options));

        let timeout = Duration::from_millis(300);
        let mut d = Disk::new(Config {
            mount_points: Globs::new(&["/".into(), mp_s.clone()]).unwrap(),
            ignore_fs: vec![],
            ignore_mount_opts: vec![],
            timeout,
        });
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        let errors = |t: &crate::modules::hostutil::testing::TestAcc| {
            t.stats.gather_errors.load(Ordering::Relaxed)
        };
        let has = |lines: &[String], path: &str| {
            lines
                .iter()
                .any(|l| l.starts_with(&format!("disk,path={path},")))
        };
        d.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert!(has(&lines, "/") && has(&lines, &mp_s), "{lines:?}");
        assert_eq!(errors(&t), 0);

        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(guard.daemon.id() as libc::pid_t, libc::SIGSTOP) };
        let start = Instant::now();
        d.gather(&mut t.acc).await.unwrap();
        let took = start.elapsed();
        let lines = t.lines();
        // It waits the timeout for the stopped daemon, and not much more: the rest of the
        // gather is statvfs on local mounts (microseconds); 5x leaves a loaded machine room.
        assert!(took >= timeout && took < timeout * 5, "{took:?}");
        assert!(has(&lines, "/") && !has(&lines, &mp_s), "{lines:?}");
        assert_eq!(errors(&t), 1);
        // Known to hang: not asked, no wait.
        let start = Instant::now();
        d.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        // The wait it must not do is the whole timeout; what remains takes microseconds.
        assert!(start.elapsed() < timeout, "{:?}", start.elapsed());
        assert!(has(&lines, "/") && !has(&lines, &mp_s), "{lines:?}");
        assert_eq!(errors(&t), 2);

        // SAFETY: as above.
        unsafe { libc::kill(guard.daemon.id() as libc::pid_t, libc::SIGCONT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            d.gather(&mut t.acc).await.unwrap();
            let lines = t.lines();
            if has(&lines, &mp_s) {
                assert!(has(&lines, "/"), "{lines:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the FUSE mount is not asked again: {lines:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(guard);
    }
}
