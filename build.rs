//! Release builds for glibc link with packed relative relocations (`-z pack-relative-relocs`,
//! DT_RELR). Why: a position-independent executable carries one 24-byte relocation record per
//! pointer in its data (vtables, string tables), about 24,000 of them here (580 KB), and the
//! loader reads every one at start-up, so they stayed resident at rest. Packed: 5 KB.
//! Needs glibc 2.36 (Debian 12) to run; the package's `$auto` dependency carries that
//! (dpkg-shlibdeps sees the GLIBC_ABI_DT_RELR version). Debug builds, whose binaries only the
//! tests run, are left as they are.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let glibc = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if glibc && var("PROFILE") == "release" {
        println!("cargo::rustc-link-arg=-Wl,-z,pack-relative-relocs");
    }
}
