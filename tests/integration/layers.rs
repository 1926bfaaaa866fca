//! The crate's layers (README "Layout"): each top-level module imports only modules of lower
//! layers, so there are no import cycles and a leaf (config primitives, isolation, counters)
//! builds without the inputs. Checked on the source text: every `crate::NAME` path in a file
//! under `src/` must name its own top-level module or one of a lower layer (unit tests, from a
//! file's `#[cfg(test)]` on, may use anything).

/// Top-level modules by layer, lowest first.
const LAYERS: &[&[&str]] = &[
    // Leaves: import nothing else of the crate.
    &["options", "isolation", "stats", "rand"],
    &["output"],
    // The inputs and their registry; the health endpoint (reads counters only).
    &["modules", "health"],
    // Whole-file config resolution (uses the registry).
    &["config"],
    &["supervisor", "logging", "control", "cli"],
    // Probe groups: hands the supervisor its gates (`supervisor::Gate`).
    &["coordination"],
    &["app"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn each_module_imports_only_lower_layers() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let own = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if own == "lib" || own == "main" || own == "fuzz_api" {
            continue;
        }
        let own_layer = layer(&own).unwrap_or_else(|| panic!("{own}: not in LAYERS"));
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests (at the end of a file, by this crate's convention) may use anything.
        let code = text.lines().take_while(|l| l.trim() != "#[cfg(test)]");
        for (n, line) in code.enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name == own || name.is_empty() {
                    continue;
                }
                match layer(&name) {
                    Some(l) if l < own_layer => {}
                    _ => violations.push(format!(
                        "{}:{}: {own} imports crate::{name}",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
