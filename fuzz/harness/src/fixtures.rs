//! The fixed keys and certificates the targets verify against, from `fuzz/fixtures/` (written
//! once by `cargo run -p attestgate-fuzz --example fixtures`): an input that crashed once must
//! crash again, so nothing here is generated at run time.

use attestgate::attestation::{
    JwksCache, KeyCacheOptions, KeySource, PkiRoot, Verifier, VerifyPolicy,
};
use attestgate::dev::SigningKey;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The issuer every target's verifier expects (the dev launcher's default).
pub const ISSUER: &str = "https://confidentialcomputing.googleapis.com";
/// The audience every target's verifier expects.
pub const AUDIENCE: &str = "https://vault.bank-a.example";
/// The moment tokens are verified at: 2027-01-15, inside the fixture chain's validity.
pub const AT: i64 = 1_800_000_000;

/// Where the fixtures are, relative to this crate.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The keys, the chain and a verifier built on them.
pub struct Fixtures {
    /// Signs OIDC tokens; its public half is the verifier's JWKS.
    pub issuer_key: RsaKeyPair,
    /// Signs PKI tokens; its certificate is `x5c[0]`.
    pub leaf_key: RsaKeyPair,
    /// The chain, leaf first, root last (DER).
    pub x5c: Vec<Vec<u8>>,
    /// The pinned root.
    pub pki_root: PkiRoot,
    /// A verifier for [`ISSUER`] with the issuer's key inline and the root pinned.
    pub verifier: Verifier,
    /// The issuer key's `kid`.
    pub kid: String,
}

fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fuzz fixture {}: {e}", path.display()))
}

fn pkcs8(name: &str) -> Vec<u8> {
    pem::parse(read(name))
        .unwrap_or_else(|e| panic!("fuzz fixture {name}: {e}"))
        .into_contents()
}

impl Fixtures {
    /// Loaded once per process.
    pub fn get() -> &'static Fixtures {
        static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
        FIXTURES.get_or_init(Fixtures::load)
    }

    fn load() -> Fixtures {
        let issuer_der = pkcs8("issuer-key.pem");
        let issuer = SigningKey::from_pkcs8(&issuer_der).expect("the issuer fixture key");
        let jwks = attestgate::dev::jwks([&issuer]).to_string();
        let x5c: Vec<Vec<u8>> = serde_json::from_slice::<Vec<String>>(&read("x5c.json"))
            .expect("x5c.json: a list of base64 certificates")
            .iter()
            .map(|cert| {
                use base64::engine::general_purpose::STANDARD;
                STANDARD.decode(cert).expect("x5c.json: base64")
            })
            .collect();
        let pki_root =
            PkiRoot::from_pem_or_der(x5c.last().expect("a chain")).expect("the root fixture");
        let keys = JwksCache::new(KeySource::Inline(jwks), KeyCacheOptions::default())
            .expect("the inline JWKS");
        let mut policy = VerifyPolicy::new(ISSUER);
        policy.pki_root = Some(pki_root.clone());
        Fixtures {
            issuer_key: RsaKeyPair::from_pkcs8(&issuer_der).expect("the issuer key"),
            leaf_key: RsaKeyPair::from_pkcs8(&pkcs8("leaf-key.pem")).expect("the leaf key"),
            x5c,
            pki_root,
            verifier: Verifier::new(keys, policy),
            kid: issuer.kid().to_owned(),
        }
    }
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
