//! RSA signing keys for the dev launcher, and compact-JWS assembly with arbitrary headers.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Why a dev signing key (or the dev PKI) could not be made, loaded, saved or used.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// aws-lc could not generate an RSA key, or encode it as PKCS#8.
    #[error("generating an RSA key failed: {0}")]
    Generate(#[source] aws_lc_rs::error::Unspecified),
    /// A freshly generated key was not accepted back as a signing key.
    #[error("generating an RSA key failed: {0}")]
    GeneratedKey(#[source] InvalidKey),
    /// The key file cannot be used, read or written; the cause says how to fix it.
    #[error("the key file {} is unusable: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyFileError,
    },
    /// Signing a token failed.
    #[error("signing failed: {0}")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// A step of building the dev attestation PKI failed.
    #[error("building the dev PKI failed ({step}): {source}")]
    Pki {
        /// The step, e.g. "writing the root".
        step: &'static str,
        /// What failed.
        #[source]
        source: DevPkiError,
    },
}

/// Why PKCS#8 bytes are not a usable RS256 signing key.
#[derive(Debug, thiserror::Error)]
pub enum InvalidKey {
    /// aws-lc does not accept it as an RSA private key.
    #[error("{0}")]
    Rejected(#[source] aws_lc_rs::error::KeyRejected),
    /// jsonwebtoken does not accept it as an RSA signing key.
    #[error("{0}")]
    Encoding(#[source] jsonwebtoken::errors::Error),
}

/// What is wrong with a key file, worded with the fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The path is a symbolic link.
    #[error(
        "it is a symbolic link, and a key is only used from a file the launcher's user owns \
         outright; replace the link with the key file itself (mode 0600), or delete it to have a \
         new key generated"
    )]
    Symlink,
    /// The path is a directory, FIFO, socket or device.
    #[error("it is not a regular file; delete {} to have a new key generated", path.display())]
    NotRegularFile {
        /// The key file.
        path: PathBuf,
    },
    /// Another user owns the file.
    #[error(
        "it is owned by uid {owner}, not by the user running the launcher (uid {me}), so someone \
         else may have chosen or read the key; delete {shown} to have a new key generated, or if \
         you trust it, `chown {me} {shown}` and `chmod 600 {shown}`",
        shown = path.display()
    )]
    Owner {
        /// The key file.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// The launcher's effective uid.
        me: u32,
    },
    /// Group or others have permissions on the file.
    #[error(
        "its mode is {mode:04o}, so group or others can read or change the private key; run \
         `chmod 600 {shown}` (or delete it to have a new key generated)",
        shown = path.display()
    )]
    Mode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Opening or reading it failed.
    #[error("{0}")]
    Read(#[source] std::io::Error),
    /// It is not PEM.
    #[error("{0}")]
    Pem(#[source] pem::PemError),
    /// Its PEM block is not an RS256 signing key.
    #[error("{0}")]
    Key(#[source] InvalidKey),
    /// Writing a new key to it failed.
    #[error("{0}")]
    Write(#[source] std::io::Error),
}

/// What failed while building the dev PKI.
#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    /// rcgen could not take a key or issue a certificate.
    #[error("{0}")]
    Certificate(#[from] rcgen::Error),
    /// The PKI directory or root file could not be created, read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The kept root certificate is not PEM.
    #[error("{0}")]
    Pem(#[from] pem::PemError),
    /// A validity date is out of range.
    #[error("{0}")]
    Time(#[from] time::error::ComponentRange),
}

/// An RS256 signing key with its RFC 7638 thumbprint as `kid`.
pub struct SigningKey {
    kid: String,
    pkcs8: Zeroizing<Vec<u8>>,
    encoding: EncodingKey,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid={})", self.kid)
    }
}

impl SigningKey {
    /// A new random RSA-2048 key.
    pub fn generate() -> Result<Self, SigningError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(SigningError::Generate)?;
        let der = pair.as_der().map_err(SigningError::Generate)?;
        Self::from_pkcs8(der.as_ref()).map_err(SigningError::GeneratedKey)
    }

    /// The RSA key in `der` (PKCS#8), with its thumbprint as `kid`.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, InvalidKey> {
        let pair = KeyPair::from_pkcs8(der).map_err(InvalidKey::Rejected)?;
        let public = pair.public_key();
        let modulus = public.modulus().big_endian_without_leading_zero().to_vec();
        let exponent = public.exponent().big_endian_without_leading_zero().to_vec();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec()));
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(InvalidKey::Encoding)?;
        let thumbprint_input = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(&exponent),
            URL_SAFE_NO_PAD.encode(&modulus)
        );
        let kid = hex::encode(&Sha256::digest(thumbprint_input.as_bytes())[..20]);
        Ok(SigningKey {
            kid,
            pkcs8: Zeroizing::new(der.to_vec()),
            encoding,
            modulus,
            exponent,
        })
    }

    /// Loads the key kept at `path`, or creates one there (mode 0600) so restarts keep the same kid.
    ///
    /// An existing file is used only if it is a regular file (not a symlink), owned by the
    /// effective user and private to it: whoever else can write it chooses the key the launcher
    /// signs with, and whoever else can read it can mint tokens the launcher's issuer vouches for.
    /// The checks are made on the open descriptor, so the file cannot be swapped in between.
    pub fn load_or_create(path: &Path) -> Result<Self, SigningError> {
        let key_error = |source: KeyFileError| SigningError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match read_private_file(path).map_err(key_error)? {
            Some(bytes) => {
                let block = pem::parse(&*bytes).map_err(|e| key_error(KeyFileError::Pem(e)))?;
                Self::from_pkcs8(block.contents()).map_err(|e| key_error(KeyFileError::Key(e)))
            }
            None => {
                let key = Self::generate()?;
                key.save(path)
                    .map_err(|e| key_error(KeyFileError::Write(e)))?;
                Ok(key)
            }
        }
    }

    /// Writes the private key to `path` as PKCS#8 PEM, mode 0600, replacing it atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let pem = Zeroizing::new(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            self.pkcs8.to_vec(),
        )));
        crate::fsutil::write_atomically(path, pem.as_bytes(), 0o600)
    }

    /// The key's `kid`: the first 20 bytes of its RFC 7638 thumbprint, hex.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, PKCS#8 DER. Secret: only for building certificates in tests and the
    /// dev PKI.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half as a JWK, as an issuer publishes it.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.modulus),
            "e": URL_SAFE_NO_PAD.encode(&self.exponent),
        })
    }

    /// Signs `claims` as an RS256 compact JWS under `header`, adding this key's `kid` and
    /// `typ: JWT` unless the header already has them (tests forge mismatched kids on purpose).
    pub fn sign(
        &self,
        mut header: Map<String, Value>,
        claims: &Value,
    ) -> Result<String, SigningError> {
        header.entry("kid").or_insert_with(|| json!(self.kid));
        header.entry("typ").or_insert_with(|| json!("JWT"));
        self.sign_with_header(header, claims)
    }

    /// Signs with exactly `header`, plus `alg: RS256`.
    pub fn sign_with_header(
        &self,
        mut header: Map<String, Value>,
        claims: &Value,
    ) -> Result<String, SigningError> {
        header.insert("alg".into(), json!("RS256"));
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::RS256)
                .map_err(SigningError::Sign)?;
        Ok(format!("{message}.{signature}"))
    }
}

/// Reads a file that holds a secret, or `None` if there is none. The file must be a regular file,
/// not a symlink, owned by the effective user, with no group or other permission bits; otherwise
/// the error says why and how to fix it.
///
/// The checks are made on the open descriptor (`O_NOFOLLOW`, then `fstat`) and the bytes are read
/// from that same descriptor, so the file cannot be swapped between the check and the read.
/// `O_NONBLOCK` keeps a FIFO planted at `path` from blocking the open before it can be refused.
fn read_private_file(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, KeyFileError> {
    use rustix::fs::OFlags;
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW fails with ELOOP when the last component is a symlink.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(KeyFileError::Symlink)
        }
        Err(e) => return Err(KeyFileError::Read(e)),
    };
    let metadata = file.metadata().map_err(KeyFileError::Read)?;
    if !metadata.file_type().is_file() {
        return Err(KeyFileError::NotRegularFile {
            path: path.to_owned(),
        });
    }
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me {
        return Err(KeyFileError::Owner {
            path: path.to_owned(),
            owner: metadata.uid(),
            me,
        });
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Mode {
            path: path.to_owned(),
            mode,
        });
    }
    // Sized up front so the secret is not left behind in buffers a growing Vec frees.
    let capacity = metadata.len().min(1 << 20) as usize;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.read_to_end(&mut bytes).map_err(KeyFileError::Read)?;
    Ok(Some(bytes))
}

/// A JWKS document for `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Value {
    json!({ "keys": keys.into_iter().map(SigningKey::jwk).collect::<Vec<_>>() })
}
