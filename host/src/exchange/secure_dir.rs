//! Directories secret files are written into, opened so that nobody else can redirect the write.
//!
//! A path is checked and then used; between the two, whoever can write a parent directory can
//! swap a component for a symlink and send a secret elsewhere. So the delivery root and every
//! directory under it are opened one component at a time from `/` with `O_NOFOLLOW`, checked
//! with `fstat` on the open descriptor, and every file operation is relative to that descriptor
//! (`openat`, `linkat`, `renameat`, `unlinkat`). Directories at or under the delivery root must be
//! owned by this user and writable by nobody else; the root's ancestors must not be symlinks, must
//! be owned by root or this user, and when others may write them, must be sticky (as `/tmp` is).

use rustix::fs::{AtFlags, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a directory is not safe to write secrets into.
#[derive(Debug, thiserror::Error)]
pub enum UnsafeDir {
    /// A component of the path is a symlink, or not a directory at all.
    #[error("{path} is a symbolic link or not a directory; give the real path")]
    NotADirectory {
        /// The path up to that component.
        path: PathBuf,
    },
    /// The directory belongs to another user.
    #[error("{path} is owned by uid {owner}, not by this user (uid {me})")]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// Others may write the directory (and it is not a sticky ancestor like `/tmp`).
    #[error("{path} is writable by other users (mode {mode:o}); make it 0700")]
    Writable {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A system call on the directory (open, create, stat) failed.
    #[error("{path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// What the system call said.
        #[source]
        source: std::io::Error,
    },
}

/// A directory opened without following symlinks and found safe to write secrets into.
pub(super) struct SecureDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(rustix::io::Errno) -> UnsafeDir + '_ {
    move |errno| UnsafeDir::Io {
        path: path.to_owned(),
        source: errno.into(),
    }
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC);

impl SecureDir {
    /// Opens the absolute directory `path`, creating missing directories under `root` with mode
    /// 0700. `path` must be `root` or lie under it; both are lexically normal (configuration
    /// validation made them so).
    pub(super) fn open(path: &Path, root: &Path) -> Result<SecureDir, UnsafeDir> {
        let me = rustix::process::geteuid().as_raw();
        let mut current = PathBuf::from("/");
        let mut fd = rustix::fs::open("/", DIR_FLAGS, Mode::empty()).map_err(io(&current))?;
        for component in path.components() {
            let Component::Normal(name) = component else {
                continue;
            };
            current.push(name);
            let private = current.starts_with(root);
            let next = match rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty()) {
                Err(rustix::io::Errno::NOENT) if private => {
                    match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o700)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(errno) => return Err(io(&current)(errno)),
                    }
                    rustix::fs::openat(&fd, name, DIR_FLAGS, Mode::empty())
                }
                other => other,
            };
            fd = match next {
                Ok(fd) => fd,
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                    return Err(UnsafeDir::NotADirectory { path: current })
                }
                Err(errno) => return Err(io(&current)(errno)),
            };
            let stat = rustix::fs::fstat(&fd).map_err(io(&current))?;
            let mode = stat.st_mode & 0o7777;
            let others_write = mode & 0o022 != 0;
            if private {
                if stat.st_uid != me {
                    return Err(UnsafeDir::Owner {
                        path: current,
                        owner: stat.st_uid,
                        me,
                    });
                }
                if others_write {
                    return Err(UnsafeDir::Writable {
                        path: current,
                        mode,
                    });
                }
            } else if others_write
                && (mode & 0o1000 == 0 || (stat.st_uid != 0 && stat.st_uid != me))
            {
                return Err(UnsafeDir::Writable {
                    path: current,
                    mode,
                });
            }
        }
        Ok(SecureDir {
            fd,
            path: path.to_owned(),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to a new, synced temporary file (mode 0600) and returns its name.
    pub(super) fn stage(&self, name: &OsStr, bytes: &[u8]) -> std::io::Result<OsString> {
        let temp = leftover_name(name, "tmp");
        let fd = rustix::fs::openat(
            &self.fd,
            &temp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut file = std::fs::File::from(fd);
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if let Err(e) = written {
            self.remove(&temp);
            return Err(e);
        }
        Ok(temp)
    }

    /// Keeps what is at `name` under a backup name (a second link), if anything is.
    pub(super) fn back_up(&self, name: &OsStr) -> std::io::Result<Option<OsString>> {
        let backup = leftover_name(name, "bak");
        match rustix::fs::linkat(&self.fd, name, &self.fd, &backup, AtFlags::empty()) {
            Ok(()) => Ok(Some(backup)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(errno) => Err(errno.into()),
        }
    }

    pub(super) fn rename(&self, from: &OsStr, to: &OsStr) -> std::io::Result<()> {
        Ok(rustix::fs::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Reads the regular file `name` (not through a symlink).
    pub(super) fn read(&self, name: &OsStr) -> std::io::Result<Vec<u8>> {
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            // NONBLOCK: a FIFO put in place of a secret file must not hang the agent.
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let mut file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes)?;
        Ok(bytes)
    }

    /// Removes `name`, if it is there; failures are of no consequence to the caller.
    pub(super) fn remove(&self, name: &OsStr) {
        let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::empty());
    }

    /// Removes temporary and backup copies of `name` that a crashed run left behind.
    pub(super) fn remove_leftovers(&self, name: &OsStr) -> std::io::Result<()> {
        let prefix = leftover_prefix(name);
        // A fresh descriptor of the same directory: reading it must not move this one's offset.
        let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut stale = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let file = entry.file_name().to_bytes();
            // Exactly `<prefix><16 hex>.tmp|.bak`: a copy of another file whose name starts
            // with this one (`a` and `a-b`) is not this file's leftover.
            let is_leftover = file.strip_prefix(prefix.as_slice()).is_some_and(|rest| {
                rest.len() == 20
                    && rest[..16].iter().all(u8::is_ascii_hexdigit)
                    && (rest.ends_with(b".tmp") || rest.ends_with(b".bak"))
            });
            if is_leftover {
                stale.push(OsStr::from_bytes(file).to_owned());
            }
        }
        for file in stale {
            self.remove(&file);
        }
        Ok(())
    }
}

fn leftover_prefix(name: &OsStr) -> Vec<u8> {
    let mut prefix = b".attestgate-".to_vec();
    prefix.extend_from_slice(name.as_bytes());
    prefix.push(b'-');
    prefix
}

fn leftover_name(name: &OsStr, kind: &str) -> OsString {
    let mut bytes = leftover_prefix(name);
    bytes.extend_from_slice(format!("{:016x}.{kind}", rand::random::<u64>()).as_bytes());
    OsString::from(OsStr::from_bytes(&bytes))
}
