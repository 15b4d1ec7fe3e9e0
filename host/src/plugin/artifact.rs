//! Precompiled plugins: native code made at image build time (`attestgate plugin compile`),
//! pinned by its own sha256 next to the wasm's, and loaded without compiling.
//!
//! Loading native code runs whatever it contains (`Component::deserialize` is `unsafe` for that
//! reason), so nothing mutable is trusted: the artifact is read once into memory, its sha256 is
//! checked against the configuration, and only then is it deserialised from that same buffer. Its
//! envelope also names the sha256 of the wasm it was compiled from and the engine it was compiled
//! for, so an artifact of another plugin, or of another attestgate build or CPU baseline, is
//! refused with a clear error even when its own digest was pinned by mistake.
//!
//! Envelope: `MAGIC` · the wasm's sha256 (32 bytes) · the engine's tag (32 bytes) · wasmtime's
//! serialised component.

use super::error::{ArtifactProblem, PluginError};
use super::spec::Compiler;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 16] = b"attestgate-cwasm";
const HEADER_BYTES: usize = MAGIC.len() + 32 + 32;

/// Feeds `Hash` output into sha256, so the engine's compatibility hash becomes stable bytes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Only `write` is used; the digest is taken from the inner state.
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// What identifies the engine an artifact must be loaded into: wasmtime's version, the engine's
/// settings and its compilation target (CPU baseline included).
pub(super) fn engine_tag(engine: &Engine) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// Compiles `wasm` (whose sha256 is `wasm_sha256`, lowercase hex) into an artifact with
/// `engine`, whose compiler is `compiler`.
pub(super) fn compile(
    engine: &Engine,
    compiler: Compiler,
    path: &Path,
    wasm: &[u8],
    wasm_sha256: &str,
) -> Result<Vec<u8>, PluginError> {
    let native = engine
        .precompile_component(wasm)
        .map_err(|e| PluginError::NotAComponent {
            path: path.to_owned(),
            compiler,
            source: e.into(),
        })?;
    let mut artifact = Vec::with_capacity(HEADER_BYTES + native.len());
    artifact.extend_from_slice(MAGIC);
    artifact.extend_from_slice(&hex::decode(wasm_sha256).unwrap_or_default());
    artifact.extend_from_slice(&engine_tag(engine));
    artifact.extend_from_slice(&native);
    Ok(artifact)
}

/// Loads an artifact whose bytes were read once and checked against `expected_sha256`, after
/// checking it was compiled from the wasm with `wasm_sha256` for this engine.
pub(super) fn load(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
    expected_sha256: &str,
    wasm_sha256: &str,
) -> Result<Component, PluginError> {
    let problem = |problem: ArtifactProblem| PluginError::Artifact {
        path: path.to_owned(),
        problem,
    };
    let found = hex::encode(Sha256::digest(bytes));
    if !found.eq_ignore_ascii_case(expected_sha256.trim()) {
        return Err(PluginError::ArtifactDigestMismatch {
            path: path.to_owned(),
            expected: expected_sha256.trim().to_ascii_lowercase(),
            found,
        });
    }
    if bytes.len() < HEADER_BYTES || &bytes[..MAGIC.len()] != MAGIC {
        return Err(problem(ArtifactProblem::NotAnArtifact));
    }
    let compiled_from = hex::encode(&bytes[MAGIC.len()..MAGIC.len() + 32]);
    if !compiled_from.eq_ignore_ascii_case(wasm_sha256) {
        return Err(problem(ArtifactProblem::OtherPlugin {
            compiled_from,
            pinned: wasm_sha256.to_owned(),
        }));
    }
    if bytes[MAGIC.len() + 32..HEADER_BYTES] != engine_tag(engine) {
        return Err(problem(ArtifactProblem::OtherEngine));
    }
    // SAFETY: these exact bytes hash to the digest the operator pinned, and their envelope says
    // they were compiled from the pinned wasm for this engine. Nothing was re-read from disk
    // after the check: deserialize copies from this buffer.
    unsafe { Component::deserialize(engine, &bytes[HEADER_BYTES..]) }
        .map_err(|e| problem(ArtifactProblem::Unloadable(e.into())))
}
