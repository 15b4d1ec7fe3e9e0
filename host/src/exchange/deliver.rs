//! Handing released secrets to the workload: files written atomically, JSON, or environment
//! variables for `attestgate exec`.

use super::report::{ExchangeReport, Released};
use super::secure_dir::{SecureDir, UnsafeDir};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use zeroize::Zeroizing;

/// A secret file that could not be written; nothing staged with it was left behind, and what was
/// at its path before is still there.
#[derive(Debug, thiserror::Error)]
#[error(
    "collaborator \"{collaborator}\": cannot write {path}: {cause}; no secret file was left behind"
)]
pub struct DeliveryError {
    /// Whose secret it was.
    pub collaborator: String,
    /// The file that could not be written.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub cause: DeliveryCause,
}

/// Why a secret file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryCause {
    /// A directory on the way is a symlink, or someone else owns or can write it.
    #[error(transparent)]
    UnsafeDirectory(#[from] UnsafeDir),
    /// Creating, writing, syncing or renaming the file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A secret value that cannot go into the environment of `attestgate exec`.
#[derive(Debug, thiserror::Error)]
#[error(
    "collaborator \"{collaborator}\": the value for {variable} {problem}; nothing was delivered"
)]
pub struct EnvironmentError {
    /// Whose secret it was.
    pub collaborator: String,
    /// The environment variable it was meant for.
    pub variable: String,
    /// What is wrong with the value.
    pub problem: EnvironmentProblem,
}

/// Why a value cannot be an environment variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentProblem {
    /// A NUL byte would end the variable early.
    #[error("contains a NUL byte, which no environment variable can hold")]
    NulByte,
    /// Longer than Linux lets one variable be: no process could be started with it.
    #[error("makes `NAME=value` {bytes} bytes long; Linux starts no process with a variable over {MAX_VARIABLE_BYTES} bytes (deliver it as a file instead)")]
    TooLong {
        /// The length of `NAME=value`.
        bytes: usize,
    },
}

/// The most one `NAME=value` may hold, its terminating NUL included: Linux's `MAX_ARG_STRLEN`
/// (32 pages). A longer one makes `execve` fail with "argument list too long", which for the
/// agent's supervised workload would stop it, and every collaborator's secrets with it, on the
/// next restart.
pub const MAX_VARIABLE_BYTES: usize = 128 * 1024;

/// One file written into place, and what was at its path before.
struct Placed {
    dir: Rc<SecureDir>,
    name: OsString,
    path: PathBuf,
    backup: Option<OsString>,
}

/// Secret files in place, with the previous content of each path kept until [`Delivery::commit`]
/// or put back by [`Delivery::roll_back`].
#[must_use = "commit or roll back a delivery"]
pub struct Delivery {
    placed: Vec<Placed>,
}

/// Secret files delivered for good.
pub struct Delivered {
    files: Vec<(Rc<SecureDir>, OsString, PathBuf)>,
}

impl Delivery {
    /// Keeps the new files and drops the previous content.
    pub fn commit(self) -> Delivered {
        let mut files = Vec::new();
        for placed in self.placed {
            if let Some(backup) = &placed.backup {
                placed.dir.remove(backup);
            }
            files.push((placed.dir, placed.name, placed.path));
        }
        Delivered { files }
    }

    /// Removes the new files and puts back what was at each path before.
    pub fn roll_back(self) {
        roll_back(self.placed);
    }
}

impl Delivered {
    /// The delivered files, in delivery order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(_, _, path)| path.as_path())
    }

    /// Removes every delivered file (when the workload could not be started after all).
    pub fn remove(self) {
        for (dir, name, _) in self.files {
            dir.remove(&name);
        }
    }
}

fn roll_back(placed: Vec<Placed>) {
    for placed in placed.into_iter().rev() {
        match &placed.backup {
            Some(backup) => {
                if placed.dir.rename(backup, &placed.name).is_err() {
                    placed.dir.remove(backup);
                }
            }
            None => placed.dir.remove(&placed.name),
        }
    }
}

struct Staged {
    collaborator: String,
    dir: Rc<SecureDir>,
    name: OsString,
    path: PathBuf,
    temp: OsString,
}

type SecretFile = (String, PathBuf, Zeroizing<String>);

/// One collaborator's secret files: each secret with `file`, and a kept token with `token_file`.
fn files_of(name: &str, released: &Released) -> Vec<SecretFile> {
    let mut files = Vec::new();
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
    files
}

fn files(report: &ExchangeReport) -> Vec<SecretFile> {
    report
        .released()
        .flat_map(|(name, released)| files_of(name, released))
        .collect()
}

/// The SHA-256 of each secret file's content, by path: what [`deliver_changed`] compares with to
/// rewrite only what changed. A digest, so the content itself is not kept twice.
pub type FileDigests = BTreeMap<PathBuf, [u8; 32]>;

/// The digests of the files `released` delivers.
pub fn file_digests(name: &str, released: &Released) -> FileDigests {
    files_of(name, released)
        .into_iter()
        .map(|(_, path, contents)| (path, Sha256::digest(contents.as_bytes()).into()))
        .collect()
}

/// The digests of what is at `paths` now (a path with no readable regular file has none), read
/// through the same symlink-refusing directories as delivery: so a restarted agent rewrites
/// only what changed while it was away.
pub fn digests_on_disk<'a>(
    paths: impl IntoIterator<Item = &'a PathBuf>,
    root: &Path,
) -> FileDigests {
    paths
        .into_iter()
        .filter_map(|path| {
            let dir = SecureDir::open(path.parent()?, root).ok()?;
            let contents = Zeroizing::new(dir.read(path.file_name()?).ok()?);
            Some((path.clone(), Sha256::digest(contents.as_slice()).into()))
        })
        .collect()
}

/// Rewrites the secret files whose content differs from `digests` (which is brought up to
/// date), all or none of them, each atomically by rename; files that did not change are not
/// touched. Returns the paths rewritten.
pub fn deliver_changed<'a>(
    released: impl IntoIterator<Item = (&'a str, &'a Released)>,
    root: &Path,
    digests: &mut FileDigests,
) -> Result<Vec<PathBuf>, DeliveryError> {
    let mut changed = Vec::new();
    let mut fresh = FileDigests::new();
    for (name, released) in released {
        for (collaborator, path, contents) in files_of(name, released) {
            let digest: [u8; 32] = Sha256::digest(contents.as_bytes()).into();
            if digests.get(&path) != Some(&digest) {
                changed.push((collaborator, path.clone(), contents));
            }
            fresh.insert(path, digest);
        }
    }
    let paths: Vec<PathBuf> = changed.iter().map(|(_, path, _)| path.clone()).collect();
    if !changed.is_empty() {
        place(changed, root)?.commit();
    }
    digests.extend(fresh);
    Ok(paths)
}

/// Removes secret files (a collaborator whose access was revoked, or an agent that stops);
/// directories are opened as for writing, so a symlink swapped in is not followed.
pub fn remove_files<'a>(paths: impl IntoIterator<Item = &'a PathBuf>, root: &Path) {
    for path in paths {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        if let Ok(dir) = SecureDir::open(parent, root) {
            dir.remove(name);
        }
    }
}

/// Writes every secret file under the delivery `root` (mode 0600; missing directories are created
/// 0700). Directories are opened without following symlinks and must be this user's alone. All
/// files are staged first and renamed into place only when every one was written; a failure puts
/// back what was there and leaves no secret file behind. Leftovers of a crashed run are removed.
pub fn deliver_files(report: &ExchangeReport, root: &Path) -> Result<Delivery, DeliveryError> {
    place(files(report), root)
}

fn place(files: Vec<SecretFile>, root: &Path) -> Result<Delivery, DeliveryError> {
    // Configuration validation made every path absolute, lexically normal and under `root`, and
    // refused two secrets sharing one.
    let mut dirs: Vec<Rc<SecureDir>> = Vec::new();
    let mut staged: Vec<Staged> = Vec::new();
    let abandon = |staged: &[Staged]| {
        for s in staged {
            s.dir.remove(&s.temp);
        }
    };
    for (collaborator, path, contents) in files {
        let fail = |cause: DeliveryCause| DeliveryError {
            collaborator: collaborator.clone(),
            path: path.clone(),
            cause,
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            abandon(&staged);
            return Err(fail(DeliveryCause::Io(
                std::io::ErrorKind::InvalidInput.into(),
            )));
        };
        let dir = match dirs.iter().find(|d| d.path() == parent) {
            Some(dir) => dir.clone(),
            None => match SecureDir::open(parent, root) {
                Ok(dir) => {
                    let dir = Rc::new(dir);
                    dirs.push(dir.clone());
                    dir
                }
                Err(e) => {
                    abandon(&staged);
                    return Err(fail(e.into()));
                }
            },
        };
        let temp = dir
            .remove_leftovers(name)
            .and_then(|()| dir.stage(name, contents.as_bytes()));
        match temp {
            Ok(temp) => staged.push(Staged {
                collaborator: collaborator.clone(),
                dir,
                name: name.to_owned(),
                path: path.clone(),
                temp,
            }),
            Err(e) => {
                abandon(&staged);
                return Err(fail(e.into()));
            }
        }
    }
    let mut placed: Vec<Placed> = Vec::new();
    for (index, s) in staged.iter().enumerate() {
        let backup = s.dir.back_up(&s.name);
        let moved = backup.and_then(|backup| match s.dir.rename(&s.temp, &s.name) {
            Ok(()) => Ok(backup),
            Err(e) => {
                if let Some(backup) = backup {
                    s.dir.remove(&backup);
                }
                Err(e)
            }
        });
        match moved {
            Ok(backup) => placed.push(Placed {
                dir: s.dir.clone(),
                name: s.name.clone(),
                path: s.path.clone(),
                backup,
            }),
            Err(e) => {
                roll_back(placed);
                abandon(&staged[index..]);
                return Err(DeliveryError {
                    collaborator: s.collaborator.clone(),
                    path: s.path.clone(),
                    cause: e.into(),
                });
            }
        }
    }
    Ok(Delivery { placed })
}

/// `{collaborator: {path: data}}`. A secret read with `field` contributes `{field: value}` to its
/// path's object, so several fields of one path land side by side.
pub fn json_output(report: &ExchangeReport) -> Value {
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
/// tokens with `token_env`. Checked before anything is delivered: a value no environment can
/// hold (a NUL byte, or longer than [`MAX_VARIABLE_BYTES`]) refuses the whole delivery.
pub fn environment(
    report: &ExchangeReport,
) -> Result<Vec<(String, Zeroizing<String>)>, EnvironmentError> {
    let mut env = Vec::new();
    for (collaborator, released) in report.released() {
        env.extend(environment_of(collaborator, released)?);
    }
    Ok(env)
}

/// One collaborator's environment variables, as [`environment`] hands them over.
pub fn environment_of(
    collaborator: &str,
    released: &Released,
) -> Result<Vec<(String, Zeroizing<String>)>, EnvironmentError> {
    let values = released
        .secrets
        .iter()
        .filter_map(|s| s.secret.env.as_ref().map(|var| (var, s.value.to_text())))
        .chain(released.vault_token.iter().filter_map(|kept| {
            kept.env
                .as_ref()
                .map(|var| (var, Zeroizing::new(kept.token.expose().to_owned())))
        }));
    let mut env = Vec::new();
    for (variable, value) in values {
        // `NAME=value`, which with its terminating NUL must fit in `MAX_VARIABLE_BYTES`.
        let bytes = variable.len() + 1 + value.len();
        let problem = if value.as_bytes().contains(&0) {
            Some(EnvironmentProblem::NulByte)
        } else if bytes >= MAX_VARIABLE_BYTES {
            Some(EnvironmentProblem::TooLong { bytes })
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(EnvironmentError {
                collaborator: collaborator.to_owned(),
                variable: variable.clone(),
                problem,
            });
        }
        env.push((variable.clone(), value));
    }
    Ok(env)
}
