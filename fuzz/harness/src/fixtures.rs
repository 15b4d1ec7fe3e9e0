//! What the targets verify against. The signing keys are generated at run time (nothing secret
//! is committed), under fixed names, so that an input that crashed once crashes again: the
//! issuer's key is published under the `kid` [`KID`], and a PKI header whose `x5c` is the string
//! `"fixture"` gets this process's chain. The `x5c` target checks chains against a committed,
//! public chain (`fuzz/fixtures/x5c.json`, written by
//! `cargo run -p attestgate-fuzz --example fixtures -- --chain`), whose keys were never kept.

use attestgate::attestation::{
    JwksCache, KeyCacheOptions, KeySource, PkiRoot, Verifier, VerifyPolicy,
};
use attestgate::dev::{DevPki, SigningKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The issuer every target's verifier expects (the dev launcher's default).
pub const ISSUER: &str = "https://confidentialcomputing.googleapis.com";
/// The audience every target's verifier expects.
pub const AUDIENCE: &str = "https://vault.bank-a.example";
/// The moment tokens are verified at: 2027-01-15, inside every fixture chain's validity.
pub const AT: i64 = 1_800_000_000;
/// The `kid` the issuer's key is published under.
pub const KID: &str = "fuzz-issuer";

/// Where the committed fixtures are, relative to this crate.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The keys, the chains and a verifier built on them.
pub struct Fixtures {
    /// Signs OIDC tokens; its public half is the verifier's JWKS, under [`KID`].
    pub issuer_key: RsaKeyPair,
    /// Signs PKI tokens; its certificate leads this process's chain.
    pub leaf_key: RsaKeyPair,
    /// This process's chain (standard base64 DER, leaf first), for `"x5c": "fixture"`.
    pub chain_x5c: Vec<String>,
    /// The committed chain (DER, leaf first, root last) the `x5c` target starts from.
    pub x5c: Vec<Vec<u8>>,
    /// The committed chain's root, which the `x5c` target pins.
    pub x5c_root: PkiRoot,
    /// A verifier for [`ISSUER`] with the issuer's key inline and this process's root pinned.
    pub verifier: Verifier,
}

impl Fixtures {
    /// Built once per process.
    pub fn get() -> &'static Fixtures {
        static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
        FIXTURES.get_or_init(Fixtures::load)
    }

    fn load() -> Fixtures {
        let issuer = SigningKey::generate().expect("an issuer key");
        let mut jwk = issuer.jwk();
        jwk["kid"] = json!(KID);
        let jwks = json!({ "keys": [jwk] }).to_string();
        let leaf = SigningKey::generate().expect("a leaf key");
        let leaf_key = RsaKeyPair::from_pkcs8(leaf.pkcs8_der()).expect("the leaf key");
        let pki = chain(leaf);
        let root_der = STANDARD
            .decode(pki.x5c().last().expect("a root"))
            .expect("base64");
        let path = dir().join("x5c.json");
        let committed =
            std::fs::read(&path).unwrap_or_else(|e| panic!("fuzz fixture {}: {e}", path.display()));
        let x5c: Vec<Vec<u8>> = serde_json::from_slice::<Vec<String>>(&committed)
            .expect("x5c.json: a list of base64 certificates")
            .iter()
            .map(|cert| STANDARD.decode(cert).expect("x5c.json: base64"))
            .collect();
        let keys = JwksCache::new(KeySource::Inline(jwks), KeyCacheOptions::default())
            .expect("the inline JWKS");
        let mut policy = VerifyPolicy::new(ISSUER);
        policy.pki_root = Some(PkiRoot::from_pem_or_der(&root_der).expect("the root"));
        Fixtures {
            issuer_key: RsaKeyPair::from_pkcs8(issuer.pkcs8_der()).expect("the issuer key"),
            leaf_key,
            chain_x5c: pki.x5c(),
            x5c_root: PkiRoot::from_pem_or_der(x5c.last().expect("a chain"))
                .expect("the committed root"),
            x5c,
            verifier: Verifier::new(keys, policy),
        }
    }

    /// `header` with this process's chain in place of `"x5c": "fixture"`; any other header as
    /// it is.
    pub fn with_chain(&self, header: &[u8]) -> Vec<u8> {
        match serde_json::from_slice::<serde_json::Map<String, Value>>(header) {
            Ok(mut fields) if fields.get("x5c") == Some(&json!("fixture")) => {
                fields.insert("x5c".into(), json!(self.chain_x5c));
                serde_json::to_vec(&fields).unwrap_or_default()
            }
            _ => header.to_vec(),
        }
    }
}

/// A root, an intermediate and a leaf certificate for `leaf`, valid from 2023 to 2043, with
/// fresh CA keys that are dropped here.
pub fn chain(leaf: SigningKey) -> DevPki {
    let epoch = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("a time");
    DevPki::issue(
        &SigningKey::generate().expect("a root key"),
        &SigningKey::generate().expect("an intermediate key"),
        leaf,
        epoch,
        epoch + time::Duration::days(365 * 20),
    )
    .expect("a chain")
}

/// `base64url(header) "." base64url(payload) "." signature`, RS256 with `key`, whatever the
/// header and payload bytes are.
pub fn sign(key: &RsaKeyPair, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .expect("RS256 signing");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
