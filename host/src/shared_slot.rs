//! One value per configuration key, made once and shared until a reload names another:
//! the DNS resolver (and its cache) and the key-value store (an embedded database can be
//! open only once in a process).

use std::sync::{Arc, Mutex};

/// A process-wide slot holding the value made for the last key asked.
pub struct SharedSlot<K, T: ?Sized> {
    current: Mutex<Option<(K, Arc<T>)>>,
}

impl<K: PartialEq, T: ?Sized> Default for SharedSlot<K, T> {
    fn default() -> SharedSlot<K, T> {
        SharedSlot::new()
    }
}

impl<K: PartialEq, T: ?Sized> SharedSlot<K, T> {
    pub const fn new() -> SharedSlot<K, T> {
        SharedSlot {
            current: Mutex::new(None),
        }
    }

    /// The value made for `key`, or a new one from `make`; a failed `make` leaves the
    /// value in use as it was.
    pub fn get_or_make<E>(&self, key: K, make: impl FnOnce() -> Result<Arc<T>, E>) -> Result<Arc<T>, E> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made_for, value)) = current.as_ref()
            && *made_for == key
        {
            return Ok(Arc::clone(value));
        }
        let value = make()?;
        *current = Some((key, Arc::clone(&value)));
        Ok(value)
    }

    /// The value in use, if any.
    pub fn current(&self) -> Option<Arc<T>> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|(_, value)| Arc::clone(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_made_once_per_key_and_a_failure_keeps_the_one_in_use() {
        let slot: SharedSlot<u8, String> = SharedSlot::new();
        let one = slot.get_or_make(1, || Ok::<_, ()>(Arc::new("one".into()))).unwrap();
        let again = slot.get_or_make(1, || Err(())).unwrap();
        assert!(Arc::ptr_eq(&one, &again));
        assert!(slot.get_or_make(2, || Err(())).is_err());
        assert!(Arc::ptr_eq(&slot.current().unwrap(), &one));
        let two = slot.get_or_make(2, || Ok::<_, ()>(Arc::new("two".into()))).unwrap();
        assert_eq!(*two, "two");
    }
}
