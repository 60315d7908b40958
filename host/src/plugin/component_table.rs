//! Compiled components by their content: plugins made of the same bytes (tenants given the
//! same filter, each with its own settings) share one copy of the compiled code and of the
//! memory images, and a reload compiles nothing that is already loaded. Entries live as
//! long as a plugin holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// A component's identity: the SHA-256 of its bytes. Collision-resistant, because sharing
/// compiled code between two different components (one tenant's with another's) must not
/// be something a component can be crafted to cause.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContentId([u8; 32]);

impl ContentId {
    pub fn of(bytes: &[u8]) -> ContentId {
        ContentId(Sha256::digest(bytes).into())
    }

    /// Its first 16 hex digits: the plugin's version in the log.
    pub fn short(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Default)]
pub struct ComponentTable {
    live: Mutex<HashMap<ContentId, Weak<Component>>>,
}

impl ComponentTable {
    /// The component compiled from these bytes, if a plugin still holds it.
    pub fn get(&self, id: &ContentId) -> Option<Arc<Component>> {
        self.lock().get(id).and_then(Weak::upgrade)
    }

    /// Remembers `component` for plugins loaded later, and forgets the ones no plugin
    /// holds any more.
    pub fn insert(&self, id: ContentId, component: &Arc<Component>) {
        let mut live = self.lock();
        live.retain(|_, held| held.strong_count() > 0);
        live.insert(id, Arc::downgrade(component));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContentId, Weak<Component>>> {
        // A panic while the lock was held leaves a usable map: every operation is one step.
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_id_is_the_sha256_of_the_bytes() {
        // SHA-256("abc"), FIPS 180-2's example.
        assert_eq!(ContentId::of(b"abc").short(), "ba7816bf8f01cfea");
        assert_ne!(ContentId::of(b"abc"), ContentId::of(b"abd"));
    }

    #[test]
    fn an_entry_lives_as_long_as_a_plugin_holds_it() {
        // The smallest component: the magic, version 0x0d, layer 1.
        const EMPTY: &[u8] = b"\0asm\x0d\x00\x01\x00";
        let engine = wasmtime::Engine::default();
        let component = Arc::new(Component::new(&engine, EMPTY).unwrap());
        let table = ComponentTable::default();
        let id = ContentId::of(EMPTY);
        table.insert(id.clone(), &component);
        assert!(table.get(&id).is_some());
        assert!(table.get(&ContentId::of(b"other")).is_none());
        drop(component);
        assert!(table.get(&id).is_none());
        let other = Arc::new(Component::new(&engine, EMPTY).unwrap());
        table.insert(ContentId::of(b"other"), &other);
        assert_eq!(table.lock().len(), 1, "the dead entry is forgotten");
    }
}
