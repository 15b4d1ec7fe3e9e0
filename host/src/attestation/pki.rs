//! PKI tokens: the signing key arrives as an `x5c` certificate chain that must lead to a pinned root.
//!
//! The chain is `[leaf, intermediates..., root?]`. Path validation is rustls-webpki's: every
//! signature up to the pinned root, every validity period, basicConstraints (issuers must be CAs,
//! the leaf must not be one, pathLenConstraint holds) and the refusal of critical extensions it
//! does not understand. webpki was written for TLS and leaves out three things a token signer
//! needs, which are checked here with x509-parser on the path webpki verified:
//! - keyUsage, when present (RFC 5280 section 4.2.1.3): an issuer's must include keyCertSign and
//!   the leaf's digitalSignature;
//! - the pinned root itself, which webpki treats as a bare name and key: it must be a CA within its
//!   lifetime, and its pathLenConstraint counts too;
//! - the leaf's key must be RSA, since the token is RS256.
//!
//! Extended key usage is not constrained: no purpose is defined for attestation tokens, Google's
//! leaf carries none and its intermediate carries the TCG EK-certificate purpose (2.23.133.8.1).

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use std::time::Duration;
use webpki::aws_lc_rs as algorithms;
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_parser::error::X509Error;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What x509-parser says of bytes that are not a DER certificate.
pub type DerError = x509_parser::nom::Err<X509Error>;

/// Why a PKI token's certificate chain is refused, or the pinned root cannot be used.
///
/// `chain` fields list the presented chain by subject, leaf first, ending with the pinned root.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PkiError {
    /// The token has an `x5c` chain, but the verifier was given no root to check it against.
    #[error(
        "the token carries an x5c chain but no PKI root is pinned; pass the attestation PKI root"
    )]
    NoPinnedRoot,
    /// The pinned root cannot serve as a trust anchor.
    #[error("the pinned PKI root is not a usable certificate: {0}")]
    BadRoot(#[source] UnusableRoot),
    /// `x5c` is present but holds no certificate besides the root.
    #[error("the x5c chain is empty")]
    EmptyChain,
    /// The chain verified, but its leaf's key is not one RS256 can use.
    #[error("the leaf certificate's key cannot check an RS256 signature: {0}")]
    LeafKey(#[source] super::rsa::RsaKeyError),
    /// A certificate of the chain does not parse.
    #[error("x5c certificate #{index} is not valid DER X.509: {source}")]
    BadCertificate {
        /// Its place in `x5c`, from 0 (the leaf).
        index: usize,
        /// The parser's complaint.
        #[source]
        source: DerError,
    },
    /// A certificate's extension that the checks need cannot be parsed.
    #[error("certificate {subject} has an extension that cannot be read: {extension}: {source}")]
    BadExtension {
        /// The certificate's subject.
        subject: String,
        /// The extension, e.g. `keyUsage`.
        extension: &'static str,
        /// The parser's complaint.
        #[source]
        source: X509Error,
    },
    /// A certificate of the chain, or the root, is expired or not yet valid at the check time.
    #[error("certificate {subject} is not valid at {at}: valid from {not_before} to {not_after}")]
    Lifetime {
        /// The certificate's subject.
        subject: String,
        /// The check time, Unix seconds.
        at: i64,
        /// Start of its validity, Unix seconds.
        not_before: i64,
        /// End of its validity, Unix seconds.
        not_after: i64,
    },
    /// A certificate's signature does not verify with its issuer's key.
    #[error(
        "a signature in the x5c chain [{chain}] does not verify up to the pinned root: a \
         certificate was altered or signed by another key ({source})"
    )]
    BadSignature {
        /// The chain, described.
        chain: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// The chain does not lead to the pinned root.
    #[error(
        "the x5c chain [{chain}] does not lead to the pinned root: a certificate's issuer is \
         neither in the chain nor the root ({source})"
    )]
    UnknownIssuer {
        /// The chain, described.
        chain: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// A certificate is signed with an algorithm outside the accepted list.
    #[error(
        "the x5c chain [{chain}] is signed with an algorithm attestgate does not accept (RSA \
         PKCS#1 with SHA-256/384/512, ECDSA P-256/P-384 with SHA-256/384) ({source})"
    )]
    UnsupportedAlgorithm {
        /// The chain, described.
        chain: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// A certificate that is not a CA issued another one.
    #[error(
        "in the x5c chain [{chain}] a certificate that is not a CA (basicConstraints cA false or \
         absent) issued another certificate ({source})"
    )]
    IssuerNotCa {
        /// The chain, described.
        chain: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// The leaf is a CA certificate; tokens are signed by end entities.
    #[error(
        "the leaf certificate {subject} is a CA (basicConstraints cA true); tokens must be signed \
         by an end-entity certificate ({source})"
    )]
    LeafIsCa {
        /// The leaf's subject.
        subject: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// A CA's `pathLenConstraint` is exceeded below it.
    #[error(
        "the x5c chain [{chain}] has more CAs below one of its CAs than that CA's basicConstraints \
         pathLen allows ({source})"
    )]
    PathLength {
        /// The chain, described.
        chain: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// A certificate has a critical extension webpki does not understand.
    #[error(
        "a certificate in the x5c chain [{chain}] carries a critical extension that attestgate \
         does not understand, and RFC 5280 requires refusing it ({source})"
    )]
    CriticalExtension {
        /// The chain, described.
        chain: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// webpki refused the path for another reason.
    #[error("the x5c chain [{chain}] fails path validation ({source})")]
    Rejected {
        /// The chain, described.
        chain: String,
        /// webpki's verdict.
        #[source]
        source: webpki::Error,
    },
    /// The pinned root is not a CA.
    #[error("the pinned root {subject} is not a CA (basicConstraints cA is false or absent)")]
    NotCa {
        /// The root's subject.
        subject: String,
    },
    /// The root's `pathLenConstraint` allows fewer intermediates than the path has.
    #[error(
        "the pinned root {subject} allows {limit} CA(s) below it (basicConstraints pathLen) but \
         the chain has {found}"
    )]
    RootPathLength {
        /// The root's subject.
        subject: String,
        /// Its `pathLenConstraint`.
        limit: u32,
        /// The intermediates on the verified path.
        found: usize,
    },
    /// An issuer on the path has a keyUsage without keyCertSign.
    #[error(
        "certificate {subject} issued another certificate in the chain, but its keyUsage lacks \
         keyCertSign"
    )]
    IssuerKeyUsage {
        /// The issuer's subject.
        subject: String,
    },
    /// The leaf has a keyUsage without digitalSignature.
    #[error(
        "the leaf certificate {subject} has a keyUsage without digitalSignature, so its key may \
         not sign tokens"
    )]
    LeafKeyUsage {
        /// The leaf's subject.
        subject: String,
    },
    /// The leaf's key is not RSA.
    #[error("the leaf certificate's key is not RSA, so it cannot verify an RS256 token")]
    LeafNotRsa,
}

/// Why the pinned root cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnusableRoot {
    /// A PEM file whose first block is not a certificate (a key, say).
    #[error("PEM block is {tag}, not CERTIFICATE")]
    NotACertificate {
        /// The block's label, e.g. `PRIVATE KEY`.
        tag: String,
    },
    /// The bytes are not a DER certificate.
    #[error("{0}")]
    Der(#[source] DerError),
    /// A certificate, but not one webpki can anchor a path in.
    #[error("not usable as a trust anchor: {0}")]
    Anchor(#[source] webpki::Error),
}

/// Certificate signature algorithms accepted anywhere in the chain.
static SIGNATURE_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    algorithms::RSA_PKCS1_2048_8192_SHA256,
    algorithms::RSA_PKCS1_2048_8192_SHA384,
    algorithms::RSA_PKCS1_2048_8192_SHA512,
    algorithms::ECDSA_P256_SHA256,
    algorithms::ECDSA_P256_SHA384,
    algorithms::ECDSA_P384_SHA256,
    algorithms::ECDSA_P384_SHA384,
];

/// Accepts any extended key usage, or none (see the module documentation). webpki applies it to
/// every certificate on the path and itself refuses an empty EKU extension; malformed purpose
/// identifiers are still refused here.
struct AnyPurpose;

impl ExtendedKeyUsageValidator for AnyPurpose {
    fn validate(&self, purposes: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in purposes {
            purpose?;
        }
        Ok(())
    }
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
                return Err(PkiError::BadRoot(UnusableRoot::NotACertificate {
                    tag: block.tag().to_owned(),
                }))
            }
            Err(_) => bytes.to_vec(),
        };
        X509Certificate::from_der(&der).map_err(|e| PkiError::BadRoot(UnusableRoot::Der(e)))?;
        webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
            .map_err(|e| PkiError::BadRoot(UnusableRoot::Anchor(e)))?;
        Ok(PkiRoot { der })
    }

    /// The root certificate, DER-encoded.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

fn parse(index: usize, der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|source| PkiError::BadCertificate { index, source })
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

/// The presented chain as subjects, leaf first, then the pinned root, for error messages.
fn describe_chain(certs: &[X509Certificate<'_>], root: &X509Certificate<'_>) -> String {
    certs
        .iter()
        .map(|cert| format!("\"{}\"", cert.subject()))
        .chain(std::iter::once(format!(
            "pinned root \"{}\"",
            root.subject()
        )))
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// Names webpki's reason for refusing the path.
fn path_error(source: webpki::Error, chain: String, leaf: &X509Certificate<'_>) -> PkiError {
    use webpki::Error as E;
    match source {
        E::InvalidSignatureForPublicKey => PkiError::BadSignature { chain, source },
        E::UnknownIssuer => PkiError::UnknownIssuer { chain, source },
        E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::SignatureAlgorithmMismatch => PkiError::UnsupportedAlgorithm { chain, source },
        E::EndEntityUsedAsCa => PkiError::IssuerNotCa { chain, source },
        E::CaUsedAsEndEntity => PkiError::LeafIsCa {
            subject: leaf.subject().to_string(),
            source,
        },
        E::PathLenConstraintViolated => PkiError::PathLength { chain, source },
        E::UnsupportedCriticalExtension => PkiError::CriticalExtension { chain, source },
        _ => PkiError::Rejected { chain, source },
    }
}

/// The certificate's keyUsage, `None` when it has none (then RFC 5280 places no limit).
fn key_usage<'a>(
    cert: &'a X509Certificate<'_>,
) -> Result<Option<&'a x509_parser::extensions::KeyUsage>, PkiError> {
    cert.key_usage()
        .map(|usage| usage.map(|extension| extension.value))
        .map_err(|e| bad_extension(cert, "keyUsage", e))
}

fn bad_extension(
    cert: &X509Certificate<'_>,
    extension: &'static str,
    source: X509Error,
) -> PkiError {
    PkiError::BadExtension {
        subject: cert.subject().to_string(),
        extension,
        source,
    }
}

/// Verifies the chain at `at` (Unix seconds) and returns the leaf's RSA public key as PKCS#1 DER.
pub fn verify_chain(chain: &[Vec<u8>], root: &PkiRoot, at: i64) -> Result<Vec<u8>, PkiError> {
    let root_cert = X509Certificate::from_der(&root.der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::BadRoot(UnusableRoot::Der(e)))?;
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
    // webpki checks lifetimes too, but cannot say whose has run out.
    for cert in certs.iter().chain(std::iter::once(&root_cert)) {
        check_lifetime(cert, at)?;
    }
    if !root_cert.is_ca() {
        return Err(PkiError::NotCa {
            subject: root_cert.subject().to_string(),
        });
    }

    let root_der = CertificateDer::from(root.der.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&root_der)
        .map_err(|e| PkiError::BadRoot(UnusableRoot::Anchor(e)))?];
    let leaf_der = CertificateDer::from(presented[0].as_slice());
    let intermediates: Vec<CertificateDer<'_>> = presented[1..]
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(at).unwrap_or(0)));
    let refused = |source| path_error(source, describe_chain(&certs, &root_cert), &certs[0]);
    let leaf = EndEntityCert::try_from(&leaf_der).map_err(refused)?;
    let path = leaf
        .verify_for_usage(
            SIGNATURE_ALGORITHMS,
            &anchors,
            &intermediates,
            time,
            AnyPurpose,
            None,
            None,
        )
        .map_err(refused)?;

    // What webpki leaves out, on the path it verified: the intermediates it used, then the root.
    // webpki only had the presented certificates to choose from, so each one it used is found.
    let used = path
        .intermediate_certificates()
        .map(|cert| {
            let der = cert.der();
            presented
                .iter()
                .position(|presented| presented.as_slice() == der.as_ref())
                .map(|index| &certs[index])
                .ok_or_else(|| refused(webpki::Error::UnknownIssuer))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let root_constraints = root_cert
        .basic_constraints()
        .map_err(|e| bad_extension(&root_cert, "basicConstraints", e))?;
    if let Some(limit) =
        root_constraints.and_then(|constraints| constraints.value.path_len_constraint)
    {
        if used.len() > limit as usize {
            return Err(PkiError::RootPathLength {
                subject: root_cert.subject().to_string(),
                limit,
                found: used.len(),
            });
        }
    }
    for issuer in used.iter().copied().chain(std::iter::once(&root_cert)) {
        if key_usage(issuer)?.is_some_and(|usage| !usage.key_cert_sign()) {
            return Err(PkiError::IssuerKeyUsage {
                subject: issuer.subject().to_string(),
            });
        }
    }
    let leaf_cert = &certs[0];
    if key_usage(leaf_cert)?.is_some_and(|usage| !usage.digital_signature()) {
        return Err(PkiError::LeafKeyUsage {
            subject: leaf_cert.subject().to_string(),
        });
    }
    let leaf_key = leaf_cert.public_key();
    if leaf_key.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return Err(PkiError::LeafNotRsa);
    }
    Ok(leaf_key.subject_public_key.data.to_vec())
}

#[cfg(all(test, feature = "dev"))]
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
        // A root of another name: no certificate in the chain names it as issuer.
        assert!(matches!(
            verify_chain(&chain[..2], &other, now),
            Err(PkiError::UnknownIssuer { .. })
        ));
    }
}
