//! A local stand-in for the attestation PKI: root CA, intermediate CA and a leaf that signs PKI
//! tokens, so `token_type: "PKI"` can be exercised end to end.

use super::signing::{DevPkiError, SigningError, SigningKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Map, Value};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// A local attestation PKI: a root and an intermediate CA kept on disk, and a fresh leaf key
/// that signs PKI tokens with the chain in `x5c`.
pub struct DevPki {
    root_pem: String,
    /// DER certificates leaf first, root last, as `x5c` carries them.
    chain: Vec<Vec<u8>>,
    leaf: SigningKey,
}

fn pki_error(step: &'static str, source: impl Into<DevPkiError>) -> SigningError {
    SigningError::Pki {
        step,
        source: source.into(),
    }
}

fn rcgen_key(key: &SigningKey) -> Result<KeyPair, SigningError> {
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(key.pkcs8_der()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .map_err(|e| pki_error("key", e))
}

fn ca_params(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, SigningError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_error("params", e))?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, "attestgate dev launcher");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    Ok(params)
}

impl DevPki {
    /// Loads the root and intermediate keys from `dir` (creating them on first use) and issues a
    /// fresh leaf valid for a day.
    pub fn load_or_create(dir: &Path) -> Result<Self, SigningError> {
        std::fs::create_dir_all(dir).map_err(|e| pki_error("directory", e))?;
        let root = SigningKey::load_or_create(&dir.join("pki-root-key.pem"))?;
        let intermediate = SigningKey::load_or_create(&dir.join("pki-intermediate-key.pem"))?;
        let now = OffsetDateTime::now_utc();
        let pki = Self::issue(
            &root,
            &intermediate,
            SigningKey::generate()?,
            now - Duration::minutes(5),
            now + Duration::days(1),
        )?;
        // The root certificate is pinned by verifiers, so it is written once and then kept.
        let root_path = dir.join("pki-root.pem");
        match std::fs::read_to_string(&root_path) {
            Ok(existing) => {
                let der = pem::parse(&existing).map_err(|e| pki_error("reading the root", e))?;
                let mut chain = pki.chain;
                chain.pop();
                chain.push(der.into_contents());
                Ok(DevPki {
                    root_pem: existing,
                    chain,
                    leaf: pki.leaf,
                })
            }
            _ => {
                crate::fsutil::write_atomically(&root_path, pki.root_pem.as_bytes(), 0o644)
                    .map_err(|e| pki_error("writing the root", e))?;
                Ok(pki)
            }
        }
    }

    /// Issues a chain with the given keys; the leaf is valid from `leaf_not_before` to
    /// `leaf_not_after` (tests use this to make an expired leaf).
    pub fn issue(
        root_key: &SigningKey,
        intermediate_key: &SigningKey,
        leaf: SigningKey,
        leaf_not_before: OffsetDateTime,
        leaf_not_after: OffsetDateTime,
    ) -> Result<Self, SigningError> {
        let epoch =
            OffsetDateTime::from_unix_timestamp(1_700_000_000).map_err(|e| pki_error("time", e))?;
        let far = epoch + Duration::days(365 * 30);
        let root_pair = rcgen_key(root_key)?;
        let root_params = ca_params("attestgate dev attestation root", epoch, far)?;
        let root_cert = root_params
            .self_signed(&root_pair)
            .map_err(|e| pki_error("root", e))?;
        let root_issuer = Issuer::new(root_params, root_pair);

        let intermediate_pair = rcgen_key(intermediate_key)?;
        let intermediate_params = ca_params("attestgate dev attestation intermediate", epoch, far)?;
        let intermediate_cert = intermediate_params
            .signed_by(&intermediate_pair, &root_issuer)
            .map_err(|e| pki_error("intermediate", e))?;
        let intermediate_issuer = Issuer::new(intermediate_params, intermediate_pair);

        let mut leaf_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| pki_error("params", e))?;
        leaf_params.distinguished_name.push(
            DnType::CommonName,
            "attestgate dev attestation token signer",
        );
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.not_before = leaf_not_before;
        leaf_params.not_after = leaf_not_after;
        let leaf_cert = leaf_params
            .signed_by(&rcgen_key(&leaf)?, &intermediate_issuer)
            .map_err(|e| pki_error("leaf", e))?;

        Ok(DevPki {
            root_pem: root_cert.pem(),
            chain: vec![
                leaf_cert.der().to_vec(),
                intermediate_cert.der().to_vec(),
                root_cert.der().to_vec(),
            ],
            leaf,
        })
    }

    /// The root certificate, PEM: what a verifier pins.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The chain as a token's `x5c` carries it: standard base64 DER, leaf first, root last.
    pub fn x5c(&self) -> Vec<String> {
        self.chain.iter().map(|der| STANDARD.encode(der)).collect()
    }

    /// Signs `claims` as a PKI token: RS256 by the leaf, with the chain in `x5c` and no `kid`.
    pub fn sign(&self, claims: &Value) -> Result<String, SigningError> {
        let mut header = Map::new();
        header.insert("x5c".into(), json!(self.x5c()));
        header.insert("typ".into(), json!("JWT"));
        self.leaf.sign_with_header(header, claims)
    }
}
