//! Where secrets may go: every file destination inside its collaborator's directory under the
//! delivery root, away from the files attestgate reads and from each other; every variable
//! allowed and carrying its collaborator's prefix.

use crate::config::delivery::{env_prefix_of, normalise_lexically, refused_variable};
use crate::config::{Config, Problem};
use std::path::{Path, PathBuf};

/// A file destination and the key that names it.
struct Destination {
    path: PathBuf,
    key: String,
}

impl Config {
    /// Normalises every file destination in place and reports those that escape their
    /// collaborator's directory, touch a file attestgate reads, or contain another destination;
    /// and every variable that is refused or lacks the collaborator's prefix.
    pub(in crate::config) fn check_delivery(&mut self, problems: &mut Vec<Problem>) {
        let Some(root) = normalise_lexically(&self.delivery.root).filter(|r| r.is_absolute())
        else {
            problems.push(Problem {
                key: "delivery.root".into(),
                message: format!(
                    "{} must be an absolute path without `..`",
                    self.delivery.root.display()
                ),
            });
            return;
        };
        self.delivery.root = root.clone();
        let reads = self.files_read();
        let mut destinations: Vec<Destination> = Vec::new();
        let env_prefix = self.delivery.env_prefix;
        for (index, collaborator) in self.collaborators.iter_mut().enumerate() {
            let name = collaborator.name.clone();
            let own = root.join(&name);
            let at = |key: String| format!("collaborator[{index}] ({name}).{key}");
            let mut files: Vec<(&mut PathBuf, String)> = Vec::new();
            let mut variables: Vec<(&String, String)> = Vec::new();
            for (n, secret) in collaborator.secrets.iter_mut().enumerate() {
                if let Some(file) = secret.file.as_mut() {
                    files.push((file, at(format!("secret[{n}].file"))));
                }
                if let Some(env) = secret.env.as_ref() {
                    variables.push((env, at(format!("secret[{n}].env"))));
                }
            }
            if let Some(vault) = collaborator.vault.as_mut() {
                if let Some(file) = vault.token_file.as_mut() {
                    files.push((file, at("vault.token_file".into())));
                }
                if let Some(env) = vault.token_env.as_ref() {
                    variables.push((env, at("vault.token_env".into())));
                }
            }
            for (file, key) in files {
                let Some(normal) = normalise_lexically(file) else {
                    problems.push(Problem {
                        key,
                        message: format!(
                            "{} contains `..`; write the path without it",
                            file.display()
                        ),
                    });
                    continue;
                };
                *file = normal.clone();
                if !normal.starts_with(&own) || normal == own {
                    problems.push(Problem {
                        key,
                        message: format!(
                            "{} is outside {}/, the only directory this collaborator's files may go to ([delivery] root is {})",
                            normal.display(),
                            own.display(),
                            root.display()
                        ),
                    });
                    continue;
                }
                destinations.push(Destination { path: normal, key });
            }
            let prefix = env_prefix_of(&collaborator.name);
            for (variable, key) in variables {
                if let Some(why) = refused_variable(variable) {
                    problems.push(Problem {
                        key,
                        message: format!("{variable} may not be set by a collaborator: {why}"),
                    });
                } else if env_prefix && !variable.starts_with(&prefix) {
                    problems.push(Problem {
                        key,
                        message: format!(
                            "{variable} must start with {prefix} ([delivery] env_prefix = true)"
                        ),
                    });
                }
            }
        }
        let real_root = std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        for read in reads
            .iter()
            .filter(|read| read.starts_with(&root) || read.starts_with(&real_root))
        {
            problems.push(Problem {
                key: "delivery.root".into(),
                message: format!(
                    "{} is read by attestgate but lies under the delivery root {} (once symlinks and `..` are resolved): a collaborator could have it read another's delivered secret",
                    read.display(),
                    root.display()
                ),
            });
        }
        if env_prefix {
            self.check_prefix_collisions(problems);
        }
        for (index, destination) in destinations.iter().enumerate() {
            if let Some(read) = reads.iter().find(|read| {
                read.starts_with(&destination.path) || destination.path.starts_with(read)
            }) {
                problems.push(Problem {
                    key: destination.key.clone(),
                    message: format!(
                        "{} would overwrite {}, which attestgate itself reads",
                        destination.path.display(),
                        read.display()
                    ),
                });
            }
            for other in &destinations[index + 1..] {
                let (a, b) = (&destination.path, &other.path);
                if a == b {
                    problems.push(Problem {
                        key: other.key.clone(),
                        message: format!(
                            "{} is already the destination of {}",
                            b.display(),
                            destination.key
                        ),
                    });
                } else if a.starts_with(b) || b.starts_with(a) {
                    problems.push(Problem {
                        key: other.key.clone(),
                        message: format!(
                            "{} and {} ({}) are a directory and a file in it; each destination must be a file of its own",
                            b.display(),
                            a.display(),
                            destination.key
                        ),
                    });
                }
            }
        }
    }

    /// With `env_prefix`, no collaborator's prefix may contain another's (`BANK_` would cover
    /// `BANK_A_`), or they could set each other's variables.
    fn check_prefix_collisions(&self, problems: &mut Vec<Problem>) {
        let prefixes: Vec<String> = self
            .collaborators
            .iter()
            .map(|c| env_prefix_of(&c.name))
            .collect();
        for (index, prefix) in prefixes.iter().enumerate() {
            if let Some(first) = prefixes[..index].iter().position(|other| {
                other.starts_with(prefix.as_str()) || prefix.starts_with(other.as_str())
            }) {
                problems.push(Problem {
                    key: format!("collaborator[{index}] ({}).name", self.collaborators[index].name),
                    message: format!(
                        "its variable prefix {prefix} overlaps collaborator[{first}] ({})'s {}; rename one of them",
                        self.collaborators[first].name, prefixes[first]
                    ),
                });
            }
        }
    }

    /// Every file attestgate reads, normalised: none of them may be a destination.
    fn files_read(&self) -> Vec<PathBuf> {
        let attestation = &self.attestation;
        let mut reads: Vec<&Path> = vec![
            &self.path,
            &attestation.launcher_socket,
            &attestation.token_file,
        ];
        reads.extend(attestation.jwks_file.as_deref());
        reads.extend(attestation.pki_root.as_deref());
        for collaborator in &self.collaborators {
            reads.push(&collaborator.plugin);
            reads.extend(collaborator.plugin_compiled.as_deref());
            reads.extend(collaborator.plugin_config_file.as_deref());
            if let Some(vault) = &collaborator.vault {
                reads.extend(vault.ca_cert.as_deref());
                reads.extend(vault.client_cert.as_deref());
                reads.extend(vault.client_key.as_deref());
            }
            if let Some(kms) = &collaborator.kms {
                reads.extend(kms.ciphertext_file.as_deref());
            }
        }
        let mut found = Vec::new();
        for path in reads {
            let absolute = if path.is_absolute() {
                path.to_owned()
            } else {
                std::env::current_dir().unwrap_or_default().join(path)
            };
            // As written, and where it really leads (symlinks and `..` resolved): every file read
            // must exist, so a path that escapes lexically is caught by its real location.
            match normalise_lexically(&absolute) {
                Some(normal) => found.push(normal),
                None => found.push(absolute.clone()),
            }
            if let Ok(real) = std::fs::canonicalize(&absolute) {
                found.push(real);
            }
        }
        found
    }
}
