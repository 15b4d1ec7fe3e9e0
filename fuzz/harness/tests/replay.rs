//! Every seed and every past crash, through every fuzz target, on stable Rust: the corpora stay
//! valid inputs, the fixtures still verify, and a crash once found stays fixed.

use attestgate::attestation::TokenType;
use attestgate_fuzz::TARGETS;
use std::path::{Path, PathBuf};

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

#[test]
fn every_target_has_seeds_and_runs_them_and_every_past_crash() {
    for (target, run) in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "fuzz/seeds/{target} has no seed");
        for (path, bytes) in seeds.iter().chain(&inputs("regressions", target)) {
            eprintln!("{target}: {}", path.display());
            run(bytes);
        }
    }
}

#[test]
fn the_signed_seeds_verify_so_the_fuzzer_starts_past_the_signature() {
    for (seed, kind) in [("oidc", TokenType::Oidc), ("pki", TokenType::Pki)] {
        let (_, outcome) = attestgate_fuzz::verify(&seed_bytes("verifier", seed)).unwrap();
        assert_eq!(
            outcome.map(|v| v.kind).map_err(|e| e.to_string()),
            Ok(kind),
            "{seed}"
        );
    }
}

#[test]
fn a_forged_signature_is_refused_without_being_repeated() {
    let (token, outcome) = attestgate_fuzz::verify(&seed_bytes("verifier", "oidc")).unwrap();
    assert!(outcome.is_ok());
    let mut forged = token.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let input = [&[0u8][..], &forged].concat();
    let (_, outcome) = attestgate_fuzz::verify(&input).unwrap();
    assert!(outcome.is_err());
    attestgate_fuzz::verifier(&input);
}

fn seed_bytes(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../seeds")
        .join(target)
        .join(name);
    std::fs::read(path).unwrap()
}
