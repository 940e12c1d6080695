//! The small numbers the sans-IO sync core knows peers by ([`Peer`]), mapped to and from
//! libp2p peer IDs.
//!
//! A peer is forgotten when its last connection closes, so the map holds connected peers
//! only: a relay that sees millions of throwaway peer IDs over its life keeps none of them.
//! Numbers are never reused, so a message the core addresses to a forgotten peer goes
//! nowhere instead of to whichever peer took its number.

use std::collections::HashMap;
use std::hash::Hash;

use crate::walytis::sync::Peer;

/// Peer IDs ↔ the core's [`Peer`] numbers.
#[derive(Debug)]
pub struct PeerIndex<K> {
    numbers: HashMap<K, Peer>,
    ids: HashMap<Peer, K>,
    next: Peer,
}

impl<K> Default for PeerIndex<K> {
    fn default() -> Self {
        PeerIndex {
            numbers: HashMap::new(),
            ids: HashMap::new(),
            next: 0,
        }
    }
}

impl<K: Copy + Eq + Hash> PeerIndex<K> {
    /// The number of `id`, given it now if it has none.
    pub fn number(&mut self, id: K) -> Peer {
        if let Some(number) = self.numbers.get(&id) {
            return *number;
        }
        let number = self.next;
        self.next += 1;
        self.numbers.insert(id, number);
        self.ids.insert(number, id);
        number
    }

    /// The number of `id` if it has one; never gives one.
    pub fn known(&self, id: &K) -> Option<Peer> {
        self.numbers.get(id).copied()
    }

    /// The peer ID behind a number, if that peer is still known.
    pub fn id(&self, number: Peer) -> Option<K> {
        self.ids.get(&number).copied()
    }

    /// Forgets `id` (its last connection closed).
    pub fn forget(&mut self, id: &K) {
        if let Some(number) = self.numbers.remove(id) {
            self.ids.remove(&number);
        }
    }

    /// How many peers are known.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgotten_peers_are_dropped_and_their_numbers_never_reused() {
        let mut index = PeerIndex::default();
        let a = index.number('a');
        let b = index.number('b');
        assert_eq!(index.number('a'), a);
        index.forget(&'a');
        assert_eq!(index.known(&'a'), None);
        assert_eq!(
            index.id(a),
            None,
            "a message to a forgotten peer goes nowhere"
        );
        assert_eq!(index.len(), 1);
        // A churn of throwaway peers leaves nothing behind.
        for n in 0..10_000u32 {
            let key = char::from_u32(0x1000 + n).expect("char");
            index.number(key);
            index.forget(&key);
        }
        assert_eq!(index.len(), 1);
        let again = index.number('a');
        assert!(
            again != a && again != b,
            "a returning peer gets a fresh number"
        );
        assert_eq!(index.id(b), Some('b'));
    }
}
