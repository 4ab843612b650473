//! The functions this node serves, by name: one [`Function`] per name, the
//! active version, swapped whole on a deploy or rollback.

use crate::error::{Error, Result};
use crate::function::Function;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// The served functions, and a signal for those who follow changes.
#[derive(Default)]
pub(crate) struct Registry {
    functions: RwLock<HashMap<String, Arc<Function>>>,
    changed: Arc<Notify>,
}

impl Registry {
    /// The function `name` serves now: the version an invocation keeps.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Function>> {
        self.functions
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::FunctionNotFound(name.to_string()))
    }

    /// Every function being served, at this moment.
    pub(crate) fn snapshot(&self) -> Vec<Arc<Function>> {
        self.functions.read().values().cloned().collect()
    }

    /// Names of the functions served.
    pub(crate) fn names(&self) -> Vec<String> {
        self.functions.read().keys().cloned().collect()
    }

    /// Serves `f` under its name; returns the one it replaces.
    pub(crate) fn insert(&self, f: Arc<Function>) -> Option<Arc<Function>> {
        let old = self.functions.write().insert(f.name.clone(), f);
        self.changed.notify_waiters();
        old
    }

    /// Stops serving `name`; returns what was served.
    pub(crate) fn remove(&self, name: &str) -> Option<Arc<Function>> {
        let old = self.functions.write().remove(name);
        self.changed.notify_waiters();
        old
    }

    /// Woken whenever the set of functions changes.
    pub(crate) fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }
}
