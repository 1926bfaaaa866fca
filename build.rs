//! Release builds for glibc: two link options that keep the agent's pages at rest few.
//!
//! * Packed relative relocations (`-z pack-relative-relocs`, DT_RELR). A position-independent
//!   executable carries one 24-byte relocation record per pointer in its data (vtables, string
//!   tables), about 24,000 of them here (580 KB), and the loader reads every one at start-up, so
//!   they stayed resident at rest. Packed: 5 KB. Needs glibc 2.36 (Debian 12) to run; the
//!   package's `$auto` dependency carries that (dpkg-shlibdeps sees the GLIBC_ABI_DT_RELR
//!   version).
//! * The functions a default run executes placed together (`--symbol-ordering-file`,
//!   link/symbol-order.sh says how and why): 3.3 MB of code resident at rest became 1 MB. Only
//!   LLD takes that option, and LLD is rustc's default linker for x86_64-unknown-linux-gnu from
//!   1.90 on; elsewhere, or with a linker chosen through RUSTFLAGS, the code keeps the
//!   compiler's order.
//!
//! Debug builds, whose binaries only the tests run, are left as they are.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let glibc = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if !glibc || var("PROFILE") != "release" {
        return;
    }
    println!("cargo::rustc-link-arg=-Wl,-z,pack-relative-relocs");
    if default_lld() {
        let order = format!("{}/link/symbol-order.txt", var("CARGO_MANIFEST_DIR"));
        println!("cargo::rerun-if-changed={order}");
        println!("cargo::rustc-link-arg=-Wl,--symbol-ordering-file={order}");
        // Names the file has and this build lacks (code changed since it was made) are skipped.
        println!("cargo::rustc-link-arg=-Wl,--no-warn-symbol-ordering");
        // link/symbol-order.sh asks for the linker's map, to name the code a run executed.
        println!("cargo::rerun-if-env-changed=METRICS_AGENT_LINK_MAP");
        let map = var("METRICS_AGENT_LINK_MAP");
        if !map.is_empty() {
            println!("cargo::rustc-link-arg=-Wl,-Map={map}");
            println!("cargo::rustc-link-arg=-Wl,--no-demangle");
        }
    }
}

/// Whether rustc links this build with its own LLD: x86_64-unknown-linux-gnu from 1.90 on,
/// unless RUSTFLAGS choose a linker.
fn default_lld() -> bool {
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if var("TARGET") != "x86_64-unknown-linux-gnu"
        || flags.contains("linker")
        || flags.contains("fuse-ld")
    {
        return false;
    }
    let version = std::process::Command::new(var("RUSTC"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    matches!(minor, Some(m) if m >= 90)
}

/// A build variable cargo sets, or "" where it sets none.
fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_default()
}
