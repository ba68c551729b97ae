//! Sorted maps and sets on a vector, for the client machine's tables.
//!
//! The client's tables are small and bounded (a handful of channels, the
//! requests in flight, a buffer of early events): a sorted vector serves
//! them as well as a `BTreeMap` and iterate in the same key order, so the
//! machine behaves exactly as it did. What it saves is code: a `BTreeMap`
//! instantiates its node logic (split, merge, rebalance) for every key and
//! value type, and that was about a fifth of the browser module.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::fmt;

/// A map sorted by key: binary search to find, insert and remove in place
/// (a ring buffer, so taking the first entry and adding past the last,
/// the common cases, move nothing).
#[derive(Clone)]
pub(crate) struct VecMap<K, V> {
    items: VecDeque<(K, V)>,
}

/// A set sorted by value: a [`VecMap`] without values.
pub(crate) type VecSet<T> = VecMap<T, ()>;

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.items.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<K, V> VecMap<K, V> {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        VecMap {
            items: VecDeque::new(),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    /// The keys in order.
    pub(crate) fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.items.iter().map(|(k, _)| k)
    }

    /// The values in key order.
    pub(crate) fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }

    /// The keys in order, taken.
    pub(crate) fn into_keys(self) -> impl DoubleEndedIterator<Item = K> {
        self.items.into_iter().map(|(k, _)| k)
    }

    /// The values in key order, mutable.
    pub(crate) fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> {
        self.items.iter_mut().map(|(_, v)| v)
    }

    /// The entry with the smallest key.
    pub(crate) fn first_key_value(&self) -> Option<(&K, &V)> {
        self.items.front().map(|(k, v)| (k, v))
    }

    /// Removes and returns the entry with the smallest key.
    pub(crate) fn pop_first(&mut self) -> Option<(K, V)> {
        self.items.pop_front()
    }

    /// Keeps the entries `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.items.retain_mut(|(k, v)| keep(k, v));
    }
}

impl<K: Ord, V> VecMap<K, V> {
    /// Where `key` is, or where it would go.
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.items.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.items[i].1, value)),
            Err(i) => {
                self.items.insert(i, (key, value));
                None
            }
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        self.items.remove(i).map(|(_, v)| v)
    }

    /// The value of `key`.
    pub(crate) fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(&self.items[i].1)
    }

    /// The value of `key`, mutable.
    pub(crate) fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let i = self.find(key).ok()?;
        Some(&mut self.items[i].1)
    }

    /// Whether `key` has an entry.
    pub(crate) fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// The value of `key`, inserting `value` first when there is none.
    pub(crate) fn get_or_insert(&mut self, key: K, value: V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.items.insert(i, (key, value));
                i
            }
        };
        &mut self.items[i].1
    }
}

impl<T: Ord> VecSet<T> {
    /// Adds `value`; whether it was new.
    pub(crate) fn add(&mut self, value: T) -> bool {
        self.insert(value, ()).is_none()
    }

    /// Takes `value` out; whether it was there.
    pub(crate) fn take<Q: Ord + ?Sized>(&mut self, value: &Q) -> bool
    where
        T: Borrow<Q>,
    {
        self.remove(value).is_some()
    }

    /// The smallest value.
    pub(crate) fn first(&self) -> Option<&T> {
        self.items.front().map(|(k, ())| k)
    }
}

impl<T: Ord> FromIterator<T> for VecSet<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut items: Vec<(T, ())> = iter.into_iter().map(|t| (t, ())).collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items.dedup_by(|a, b| a.0 == b.0);
        VecMap {
            items: items.into(),
        }
    }
}

impl<T> IntoIterator for VecSet<T> {
    type Item = T;
    type IntoIter =
        std::iter::Map<std::collections::vec_deque::IntoIter<(T, ())>, fn((T, ())) -> T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().map(|(t, ())| t)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    proptest::proptest! {
        /// Any sequence of inserts and removes leaves the map a BTreeMap
        /// would hold, in the same order, with the same answers on the way.
        #[test]
        fn it_behaves_as_a_btreemap(ops in proptest::collection::vec((0u8..3, 0u8..16, 0u32..100), 0..200)) {
            let mut ours = VecMap::new();
            let mut theirs = BTreeMap::new();
            for (op, key, value) in ops {
                match op {
                    0 => proptest::prop_assert_eq!(ours.insert(key, value), theirs.insert(key, value)),
                    1 => proptest::prop_assert_eq!(ours.remove(&key), theirs.remove(&key)),
                    _ => proptest::prop_assert_eq!(
                        ours.pop_first(),
                        theirs.pop_first()
                    ),
                }
                proptest::prop_assert_eq!(ours.get(&key), theirs.get(&key));
                proptest::prop_assert_eq!(ours.first_key_value(), theirs.first_key_value());
                proptest::prop_assert!(ours.iter().eq(theirs.iter()));
            }
        }
    }

    #[test]
    fn a_set_from_an_iterator_is_sorted_without_duplicates() {
        let set: VecSet<u8> = [3, 1, 3, 2, 1].into_iter().collect();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
    }
}
