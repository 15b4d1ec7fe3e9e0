//! Files the configuration names: relative paths resolved against the configuration file's
//! directory, and configuration-side files read with a size cap (never a FIFO or a device).

use super::Config;
use std::path::{Path, PathBuf};

/// The most any configuration-side file (plugin configuration, ciphertext) may hold.
const MAX_SMALL_FILE_BYTES: u64 = 1 << 20;

/// A small regular file's text: a FIFO, a device or anything over 1 MiB is refused rather than
/// read (`/dev/zero` must not exhaust memory, a FIFO must not stall the load).
pub(super) fn read_small_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() > MAX_SMALL_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file of at most {MAX_SMALL_FILE_BYTES} bytes"),
        ));
    }
    let mut text = String::new();
    file.take(MAX_SMALL_FILE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

pub(super) fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

impl Config {
    /// Makes every path in the file absolute, relative to `base` (the file's directory).
    pub(super) fn resolve_paths(&mut self, base: &Path) {
        let attestation = &mut self.attestation;
        for path in [
            &mut attestation.launcher_socket,
            &mut attestation.token_file,
        ] {
            resolve(base, path);
        }
        for path in [&mut attestation.jwks_file, &mut attestation.pki_root]
            .into_iter()
            .flatten()
        {
            resolve(base, path);
        }
        for collaborator in &mut self.collaborators {
            resolve(base, &mut collaborator.plugin);
            if let Some(path) = &mut collaborator.plugin_compiled {
                resolve(base, path);
            }
            if let Some(path) = &mut collaborator.plugin_config_file {
                resolve(base, path);
            }
            if let Some(vault) = &mut collaborator.vault {
                for path in [
                    &mut vault.ca_cert,
                    &mut vault.client_cert,
                    &mut vault.client_key,
                    &mut vault.token_file,
                ]
                .into_iter()
                .flatten()
                {
                    resolve(base, path);
                }
            }
            if let Some(file) = collaborator
                .kms
                .as_mut()
                .and_then(|k| k.ciphertext_file.as_mut())
            {
                resolve(base, file);
            }
            for secret in &mut collaborator.secrets {
                if let Some(file) = &mut secret.file {
                    resolve(base, file);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_or_a_device_is_not_read_as_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_small_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(read_small_file(&fifo).is_err(), "refused without blocking");
    }
}
