//! telegraf's (gopsutil's) `HOST_PROC`, `HOST_SYS`, `HOST_ETC`, `HOST_RUN`, `HOST_VAR`,
//! `HOST_DEV` and `HOST_MOUNT_PREFIX`: when the agent runs in a container with the host's trees
//! mounted elsewhere (say `/hostfs/proc`), these variables say where. Every host input builds its paths with [`path`], so one mapping
//! serves them all. The variables are read once, at the first use: like telegraf, changing them
//! needs a restart, not a reload.

use std::borrow::Cow;
use std::sync::OnceLock;

/// The roots in the order they are tried; each is replaced as a whole path component.
/// `/var` is for utmp (`system`'s users, gopsutil reads `HOST_VAR/run/utmp`), `/dev` for the
/// device links `disk` and `diskio` resolve.
const ROOTS: [(&str, &str); 6] = [
    ("/proc", "HOST_PROC"),
    ("/sys", "HOST_SYS"),
    ("/etc", "HOST_ETC"),
    ("/run", "HOST_RUN"),
    ("/var", "HOST_VAR"),
    ("/dev", "HOST_DEV"),
];

fn prefixes() -> &'static [Option<String>; 6] {
    static P: OnceLock<[Option<String>; 6]> = OnceLock::new();
    P.get_or_init(|| {
        ROOTS.map(|(_, var)| {
            std::env::var(var)
                .ok()
                .map(|v| v.trim_end_matches('/').to_owned())
                .filter(|v| !v.is_empty())
        })
    })
}

/// `p` (an absolute path under /proc, /sys, /etc, /run, /var or /dev) with its root replaced
/// by the matching `HOST_*` variable when that is set; any other path unchanged.
pub(crate) fn path(p: &str) -> Cow<'_, str> {
    swap_root(p, true)
}

/// The inverse of [`path`]: a mapped path back to the path it stands for (`/hostfs/sys/x` →
/// `/sys/x` with `HOST_SYS=/hostfs/sys`), for tags that name what the user configured.
pub(crate) fn unmap(p: &str) -> Cow<'_, str> {
    swap_root(p, false)
}

/// `p` with a root replaced by its `HOST_*` value (`to_host`) or the other way round.
fn swap_root(p: &str, to_host: bool) -> Cow<'_, str> {
    for ((root, _), prefix) in ROOTS.iter().zip(prefixes()) {
        let Some(prefix) = prefix else { continue };
        let (from, to) = match to_host {
            true => (*root, prefix.as_str()),
            false => (prefix.as_str(), *root),
        };
        if under(p, from) {
            return Cow::Owned(format!("{to}{}", &p[from.len()..]));
        }
    }
    Cow::Borrowed(p)
}

/// Whether the variable of `root` ("/proc", "/sys", …) is set: an input that has a faster way
/// than reading that tree (netstat's netlink) reads the files instead when it is.
pub(crate) fn is_mapped(root: &str) -> bool {
    ROOTS
        .iter()
        .zip(prefixes())
        .any(|((r, _), p)| *r == root && p.is_some())
}

/// telegraf's `diskio` rule for its `/dev`, `/run` and `/sys` (a device's udev data, links
/// and sysfs attributes): `HOST_DEV`/`HOST_RUN`/`HOST_SYS` when set, else under `HOST_ROOT`,
/// else under `HOST_MOUNT_PREFIX`, else the path itself.
pub(crate) fn device_path(p: &str) -> Cow<'_, str> {
    let mapped = path(p);
    if matches!(mapped, Cow::Owned(_)) || !["/dev", "/run", "/sys"].iter().any(|r| under(p, r)) {
        return mapped;
    }
    static ROOT: OnceLock<String> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        std::env::var("HOST_ROOT")
            .map(|v| v.trim_end_matches('/').to_owned())
            .unwrap_or_default()
    });
    match (root.as_str(), mount_prefix()) {
        ("", "") => mapped,
        ("", prefix) | (prefix, _) => Cow::Owned(format!("{prefix}{p}")),
    }
}

/// `p` is `root` or below it (whole components).
fn under(p: &str, root: &str) -> bool {
    p.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `HOST_MOUNT_PREFIX`: where the host's root file system is mounted, "" when unset. `disk`
/// calls `statvfs` on prefix + mount point and reports the mount point without the prefix.
pub(crate) fn mount_prefix() -> &'static str {
    static P: OnceLock<String> = OnceLock::new();
    P.get_or_init(|| {
        std::env::var("HOST_MOUNT_PREFIX")
            .map(|v| v.trim_end_matches('/').to_owned())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn unset_variables_leave_paths_alone() {
        // The test process does not set HOST_*; a set variable is tested on the real binary
        // (tests/integration), since the values are read once per process.
        if std::env::vars().any(|(k, _)| k.starts_with("HOST_")) {
            return;
        }
        assert_eq!(super::path("/proc/stat"), "/proc/stat");
        assert_eq!(super::path("/procfoo"), "/procfoo");
        assert_eq!(super::mount_prefix(), "");
        assert_eq!(
            super::device_path("/run/udev/data/b8:0"),
            "/run/udev/data/b8:0"
        );
        assert!(!super::is_mapped("/proc"));
    }
}
