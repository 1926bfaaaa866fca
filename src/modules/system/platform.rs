//! `include = ["os"]` and `["dmi"]` of telegraf's `system` input: the release files under
//! `/etc` read as gopsutil reads them (the first of its files that exists decides the
//! platform), `uname`, and the DMI attributes of `/sys/class/dmi/id` (ghw's reading: a file
//! that cannot be read is `"unknown"`).

use crate::modules::procfs::host;
use crate::output::{Key, Metric};

/// (platform, platform_family, platform_version) from the release files `etc` returns (the
/// content of `/etc/<name>` when it exists and is not empty).
pub(crate) fn platform(etc: &dyn Fn(&str) -> Option<String>) -> (String, String, String) {
    let lsb = etc("lsb-release").unwrap_or_default();
    let lsb_value = |key: &str| {
        lsb.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k == key).then(|| v.split('=').next().unwrap_or("").replace('"', ""))
        })
    };
    let (lsb_id, lsb_release) = (
        lsb_value("DISTRIB_ID").unwrap_or_default(),
        lsb_value("DISTRIB_RELEASE").unwrap_or_default(),
    );
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_owned();
    let (mut platform, version) = if let Some(c) = etc("oracle-release") {
        ("oracle".to_owned(), redhatish_version(&c))
    } else if let Some(c) = etc("enterprise-release") {
        ("oracle".to_owned(), redhatish_version(&c))
    } else if let Some(c) = etc("slackware-version") {
        let c = c.lines().collect::<String>().to_lowercase();
        ("slackware".to_owned(), c.replacen("slackware ", "", 1))
    } else if let Some(c) = etc("debian_version") {
        match lsb_id.as_str() {
            "Ubuntu" => ("ubuntu".to_owned(), lsb_release),
            "LinuxMint" => ("linuxmint".to_owned(), lsb_release),
            "Kylin" | "uos" | "Deepin" => (lsb_id.clone(), lsb_release),
            "\"Cumulus Linux\"" => ("cumuluslinux".to_owned(), lsb_release),
            _ => {
                let p = match std::path::Path::new("/usr/bin/raspi-config").exists() {
                    true => "raspbian",
                    false => "debian",
                };
                (p.to_owned(), first_line(&c))
            }
        }
    } else if let Some(c) = etc("neokylin-release")
        .or_else(|| etc("redhat-release"))
        .or_else(|| etc("system-release"))
    {
        (redhatish_platform(&c), redhatish_version(&c))
    } else if let Some(c) = etc("gentoo-release") {
        ("gentoo".to_owned(), redhatish_version(&c))
    } else if let Some(c) = etc("SuSE-release") {
        let p = match c.to_lowercase().contains("opensuse") {
            true => "opensuse",
            false => "suse",
        };
        (p.to_owned(), suse_version(&c))
    } else if etc("arch-release").is_some() {
        ("arch".to_owned(), lsb_release)
    } else if let Some(c) = etc("alpine-release") {
        ("alpine".to_owned(), first_line(&c))
    } else if let Some(c) = etc("os-release") {
        let value = |key: &str| {
            c.lines().find_map(|l| {
                let (k, v) = l.split_once('=')?;
                let v = v.split('=').next().unwrap_or("");
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                (k == key).then(|| v.to_owned())
            })
        };
        let id = value("ID").unwrap_or_default();
        let id = if id == "amzn" { "amazon".to_owned() } else { id };
        (id, value("VERSION_ID").unwrap_or_default())
    } else {
        match lsb_id.as_str() {
            "RedHat" => ("redhat".to_owned(), lsb_release),
            "Amazon" => ("amazon".to_owned(), lsb_release),
            "ScientificSL" => ("scientific".to_owned(), lsb_release),
            "XenServer" => ("xenserver".to_owned(), lsb_release),
            "" => (String::new(), String::new()),
            other => (other.to_lowercase(), lsb_release),
        }
    };
    platform = platform.trim_matches('"').to_owned();
    let family = family(&platform).to_owned();
    (platform, family, version)
}

/// gopsutil's platform → family table.
fn family(platform: &str) -> &'static str {
    match platform {
        "debian" | "ubuntu" | "linuxmint" | "raspbian" | "Kylin" | "cumuluslinux" | "uos"
        | "Deepin" => "debian",
        "fedora" => "fedora",
        "oracle" | "centos" | "redhat" | "scientific" | "enterpriseenterprise" | "amazon"
        | "xenserver" | "cloudlinux" | "ibm_powerkvm" | "rocky" | "almalinux" => "rhel",
        "suse" | "opensuse" | "opensuse-leap" | "opensuse-tumbleweed"
        | "opensuse-tumbleweed-kubic" | "sles" | "sled" | "caasp" => "suse",
        "gentoo" => "gentoo",
        "slackware" => "slackware",
        "arch" => "arch",
        "exherbo" => "exherbo",
        "alpine" => "alpine",
        "coreos" => "coreos",
        "solus" => "solus",
        "neokylin" => "neokylin",
        "anolis" => "anolis",
        _ => "",
    }
}

/// `release 9.3` → `9.3` (lower-cased text; `rawhide` when it says so).
fn redhatish_version(c: &str) -> String {
    let c = c.lines().collect::<String>().to_lowercase();
    if c.contains("rawhide") {
        return "rawhide".into();
    }
    let Some(at) = c.find("release ") else {
        return String::new();
    };
    let rest = &c[at + "release ".len()..];
    let mut chars = rest.char_indices();
    match chars.next() {
        Some((_, ch)) if ch.is_alphanumeric() || ch == '_' => {}
        _ => return String::new(),
    }
    let end = chars
        .find(|(_, ch)| !(ch.is_ascii_digit() || *ch == '.'))
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].to_owned()
}

fn redhatish_platform(c: &str) -> String {
    let c = c.lines().collect::<String>().to_lowercase();
    if c.contains("red hat") {
        return "redhat".into();
    }
    c.split(' ').next().unwrap_or("").to_owned()
}

fn suse_version(c: &str) -> String {
    let mut v = String::new();
    for l in c.lines() {
        if let Some(x) = l.split("VERSION = ").nth(1) {
            v = x.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        } else if let Some(x) = l.split("PATCHLEVEL = ").nth(1) {
            let p: String = x.chars().take_while(char::is_ascii_digit).collect();
            v = format!("{v}.{p}");
        }
    }
    v
}

/// A release file under `/etc` (`HOST_ETC`), when it exists and is not empty.
pub(crate) fn read_etc(name: &str) -> Option<String> {
    let path = host::path(&format!("/etc/{name}")).into_owned();
    std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
}

/// `uname`'s machine and release (`x86_64`, `6.1.0-18-amd64`).
pub(crate) fn uname() -> Option<(String, String)> {
    // SAFETY: an all-zero utsname is a valid value of this plain C struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a struct we own for uname(2) to fill.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let s = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Some((s(&u.machine), s(&u.release)))
}

/// The `os` fields (strings, telegraf's names).
pub(crate) fn os_fields() -> Vec<(Key, String)> {
    let (platform, family, version) = platform(&read_etc);
    let (arch, kernel) = uname().unwrap_or_else(|| (std::env::consts::ARCH.to_owned(), String::new()));
    vec![
        (Key::Borrowed("os"), "linux".to_owned()),
        (Key::Borrowed("arch"), arch),
        (Key::Borrowed("platform"), platform),
        (Key::Borrowed("platform_family"), family),
        (Key::Borrowed("platform_version"), version),
        (Key::Borrowed("kernel_version"), kernel),
    ]
}

/// Field name and `/sys/class/dmi/id` attribute of each `dmi` field; `chassis_type` (the
/// description) is derived from the code.
const DMI: [(&str, &str); 20] = [
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("bios_date", "bios_date"),
    ("board_vendor", "board_vendor"),
    ("board_product", "board_name"),
    ("board_version", "board_version"),
    ("board_serial", "board_serial"),
    ("board_asset_tag", "board_asset_tag"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_type_code", "chassis_type"),
    ("chassis_version", "chassis_version"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("product_vendor", "sys_vendor"),
    ("product_name", "product_name"),
    ("product_family", "product_family"),
    ("product_version", "product_version"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
];

/// SMBIOS (DSP0134) chassis type names by code, 1 to 36.
const CHASSIS_TYPES: [&str; 36] = [
    "Other",
    "Unknown",
    "Desktop",
    "Low profile desktop",
    "Pizza box",
    "Mini tower",
    "Tower",
    "Portable",
    "Laptop",
    "Notebook",
    "Hand held",
    "Docking station",
    "All in one",
    "Sub notebook",
    "Space-saving",
    "Lunch box",
    "Main server chassis",
    "Expansion chassis",
    "SubChassis",
    "Bus Expansion chassis",
    "Peripheral chassis",
    "RAID chassis",
    "Rack mount chassis",
    "Sealed-case PC",
    "Multi-system chassis",
    "Compact PCI",
    "Advanced TCA",
    "Blade",
    "Blade enclosure",
    "Tablet",
    "Convertible",
    "Detachable",
    "IoT gateway",
    "Embedded PC",
    "Mini PC",
    "Stick PC",
];

pub(crate) fn chassis_type(code: &str) -> &'static str {
    code.parse::<usize>()
        .ok()
        .and_then(|n| CHASSIS_TYPES.get(n.checked_sub(1)?))
        .copied()
        .unwrap_or("unknown")
}

/// The `dmi` fields (strings): each attribute trimmed, `"unknown"` when unreadable (serials
/// and UUIDs without root).
pub(crate) fn dmi_fields() -> Vec<(Key, String)> {
    let mut out = Vec::with_capacity(DMI.len() + 1);
    for (field, attr) in DMI {
        let path = host::path(&format!("/sys/class/dmi/id/{attr}")).into_owned();
        let v = std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        if field == "chassis_type_code" {
            out.push((Key::Borrowed("chassis_type"), chassis_type(&v).to_owned()));
        }
        out.push((Key::Borrowed(field), v));
    }
    out
}

/// Adds string fields to `m`.
pub(crate) fn add(mut m: Metric, fields: &[(Key, String)]) -> Metric {
    for (k, v) in fields {
        m = m.field(k.clone(), v.clone());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etc(files: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let files = files.to_vec();
        move |name| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| c.to_string())
        }
    }

    #[test]
    fn platforms_as_gopsutil() {
        let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            platform(&etc(&[
                ("debian_version", "12.5\n"),
                ("os-release", "ID=debian\nVERSION_ID=\"12\"\n")
            ])),
            s("debian", "debian", "12.5")
        );
        assert_eq!(
            platform(&etc(&[
                ("debian_version", "trixie/sid\n"),
                ("lsb-release", "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=24.04\n")
            ])),
            s("ubuntu", "debian", "24.04")
        );
        assert_eq!(
            platform(&etc(&[(
                "redhat-release",
                "Rocky Linux release 9.3 (Blue Onyx)\n"
            )])),
            s("rocky", "rhel", "9.3")
        );
        assert_eq!(
            platform(&etc(&[(
                "redhat-release",
                "Red Hat Enterprise Linux release 8.9 (Ootpa)\n"
            )])),
            s("redhat", "rhel", "8.9")
        );
        assert_eq!(
            platform(&etc(&[("alpine-release", "3.19.1\n")])),
            s("alpine", "alpine", "3.19.1")
        );
        assert_eq!(
            platform(&etc(&[("os-release", "ID=\"amzn\"\nVERSION_ID=\"2023\"\n")])),
            s("amazon", "rhel", "2023")
        );
        assert_eq!(platform(&etc(&[])), s("", "", ""));
    }

    #[test]
    fn chassis_types() {
        assert_eq!(chassis_type("23"), "Rack mount chassis");
        assert_eq!(chassis_type("1"), "Other");
        assert_eq!(chassis_type("36"), "Stick PC");
        assert_eq!(chassis_type("0"), "unknown");
        assert_eq!(chassis_type("unknown"), "unknown");
    }

    #[test]
    fn this_machine() {
        let f = os_fields();
        assert_eq!(f[0].1, "linux");
        assert!(!f[1].1.is_empty() && !f[5].1.is_empty(), "{f:?}");
        assert_eq!(dmi_fields().len(), 21);
    }
}
