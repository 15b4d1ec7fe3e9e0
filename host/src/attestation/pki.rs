//! PKI tokens: the signing key arrives as an `x5c` certificate chain that must lead to a pinned root.
//!
//! The chain is `[leaf, intermediates..., root?]`. Each certificate must be signed by the next one,
//! the last by the pinned root, every certificate must be within its lifetime at verification time,
//! and every issuer must be a CA. Only then is the leaf's key trusted to verify the JWT.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PkiError {
    #[error(
        "the token carries an x5c chain but no PKI root is pinned; pass the attestation PKI root"
    )]
    NoPinnedRoot,
    #[error("the pinned PKI root is not a usable certificate: {0}")]
    BadRoot(String),
    #[error("the x5c chain is empty")]
    EmptyChain,
    #[error("x5c certificate #{index} is not valid DER X.509: {reason}")]
    BadCertificate { index: usize, reason: String },
    #[error("x5c certificate #{index} ({subject}) is not signed by {issuer}")]
    BadSignature {
        index: usize,
        subject: String,
        issuer: String,
    },
    #[error("certificate {subject} is not valid at {at}: valid from {not_before} to {not_after}")]
    Lifetime {
        subject: String,
        at: i64,
        not_before: i64,
        not_after: i64,
    },
    #[error("certificate {subject} issues other certificates in the chain but is not a CA")]
    NotCa { subject: String },
    #[error("the leaf certificate's key is not RSA, so it cannot verify an RS256 token")]
    LeafNotRsa,
}

/// A pinned trust anchor, kept as DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiRoot {
    der: Vec<u8>,
}

impl PkiRoot {
    /// Accepts PEM (`-----BEGIN CERTIFICATE-----`) or raw DER.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Self, PkiError> {
        let der = match pem::parse(bytes) {
            Ok(block) if block.tag() == "CERTIFICATE" => block.into_contents(),
            Ok(block) => {
                return Err(PkiError::BadRoot(format!(
                    "PEM block is {}, not CERTIFICATE",
                    block.tag()
                )))
            }
            Err(_) => bytes.to_vec(),
        };
        X509Certificate::from_der(&der).map_err(|e| PkiError::BadRoot(e.to_string()))?;
        Ok(PkiRoot { der })
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

fn parse(index: usize, der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::BadCertificate {
            index,
            reason: e.to_string(),
        })
}

fn check_lifetime(cert: &X509Certificate<'_>, at: i64) -> Result<(), PkiError> {
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if at < not_before || at > not_after {
        return Err(PkiError::Lifetime {
            subject: cert.subject().to_string(),
            at,
            not_before,
            not_after,
        });
    }
    Ok(())
}

/// The verification algorithm for `child`'s signature by `issuer`'s key: RSA PKCS#1 v1.5 with
/// SHA-256/384/512, or ECDSA whose curve comes from the issuer's key and hash from the signature.
fn algorithm(
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Option<&'static dyn VerificationAlgorithm> {
    let oid = &child.signature_algorithm.algorithm;
    if *oid == OID_PKCS1_SHA256WITHRSA {
        return Some(&signature::RSA_PKCS1_2048_8192_SHA256);
    }
    if *oid == OID_PKCS1_SHA384WITHRSA {
        return Some(&signature::RSA_PKCS1_2048_8192_SHA384);
    }
    if *oid == OID_PKCS1_SHA512WITHRSA {
        return Some(&signature::RSA_PKCS1_2048_8192_SHA512);
    }
    let curve = issuer
        .public_key()
        .algorithm
        .parameters
        .as_ref()?
        .as_oid()
        .ok()?;
    let sha256 = *oid == OID_SIG_ECDSA_WITH_SHA256;
    let sha384 = *oid == OID_SIG_ECDSA_WITH_SHA384;
    match (curve == OID_EC_P256, curve == OID_NIST_EC_P384) {
        (true, _) if sha256 => Some(&signature::ECDSA_P256_SHA256_ASN1),
        (true, _) if sha384 => Some(&signature::ECDSA_P256_SHA384_ASN1),
        (_, true) if sha256 => Some(&signature::ECDSA_P384_SHA256_ASN1),
        (_, true) if sha384 => Some(&signature::ECDSA_P384_SHA384_ASN1),
        _ => None,
    }
}

fn signed_by(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let Some(algorithm) = algorithm(child, issuer) else {
        return false;
    };
    let key = UnparsedPublicKey::new(
        algorithm,
        issuer.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(
        child.tbs_certificate.as_ref(),
        child.signature_value.data.as_ref(),
    )
    .is_ok()
}

/// Verifies the chain at `at` (Unix seconds) and returns the leaf's RSA public key as PKCS#1 DER.
pub fn verify_chain(chain: &[Vec<u8>], root: &PkiRoot, at: i64) -> Result<Vec<u8>, PkiError> {
    let root_cert = parse(chain.len(), &root.der).map_err(|e| PkiError::BadRoot(e.to_string()))?;
    // A chain may or may not repeat the root at its end; the pinned copy is the one that counts.
    let presented = match chain.last() {
        Some(last) if *last == root.der => &chain[..chain.len() - 1],
        _ => chain,
    };
    if presented.is_empty() {
        return Err(PkiError::EmptyChain);
    }
    let certs = presented
        .iter()
        .enumerate()
        .map(|(index, der)| parse(index, der))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, cert) in certs.iter().enumerate() {
        let issuer = certs.get(index + 1).unwrap_or(&root_cert);
        if !signed_by(cert, issuer) {
            return Err(PkiError::BadSignature {
                index,
                subject: cert.subject().to_string(),
                issuer: if index + 1 == certs.len() {
                    format!("the pinned root ({})", root_cert.subject())
                } else {
                    issuer.subject().to_string()
                },
            });
        }
        if !issuer.is_ca() {
            return Err(PkiError::NotCa {
                subject: issuer.subject().to_string(),
            });
        }
        check_lifetime(cert, at)?;
    }
    check_lifetime(&root_cert, at)?;
    let leaf_key = certs[0].public_key();
    if leaf_key.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return Err(PkiError::LeafNotRsa);
    }
    Ok(leaf_key.subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P384_SHA384,
    };

    fn ca(name: &str) -> (CertificateParams, KeyPair) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (params, key)
    }

    #[test]
    fn an_ecdsa_p384_chain_to_an_rsa_leaf_verifies() {
        let (root_params, root_key) = ca("root");
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let (intermediate_params, intermediate_key) = ca("intermediate");
        let intermediate = intermediate_params
            .signed_by(&intermediate_key, &root_issuer)
            .unwrap();
        let intermediate_issuer = Issuer::new(intermediate_params, intermediate_key);
        let leaf_signing = crate::dev::SigningKey::generate().unwrap();
        let leaf_key = KeyPair::from_pkcs8_der_and_sign_algo(
            &rustls_pki_types::PrivatePkcs8KeyDer::from(leaf_signing.pkcs8_der()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .unwrap();
        let leaf = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .signed_by(&leaf_key, &intermediate_issuer)
            .unwrap();
        let chain = vec![
            leaf.der().to_vec(),
            intermediate.der().to_vec(),
            root.der().to_vec(),
        ];
        let pinned = PkiRoot::from_pem_or_der(root.pem().as_bytes()).unwrap();
        let now = crate::attestation::verify::unix_now();
        let leaf_rsa = verify_chain(&chain, &pinned, now).expect("the P-384 chain verifies");
        assert!(!leaf_rsa.is_empty());

        let (other_params, other_key) = ca("another root");
        let other = PkiRoot::from_pem_or_der(
            other_params
                .self_signed(&other_key)
                .unwrap()
                .pem()
                .as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            verify_chain(&chain[..2], &other, now),
            Err(PkiError::BadSignature { index: 1, .. })
        ));
    }
}
