//! Every domain of `tenants_domain`, in memory, so that a host no tenant
//! has is refused without a query.
//!
//! A flood of random names would otherwise cost a database lookup per name
//! and fill the host cache with names nobody asks for twice. The directory
//! holds only names that exist, so it is as big as the table, whatever
//! clients send.
//!
//! It is filled by [`super::notify`] when its LISTEN connection comes up
//! (after `LISTEN`, so no change falls between the two) and then follows
//! the notifications, which arrive in commit order. While there is no
//! LISTEN connection the directory is not trusted and every host is looked
//! up, as before it was loaded.
//!
//! Absence is what the directory answers; presence only sends the host on
//! to the cache and the lookup. A name kept too long therefore costs a
//! query and nothing else, while a name missing too long would refuse a
//! real tenant. So this instance's own API adds the domains it creates at
//! once, and only notifications remove names: a removal cannot overtake a
//! later addition of the same name.
//!
//! Between a commit by another writer (psql, Django, another instance) and
//! its notification, a new domain answers `404`; API.md gives changes a
//! second to be seen.

use std::collections::HashSet;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// The set of domain names, and whether it can be trusted.
#[derive(Debug, Default)]
pub struct Directory {
    names: RwLock<HashSet<Box<str>>>,
    ready: AtomicBool,
}

impl Directory {
    /// An empty directory, not trusted until [`Directory::fill`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `host` is a domain: `None` while the directory is not
    /// trusted.
    pub fn knows(&self, host: &str) -> Option<bool> {
        if !self.ready.load(Ordering::Acquire) {
            return None;
        }
        Some(self.read().contains(host))
    }

    /// Replaces every name with `names`, read after `LISTEN`, and trusts
    /// the directory from now on.
    pub fn fill(&self, names: impl IntoIterator<Item = String>) {
        let names: HashSet<Box<str>> = names.into_iter().map(String::into_boxed_str).collect();
        *self.write() = names;
        self.ready.store(true, Ordering::Release);
    }

    /// Stops trusting the directory and frees its names (the LISTEN
    /// connection is gone; changes may be missed until it is back).
    pub fn forget(&self) {
        self.ready.store(false, Ordering::Release);
        *self.write() = HashSet::new();
    }

    /// Applies one domain row's change: `old` is gone, `new` exists. An
    /// update that keeps the name passes it as both and keeps it.
    pub fn apply(&self, old: Option<&str>, new: Option<&str>) {
        let mut names = self.write();
        if let Some(old) = old {
            names.remove(old);
        }
        if let Some(new) = new {
            names.insert(new.into());
        }
    }

    /// Adds a domain this instance has just committed.
    pub fn add(&self, domain: &str) {
        self.apply(None, Some(domain));
    }

    /// How many names it holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether it holds no name.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<Box<str>>> {
        // A panic while holding the lock cannot leave the set half-changed
        // (every change is one call), so a poisoned lock is still sound.
        self.names
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<Box<str>>> {
        self.names
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_until_filled_and_after_forgetting() {
        let directory = Directory::new();
        assert_eq!(directory.knows("a.test"), None);
        directory.fill(["a.test".to_owned()]);
        assert_eq!(directory.knows("a.test"), Some(true));
        assert_eq!(directory.knows("b.test"), Some(false));
        directory.forget();
        assert_eq!(directory.knows("a.test"), None);
        assert!(directory.is_empty());
    }

    #[test]
    fn follows_inserts_renames_and_deletes() {
        let directory = Directory::new();
        directory.fill(Vec::new());
        directory.apply(None, Some("a.test"));
        assert_eq!(directory.knows("a.test"), Some(true));
        directory.apply(Some("a.test"), Some("a.test"));
        assert_eq!(directory.knows("a.test"), Some(true));
        directory.apply(Some("a.test"), Some("b.test"));
        assert_eq!(directory.knows("a.test"), Some(false));
        assert_eq!(directory.knows("b.test"), Some(true));
        directory.apply(Some("b.test"), None);
        assert_eq!(directory.len(), 0);
    }

    /// Notifications that were already in the load are applied again after
    /// it; the last change of each name still wins.
    #[test]
    fn replaying_changes_the_load_saw_ends_in_the_same_set() {
        let directory = Directory::new();
        // a.test was deleted then added back before the load; c.test added
        // then deleted.
        directory.fill(["a.test".to_owned()]);
        directory.apply(Some("a.test"), None);
        directory.apply(None, Some("a.test"));
        directory.apply(None, Some("c.test"));
        directory.apply(Some("c.test"), None);
        assert_eq!(directory.knows("a.test"), Some(true));
        assert_eq!(directory.knows("c.test"), Some(false));
    }
}
