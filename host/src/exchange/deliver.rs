//! Handing released secrets to the workload: files written atomically, JSON, or environment
//! variables for `attestgate exec`.

use super::Report;
use serde_json::{Map, Value};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// A secret file that could not be written; every file staged with it was removed again.
#[derive(Debug, thiserror::Error)]
#[error("collaborator \"{collaborator}\": cannot write {path}: {reason}; no secret file was left behind")]
pub struct DeliveryError {
    pub collaborator: String,
    pub path: PathBuf,
    pub reason: String,
}

struct Pending {
    collaborator: String,
    path: PathBuf,
    temp: PathBuf,
}

fn files(report: &Report) -> Vec<(String, PathBuf, Zeroizing<String>)> {
    let mut files = Vec::new();
    for (name, released) in report.released() {
        for secret in &released.secrets {
            if let Some(path) = &secret.secret.file {
                files.push((name.to_owned(), path.clone(), secret.value.to_text()));
            }
        }
        if let Some(kept) = &released.vault_token {
            if let Some(path) = &kept.file {
                files.push((
                    name.to_owned(),
                    path.clone(),
                    Zeroizing::new(kept.token.expose().to_owned()),
                ));
            }
        }
    }
    files
}

/// Writes every secret file (mode 0600; a missing parent directory is created 0700): all are
/// staged as temporary files first and renamed into place only when every one was written, so a
/// failure leaves no secret file behind. Returns the paths written.
pub fn deliver_files(report: &Report) -> Result<Vec<PathBuf>, DeliveryError> {
    // No two secrets share a destination: configuration validation refuses that.
    let files = files(report);
    let mut pending: Vec<Pending> = Vec::new();
    let cleanup = |pending: &[Pending], renamed: usize| {
        for (index, p) in pending.iter().enumerate() {
            let _ = std::fs::remove_file(if index < renamed { &p.path } else { &p.temp });
        }
    };
    for (collaborator, path, contents) in &files {
        let staged = path
            .parent()
            .map_or(Ok(()), crate::fsutil::create_private_dir)
            .and_then(|_| crate::fsutil::write_temp_beside(path, contents.as_bytes(), 0o600));
        match staged {
            Ok(temp) => pending.push(Pending {
                collaborator: collaborator.clone(),
                path: path.clone(),
                temp,
            }),
            Err(e) => {
                cleanup(&pending, 0);
                return Err(DeliveryError {
                    collaborator: collaborator.clone(),
                    path: path.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    for (index, p) in pending.iter().enumerate() {
        if let Err(e) = std::fs::rename(&p.temp, &p.path) {
            cleanup(&pending, index);
            return Err(DeliveryError {
                collaborator: p.collaborator.clone(),
                path: p.path.clone(),
                reason: e.to_string(),
            });
        }
    }
    Ok(pending.into_iter().map(|p| p.path).collect())
}

/// `{collaborator: {path: data}}`. A secret read with `field` contributes `{field: value}` to its
/// path's object, so several fields of one path land side by side.
pub fn json_output(report: &Report) -> Value {
    let mut out = Map::new();
    for (name, released) in report.released() {
        let mut secrets = Map::new();
        for secret in &released.secrets {
            let value = secret.value.value().clone();
            let slot = secrets
                .entry(secret.secret.path.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            match (&secret.secret.field, slot) {
                (Some(field), Value::Object(fields)) => {
                    fields.insert(field.clone(), value);
                }
                (None, Value::Object(fields)) if value.is_object() => {
                    if let Value::Object(all) = value {
                        fields.extend(all);
                    }
                }
                (_, slot) => *slot = value,
            }
        }
        out.insert(name.to_owned(), Value::Object(secrets));
    }
    Value::Object(out)
}

/// The environment variables for `attestgate exec`: each secret with `env`, and kept Vault
/// tokens with `token_env`.
pub fn environment(report: &Report) -> Vec<(String, Zeroizing<String>)> {
    let mut env = Vec::new();
    for (_, released) in report.released() {
        for secret in &released.secrets {
            if let Some(var) = &secret.secret.env {
                env.push((var.clone(), secret.value.to_text()));
            }
        }
        if let Some(kept) = &released.vault_token {
            if let Some(var) = &kept.env {
                env.push((var.clone(), Zeroizing::new(kept.token.expose().to_owned())));
            }
        }
    }
    env
}
