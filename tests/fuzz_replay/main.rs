//! Replays what the fuzzers found and kept (`fuzz/corpus/<target>/`) and every crash they ever
//! reported (`fuzz/regressions/<target>/`) through the same checks the fuzz targets run, on the
//! stable toolchain, in every test run.

use std::path::{Path, PathBuf};

use rpc_integration_tests::fuzzing;

fn inputs(folder: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(folder)
        .join(target);
    // The folders are part of the repository: a missing one is a broken checkout, not nothing to
    // replay.
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz/{folder}/{target} cannot be read: {e}"));
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    let corpus = inputs("corpus", target);
    assert!(
        corpus.len() >= 10,
        "fuzz/corpus/{target} holds {} inputs; the corpus is checked in",
        corpus.len()
    );
    for path in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(path).expect("a corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
    }
}

#[test]
fn the_envelope_corpus_replays() {
    replay("envelope", fuzzing::envelope);
}

#[test]
fn the_dispatch_corpus_replays() {
    replay("dispatch", fuzzing::dispatch);
}

#[test]
fn the_config_corpus_replays() {
    replay("config", fuzzing::config);
}
