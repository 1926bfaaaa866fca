//! telegraf's `HOST_PROC`, `HOST_SYS`, `HOST_ETC`, `HOST_RUN` and `HOST_MOUNT_PREFIX`: when the
//! agent runs in a container with the host's trees mounted elsewhere (say `/hostfs/proc`),
//! these variables say where. Every host input builds its paths with [`path`], so one mapping
//! serves them all. The variables are read once, at the first use: like telegraf, changing them
//! needs a restart, not a reload.

use std::borrow::Cow;
use std::sync::OnceLock;

/// The roots in the order they are tried; each is replaced as a whole path component.
const ROOTS: [(&str, &str); 4] = [
    ("/proc", "HOST_PROC"),
    ("/sys", "HOST_SYS"),
    ("/etc", "HOST_ETC"),
    ("/run", "HOST_RUN"),
];

fn prefixes() -> &'static [Option<String>; 4] {
    static P: OnceLock<[Option<String>; 4]> = OnceLock::new();
    P.get_or_init(|| {
        ROOTS.map(|(_, var)| {
            std::env::var(var)
                .ok()
                .map(|v| v.trim_end_matches('/').to_owned())
                .filter(|v| !v.is_empty())
        })
    })
}

/// `p` (an absolute path under /proc, /sys, /etc or /run) with its root replaced by the
/// matching `HOST_*` variable when that is set; any other path unchanged.
pub(crate) fn path(p: &str) -> Cow<'_, str> {
    for ((root, _), prefix) in ROOTS.iter().zip(prefixes()) {
        let Some(prefix) = prefix else { continue };
        if let Some(rest) = p.strip_prefix(root)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return Cow::Owned(format!("{prefix}{rest}"));
        }
    }
    Cow::Borrowed(p)
}

/// `HOST_MOUNT_PREFIX`: where the host's root file system is mounted, "" when unset. `disk`
/// calls `statvfs` on prefix + mount point and reports the mount point without the prefix.
#[allow(dead_code, reason = "disk takes it up with HOST_MOUNT_PREFIX")]
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
    }
}
