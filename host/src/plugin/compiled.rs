//! A plugin compiled and linked once (wasmtime's `*Pre`), instantiated afresh for every call.
//!
//! The chain runs one way: [`super::PluginEngine`] makes a [`CompiledPlugin`], which
//! [`super::CollaboratorPolicy`] calls through [`CompiledPlugin::run`], which builds a
//! [`CallStore`] for that call alone.

use super::bindings::{Plugin, PluginPre};
use super::error::FailureKind;
use super::inspect::PluginInfo;
use super::spec::Limits;
use super::store::{CallStore, LogTags, StoreState};
use std::path::{Path, PathBuf};
use wasmtime::Store;

/// A plugin compiled and linked once, instantiated afresh for every call.
pub struct CompiledPlugin {
    pre: PluginPre<StoreState>,
    info: PluginInfo,
    path: PathBuf,
}

impl CompiledPlugin {
    pub(super) fn new(pre: PluginPre<StoreState>, info: PluginInfo, path: PathBuf) -> Self {
        CompiledPlugin { pre, info, path }
    }

    /// What the plugin is: digest, size, contract version, imports and exports.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// The file it was compiled from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `body` against a fresh instance in a fresh store, under `limits`, as of `at` (Unix
    /// seconds). Whatever stops the call is returned as the [`FailureKind`] that stopped it.
    pub(super) fn run<R>(
        &self,
        limits: Limits,
        at: i64,
        tags: LogTags,
        body: impl FnOnce(&Plugin, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R, FailureKind> {
        let mut call = CallStore::new(self.pre.engine(), limits, at, tags);
        let result = self
            .pre
            .instantiate(&mut call.store)
            .and_then(|instance| body(&instance, &mut call.store));
        call.forward_output();
        result.map_err(|error| call.failure(&error))
    }
}
