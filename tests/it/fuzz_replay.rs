//! Replays the fuzz targets (`fuzz/`) as ordinary tests, without a sanitizer
//! or cargo-fuzz: every file of `fuzz/corpus/<target>/`, then a fixed number
//! of inputs derived from them by a seeded generator, so each run is the same
//! and a failure names the input that caused it.
//!
//! A crash found by a coverage-guided run (`scripts/fuzz.sh`) is added to the
//! target's corpus, so this test keeps it fixed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ascp::fuzzing::{TARGETS, Target};

/// Generated inputs per target, on top of its corpus.
const GENERATED_PER_TARGET: usize = 3_000;
/// The generator's seed: fixed, so every run replays the same inputs.
const SEED: u64 = 0x00a5_c9f0_22ed;
/// Longest generated input, as libFuzzer's default `-max_len`.
const MAX_GENERATED_LEN: usize = 4096;

/// Fragments the generator splices in: the syntax of the targets' formats
/// and the boundaries their checks care about.
const DICTIONARY: &[&[u8]] = &[
    b"\0",
    b"\n",
    b"/",
    b"..",
    b"../",
    b"/../",
    b"- objectName: ",
    b"  objectType: secretsmanager\n",
    b"objectType: ssmparameter",
    b"objectAlias: ",
    b"jmesPath:\n    - path: ",
    b"failoverObject:\n    objectName: ",
    b"filePermission: \"0600\"",
    b"&a ",
    b"*a",
    b"<<: *a",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"\\u0000",
    b"arn:aws:secretsmanager:us-east-1:123456789012:secret:",
    b"arn:aws:iam::123456789012:role/",
    b"\"objects\":",
    b"\"region\":\"",
    b"\"pathTranslation\":\"",
    b"\"AccessKeyId\":\"",
    b"\"Expiration\":\"",
    b"2030-01-01T00:00:00Z",
    b"[?a=='b'].c",
    b"|",
    b"@",
    b"9999999999999999999999",
    b"-1",
    b"\xff\xfe",
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn read_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .collect();
    entries.sort();
    entries
}

/// Runs one input; a panic fails the test naming the target and the input.
fn run_one(target: &Target, origin: &str, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| (target.run)(input))).is_err() {
        panic!(
            "fuzz target {} failed on {origin}: {:?} (save these bytes as fuzz/corpus/{}/<name> and fix)",
            target.name,
            String::from_utf8_lossy(input),
            target.name
        );
    }
}

/// One mutation of `input`: the moves libFuzzer makes most, chosen by `rng`.
fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, corpus: &[(String, Vec<u8>)]) {
    let at = |rng: &mut fastrand::Rng, len: usize| rng.usize(..=len);
    match rng.u8(..7) {
        0 if !input.is_empty() => {
            let i = rng.usize(..input.len());
            input[i] ^= 1 << rng.u8(..8);
        }
        1 if !input.is_empty() => {
            let i = rng.usize(..input.len());
            input[i] = rng.u8(..);
        }
        2 if !input.is_empty() => {
            let start = rng.usize(..input.len());
            let end = (start + rng.usize(1..=16)).min(input.len());
            input.drain(start..end);
        }
        3 => {
            let word = DICTIONARY[rng.usize(..DICTIONARY.len())];
            let i = at(rng, input.len());
            input.splice(i..i, word.iter().copied());
        }
        4 if !input.is_empty() => {
            // Repeat a chunk: deep nesting and long lists come from here.
            let start = rng.usize(..input.len());
            let end = (start + rng.usize(1..=32)).min(input.len());
            let chunk = input[start..end].to_vec();
            for _ in 0..rng.usize(1..=8) {
                input.splice(end..end, chunk.iter().copied());
            }
        }
        5 if !corpus.is_empty() => {
            // Splice in part of another entry.
            let other = &corpus[rng.usize(..corpus.len())].1;
            if !other.is_empty() {
                let start = rng.usize(..other.len());
                let end = (start + rng.usize(1..=64)).min(other.len());
                let i = at(rng, input.len());
                input.splice(i..i, other[start..end].iter().copied());
            }
        }
        _ => {
            let i = at(rng, input.len());
            input.insert(i, rng.u8(..));
        }
    }
    input.truncate(MAX_GENERATED_LEN);
}

fn replay(target: &Target) {
    let corpus = read_corpus(target.name);
    assert!(
        corpus.len() >= 10,
        "fuzz/corpus/{} has {} entries; seed it",
        target.name,
        corpus.len()
    );
    for (origin, input) in &corpus {
        run_one(target, origin, input);
    }
    let mut rng = fastrand::Rng::with_seed(SEED);
    for n in 0..GENERATED_PER_TARGET {
        let mut input = corpus[rng.usize(..corpus.len())].1.clone();
        for _ in 0..rng.usize(1..=6) {
            mutate(&mut rng, &mut input, &corpus);
        }
        run_one(target, &format!("generated input #{n}"), &input);
    }
}

#[test]
fn every_target_replays_its_corpus_and_generated_inputs() {
    for target in TARGETS {
        replay(target);
    }
}

/// Every target has a corpus and a cargo-fuzz binary, and the fuzz crate
/// has no binary without a target.
#[test]
fn every_target_is_fuzzable() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut binaries: Vec<String> = std::fs::read_dir(root.join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| {
            let path = e.expect("entry").path();
            path.file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    binaries.sort();
    let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(binaries, expected);
    for name in names {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml lacks the [[bin]] of {name}"
        );
        assert!(corpus_dir(name).is_dir(), "no fuzz/corpus/{name}");
    }
}
