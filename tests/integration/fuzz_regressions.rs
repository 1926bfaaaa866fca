//! Replays every input under `tests/fixtures/fuzz-regressions/<target>/` (crash inputs the
//! fuzzer found, saved there by `fuzz/run.sh`, and inputs found by the property tests) and the
//! fuzz seed corpus through the same checks the fuzz targets run (`fuzz/src/checks.rs`).

#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for dir in [
        root.join("tests/fixtures/fuzz-regressions").join(target),
        root.join("fuzz/seeds").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|f| f.is_file() && f.extension().is_none_or(|e| e != "md"))
        {
            let data = std::fs::read(f).expect("read fuzz input");
            eprintln!("replaying {}", f.display());
            check(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn fuzz_inputs_replay_cleanly() {
    let config = replay("config", checks::check_config);
    let encode = replay("encode", checks::check_encode);
    assert!(
        config >= 4 && encode >= 5,
        "inputs: config {config}, encode {encode}"
    );
    for (target, check) in checks::PARSER_TARGETS {
        let n = replay(target, check);
        assert!(
            n >= 3,
            "{target}: {n} inputs (seeds are real captures, at least three)"
        );
    }
}
