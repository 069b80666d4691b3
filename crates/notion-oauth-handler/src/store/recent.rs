//! Copies of hot rows read a moment ago, for the two reads every API call makes (its key, and
//! the token it asks for), so they cost no database round trip.
//!
//! The rule that keeps a copy honest:
//! - a write this store makes to the row drops the copy before the write is answered, and a
//!   read that raced with that write cannot put its older copy back (each key has a version
//!   that the write bumps, and a read stores its copy only if the version is unchanged);
//! - a write by anyone else (another instance, the CLI in another process) is seen within
//!   [`MAX_AGE`], since no copy is used once that old.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a copy is used: the bound on how stale a row written by another process can be.
pub const MAX_AGE: Duration = Duration::from_secs(1);

/// Copies kept at most. Beyond it all are dropped at once: simpler than eviction, and rare.
const CAPACITY: usize = 4096;

/// Recently read rows by key.
#[derive(Debug)]
pub(super) struct Recent<K, V> {
    rows: Mutex<Rows<K, V>>,
    max_age: Duration,
}

#[derive(Debug)]
struct Rows<K, V> {
    slots: HashMap<K, Slot<V>>,
    /// Bumped when every slot is dropped at once, so that reads begun before do not store.
    epoch: u64,
}

#[derive(Debug)]
struct Slot<V> {
    version: u64,
    copy: Option<(Instant, V)>,
}

/// Where a read that missed stood: it may store what it read only if this is still so.
#[derive(Debug, Clone, Copy)]
pub(super) struct Miss {
    epoch: u64,
    version: u64,
    /// When the read began: a copy is as old as the read that made it, however long it took.
    began: Instant,
}

/// What a look-up found.
pub(super) enum Lookup<V> {
    /// A copy young enough to use.
    Hit(V),
    /// None: read the row, then [`Recent::store`] it with this.
    Miss(Miss),
}

impl<K: Eq + Hash + Clone, V: Clone> Recent<K, V> {
    /// Copies used for [`MAX_AGE`].
    pub(super) fn new() -> Self {
        Self::with_max_age(MAX_AGE)
    }

    fn with_max_age(max_age: Duration) -> Self {
        Self { rows: Mutex::new(Rows { slots: HashMap::new(), epoch: 0 }), max_age }
    }

    /// A copy of `key`'s row read less than [`MAX_AGE`] ago, if there is one. A miss leaves a
    /// slot behind, so that a write meanwhile can mark it.
    pub(super) fn get(&self, key: &K) -> Lookup<V> {
        let began = Instant::now();
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = rows.slots.get(key) {
            if let Some((read_at, copy)) = &slot.copy
                && read_at.elapsed() < self.max_age
            {
                return Lookup::Hit(copy.clone());
            }
            return Lookup::Miss(Miss { epoch: rows.epoch, version: slot.version, began });
        }
        if rows.slots.len() >= CAPACITY {
            rows.slots.clear();
            rows.epoch += 1;
        }
        rows.slots.insert(key.clone(), Slot { version: 0, copy: None });
        Lookup::Miss(Miss { epoch: rows.epoch, version: 0, began })
    }

    /// Keeps what a read that missed found, unless the row was written since it looked.
    pub(super) fn store(&self, key: &K, miss: Miss, copy: V) {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        if rows.epoch != miss.epoch {
            return;
        }
        // The slot the miss left is there unless everything was dropped since (a new epoch).
        // Of two reads that raced, the one that began later read the newer row.
        if let Some(slot) = rows.slots.get_mut(key)
            && slot.version == miss.version
            && slot.copy.as_ref().is_none_or(|(read_at, _)| *read_at <= miss.began)
        {
            slot.copy = Some((miss.began, copy));
        }
    }

    /// Drops `key`'s copy: this store has just written its row. A key nobody has read has no
    /// slot, and gets none: writes alone (every new connection) must not fill the map.
    pub(super) fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut rows = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = rows.slots.get_mut(key) {
            slot.version += 1;
            slot.copy = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    fn hit(recent: &Recent<&'static str, u32>, key: &'static str) -> Option<u32> {
        match recent.get(&key) {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss(_) => None,
        }
    }

    fn miss(recent: &Recent<&'static str, u32>, key: &'static str) -> Option<Miss> {
        match recent.get(&key) {
            Lookup::Hit(_) => None,
            Lookup::Miss(miss) => Some(miss),
        }
    }

    #[test]
    fn a_stored_copy_is_used_until_forgotten() {
        let recent = Recent::new();
        let Some(looked) = miss(&recent, "bot") else { panic!("an empty cache hit") };
        recent.store(&"bot", looked, 1);
        assert_eq!(hit(&recent, "bot"), Some(1));
        recent.forget(&"bot");
        assert_eq!(hit(&recent, "bot"), None);
    }

    #[test]
    fn a_copy_is_not_used_once_older_than_the_bound() {
        let recent = Recent::with_max_age(Duration::from_millis(20));
        let Some(looked) = miss(&recent, "bot") else { panic!("an empty cache hit") };
        recent.store(&"bot", looked, 1);
        assert_eq!(hit(&recent, "bot"), Some(1));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(hit(&recent, "bot"), None, "a copy older than the bound was used");
    }

    #[test]
    fn writes_to_rows_nobody_read_leave_nothing_behind() {
        let recent: Recent<String, u32> = Recent::new();
        for n in 0..10_000 {
            recent.forget(&n.to_string());
        }
        let rows = recent.rows.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(rows.slots.is_empty(), "{} slots", rows.slots.len());
    }

    #[test]
    fn of_two_racing_reads_the_later_one_wins_and_a_copy_is_as_old_as_its_read() {
        let recent = Recent::with_max_age(Duration::from_millis(40));
        let Some(first) = miss(&recent, "bot") else { panic!("an empty cache hit") };
        std::thread::sleep(Duration::from_millis(5));
        let Some(second) = miss(&recent, "bot") else { panic!("an empty cache hit") };
        recent.store(&"bot", second, 2);
        recent.store(&"bot", first, 1);
        assert_eq!(hit(&recent, "bot"), Some(2), "the older read overwrote the newer");
        // The first read began 45 ms ago, past the bound, however recently it was stored.
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(hit(&recent, "bot"), None);
    }

    #[test]
    fn a_read_that_raced_with_a_write_does_not_put_back_its_older_copy() {
        let recent = Recent::new();
        let Some(before_write) = miss(&recent, "bot") else { panic!("an empty cache hit") };
        // The write commits and forgets while the read is still on its way back.
        recent.forget(&"bot");
        recent.store(&"bot", before_write, 1);
        assert_eq!(hit(&recent, "bot"), None, "the pre-write copy was kept");
        // A read that starts after the write stores as usual.
        let Some(after_write) = miss(&recent, "bot") else { panic!("a forgotten copy hit") };
        recent.store(&"bot", after_write, 2);
        assert_eq!(hit(&recent, "bot"), Some(2));
    }

    #[test]
    fn when_full_everything_is_dropped_and_reads_begun_before_do_not_store() {
        let recent: Recent<String, u32> = Recent::new();
        let early = match recent.get(&"early".to_owned()) {
            Lookup::Miss(miss) => miss,
            Lookup::Hit(_) => panic!("an empty cache hit"),
        };
        for n in 0..=CAPACITY {
            let key = n.to_string();
            if let Lookup::Miss(miss) = recent.get(&key) {
                recent.store(&key, miss, 0);
            }
        }
        let rows = recent.rows.lock().unwrap_or_else(PoisonError::into_inner);
        // "early" and 4095 more filled it; the next one dropped them all and is kept, as is the
        // one after it.
        assert_eq!((rows.slots.len(), rows.epoch), (2, 1));
        drop(rows);
        recent.store(&"early".to_owned(), early, 7);
        assert!(matches!(recent.get(&"early".to_owned()), Lookup::Miss(_)));
    }
}
