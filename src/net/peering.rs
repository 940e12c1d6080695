//! Shared rendezvous between peered relays, sans-IO.
//!
//! Each relay runs a rendezvous server for its own clients. So that clients of different
//! relays find each other, a relay also answers [`super::protocol::PEERED_PROTOCOL`]
//! lookups:
//! - from a peer relay, with its own registrations: [`Peering`] mirrors them from the
//!   rendezvous server's events (signed peer records, with their expiry);
//! - from a client, with the registrations its peer relays hold: it asks each connected peer
//!   relay once per namespace (concurrent lookups of one namespace share one round), caches
//!   the answers for a short while, and answers every client that asked.
//!
//! Everything is bounded: peer relays, mirrored registrations, cached namespaces, records
//! per answer and clients waiting on one round; TTLs are honoured (a record is dropped when
//! its registration expires, and answers carry the remaining TTL). Rounds end when every
//! asked relay answered, failed or left, or at a deadline, so no client waits forever.

use std::collections::{BTreeSet, HashMap};

use libp2p::core::PeerRecord;
use libp2p::rendezvous::{Namespace, Registration, MAX_TTL};
use libp2p::PeerId;

use super::protocol::{Found, MAX_FOUND};

/// Peer relays asked on each round; further ones are not used.
pub const MAX_PEER_RELAYS: usize = 64;
/// Own registrations mirrored (the rendezvous server's own default cap).
pub const MAX_MIRRORED: usize = 10_000;
/// Namespaces whose peer relays' answers are cached.
pub const MAX_CACHED: usize = 1024;
/// Clients waiting on one round; a further one is answered from the cache at once.
pub const MAX_WAITING: usize = 64;
/// How long a round may wait for slow peer relays before answering with what it has (ms).
pub const ROUND_DEADLINE_MS: u64 = 10_000;

/// What the node must do.
#[derive(Debug)]
pub enum Action<W> {
    /// Ask a peer relay for its own registrations under a namespace.
    Ask {
        /// The peer relay.
        relay: PeerId,
        /// The namespace.
        namespace: Namespace,
    },
    /// Answer a client's lookup.
    Answer {
        /// The client's pending lookup.
        waiter: W,
        /// The registrations found.
        found: Vec<Found>,
    },
}

#[derive(Debug, Clone)]
struct Held {
    record: PeerRecord,
    /// Milliseconds (node time) when the registration expires.
    expires_at: u64,
}

/// The peer relays' answers about one namespace.
struct Round<W> {
    /// When the last round ended; `None` before the first ends.
    fetched_at: Option<u64>,
    /// When the running round started, if one runs.
    started_at: Option<u64>,
    /// Peer relays not answered yet in the running round.
    pending: BTreeSet<PeerId>,
    /// Answers so far in the running round.
    incoming: HashMap<PeerId, Held>,
    /// Answers of the last finished round.
    records: HashMap<PeerId, Held>,
    /// Clients waiting for the running round, with their peer IDs.
    waiting: Vec<(PeerId, W)>,
}

impl<W> Round<W> {
    fn new() -> Self {
        Round {
            fetched_at: None,
            started_at: None,
            pending: BTreeSet::new(),
            incoming: HashMap::new(),
            records: HashMap::new(),
            waiting: Vec::new(),
        }
    }
}

/// A relay's shared-rendezvous state.
pub struct Peering<W> {
    /// How long a finished round's answers are reused (ms).
    fresh_ms: u64,
    /// Connected peer relays.
    relays: BTreeSet<PeerId>,
    /// This relay's own registrations.
    own: HashMap<Namespace, HashMap<PeerId, Held>>,
    mirrored: usize,
    cache: HashMap<Namespace, Round<W>>,
}

fn held(record: PeerRecord, ttl: u64, now: u64) -> Held {
    Held {
        record,
        expires_at: now.saturating_add(ttl.min(MAX_TTL).saturating_mul(1000)),
    }
}

/// Unexpired records other than the asker's own, with their remaining TTLs, at most
/// [`MAX_FOUND`].
fn answer<'a>(
    records: impl Iterator<Item = (&'a PeerId, &'a Held)>,
    asker: PeerId,
    now: u64,
) -> Vec<Found> {
    records
        .filter(|(peer, _)| **peer != asker)
        .filter_map(|(_, held)| {
            let ttl = held.expires_at.saturating_sub(now) / 1000;
            (ttl > 0).then(|| Found {
                record: held.record.clone(),
                ttl,
            })
        })
        .take(MAX_FOUND)
        .collect()
}

impl<W> Peering<W> {
    /// Reuses a namespace's answers for `fresh_ms` before asking the peer relays again.
    pub fn new(fresh_ms: u64) -> Self {
        Peering {
            fresh_ms,
            relays: BTreeSet::new(),
            own: HashMap::new(),
            mirrored: 0,
            cache: HashMap::new(),
        }
    }

    /// Whether `peer` is a connected peer relay.
    pub fn is_relay(&self, peer: &PeerId) -> bool {
        self.relays.contains(peer)
    }

    /// A peer relay connected (it serves the peered protocol). Returns whether it is used.
    pub fn relay_connected(&mut self, relay: PeerId) -> bool {
        if self.relays.len() >= MAX_PEER_RELAYS && !self.relays.contains(&relay) {
            return false;
        }
        self.relays.insert(relay);
        true
    }

    /// A peer relay's last connection closed: rounds stop waiting for it.
    pub fn relay_disconnected(&mut self, now: u64, relay: PeerId) -> Vec<Action<W>> {
        if !self.relays.remove(&relay) {
            return Vec::new();
        }
        let namespaces: Vec<Namespace> = self
            .cache
            .iter()
            .filter(|(_, round)| round.pending.contains(&relay))
            .map(|(namespace, _)| namespace.clone())
            .collect();
        let mut actions = Vec::new();
        for namespace in namespaces {
            actions.extend(self.answered(now, relay, &namespace, None));
        }
        actions
    }

    /// A client registered at this relay's rendezvous server.
    pub fn registered(&mut self, now: u64, registration: &Registration) {
        let peer = registration.record.peer_id();
        let known = self
            .own
            .get(&registration.namespace)
            .is_some_and(|peers| peers.contains_key(&peer));
        if !known && self.mirrored >= MAX_MIRRORED {
            return;
        }
        let entry = held(registration.record.clone(), registration.ttl, now);
        self.own
            .entry(registration.namespace.clone())
            .or_default()
            .insert(peer, entry);
        if !known {
            self.mirrored += 1;
        }
    }

    /// A client unregistered (or, with `record`, this registration of it expired: a
    /// renewed registration stays).
    pub fn unregistered(
        &mut self,
        peer: PeerId,
        namespace: &Namespace,
        record: Option<&PeerRecord>,
    ) {
        let Some(peers) = self.own.get_mut(namespace) else {
            return;
        };
        let current = peers.get(&peer).map(|held| &held.record);
        if current.is_none() || record.is_some_and(|record| Some(record) != current) {
            return;
        }
        peers.remove(&peer);
        self.mirrored -= 1;
        if peers.is_empty() {
            self.own.remove(namespace);
        }
    }

    /// A peer relay's question: this relay's own registrations under `namespace`.
    pub fn own(&mut self, now: u64, namespace: &Namespace, asker: PeerId) -> Vec<Found> {
        let Some(peers) = self.own.get_mut(namespace) else {
            return Vec::new();
        };
        let before = peers.len();
        peers.retain(|_, held| held.expires_at > now);
        self.mirrored -= before - peers.len();
        let found = answer(peers.iter(), asker, now);
        if peers.is_empty() {
            self.own.remove(namespace);
        }
        found
    }

    /// A client's question: the peer relays' registrations under `namespace`. The answer
    /// comes now (fresh cache, no peer relay) or when the round it starts or joins ends.
    pub fn lookup(
        &mut self,
        now: u64,
        namespace: Namespace,
        asker: PeerId,
        waiter: W,
    ) -> Vec<Action<W>> {
        let mut actions = self.expire(now);
        if !self.cache.contains_key(&namespace) && !self.make_room() {
            // Every cached namespace has a round running: nothing to reuse, nothing to evict.
            actions.push(Action::Answer {
                waiter,
                found: Vec::new(),
            });
            return actions;
        }
        let relays = &self.relays;
        let fresh_ms = self.fresh_ms;
        let round = self
            .cache
            .entry(namespace.clone())
            .or_insert_with(Round::new);
        let fresh = round
            .fetched_at
            .is_some_and(|at| now < at.saturating_add(fresh_ms));
        if round.started_at.is_none() && (fresh || relays.is_empty()) {
            let found = answer(round.records.iter(), asker, now);
            actions.push(Action::Answer { waiter, found });
            return actions;
        }
        if round.waiting.len() >= MAX_WAITING {
            let found = answer(round.records.iter(), asker, now);
            actions.push(Action::Answer { waiter, found });
            return actions;
        }
        round.waiting.push((asker, waiter));
        if round.started_at.is_none() {
            round.started_at = Some(now);
            round.pending = relays.clone();
            round.incoming.clear();
            for relay in relays {
                actions.push(Action::Ask {
                    relay: *relay,
                    namespace: namespace.clone(),
                });
            }
        }
        actions
    }

    /// A peer relay answered (`Some`) or failed to (`None`) about `namespace`.
    pub fn answered(
        &mut self,
        now: u64,
        relay: PeerId,
        namespace: &Namespace,
        found: Option<Vec<Found>>,
    ) -> Vec<Action<W>> {
        let Some(round) = self.cache.get_mut(namespace) else {
            return Vec::new();
        };
        if !round.pending.remove(&relay) {
            return Vec::new();
        }
        for found in found.into_iter().flatten().take(MAX_FOUND) {
            let peer = found.record.peer_id();
            let entry = held(found.record, found.ttl, now);
            if round.incoming.len() < MAX_FOUND || round.incoming.contains_key(&peer) {
                round.incoming.insert(peer, entry);
            }
        }
        if round.pending.is_empty() {
            Self::finish(round, now)
        } else {
            Vec::new()
        }
    }

    /// Ends rounds past their deadline; call it now and then.
    pub fn expire(&mut self, now: u64) -> Vec<Action<W>> {
        let mut actions = Vec::new();
        for round in self.cache.values_mut() {
            if round
                .started_at
                .is_some_and(|at| now >= at.saturating_add(ROUND_DEADLINE_MS))
            {
                actions.extend(Self::finish(round, now));
            }
        }
        actions
    }

    fn finish(round: &mut Round<W>, now: u64) -> Vec<Action<W>> {
        round.started_at = None;
        round.pending.clear();
        round.fetched_at = Some(now);
        round.records = std::mem::take(&mut round.incoming);
        std::mem::take(&mut round.waiting)
            .into_iter()
            .map(|(asker, waiter)| Action::Answer {
                waiter,
                found: answer(round.records.iter(), asker, now),
            })
            .collect()
    }

    /// Evicts the least recently fetched idle namespace if the cache is full. Returns
    /// whether there is room for one more.
    fn make_room(&mut self) -> bool {
        if self.cache.len() < MAX_CACHED {
            return true;
        }
        let oldest = self
            .cache
            .iter()
            .filter(|(_, round)| round.started_at.is_none())
            .min_by_key(|(_, round)| round.fetched_at)
            .map(|(namespace, _)| namespace.clone());
        match oldest {
            Some(namespace) => {
                self.cache.remove(&namespace);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn record(addresses: &[&str]) -> PeerRecord {
        let key = Keypair::generate_ed25519();
        let addresses = addresses.iter().map(|a| a.parse().unwrap()).collect();
        PeerRecord::new(&key, addresses).unwrap()
    }

    fn ns(name: &str) -> Namespace {
        Namespace::new(name.into()).unwrap()
    }

    fn registration(record: &PeerRecord, namespace: &str, ttl: u64) -> Registration {
        Registration {
            namespace: ns(namespace),
            record: record.clone(),
            ttl,
        }
    }

    fn asks(actions: &[Action<u32>]) -> Vec<PeerId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Ask { relay, .. } => Some(*relay),
                Action::Answer { .. } => None,
            })
            .collect()
    }

    fn answers(actions: Vec<Action<u32>>) -> Vec<(u32, Vec<PeerId>)> {
        actions
            .into_iter()
            .filter_map(|a| match a {
                Action::Answer { waiter, found } => {
                    Some((waiter, found.iter().map(|f| f.record.peer_id()).collect()))
                }
                Action::Ask { .. } => None,
            })
            .collect()
    }

    #[test]
    fn own_registrations_are_mirrored_until_they_expire_or_are_withdrawn() {
        let mut peering = Peering::<u32>::new(1000);
        let alice = record(&["/ip4/127.0.0.1/tcp/1"]);
        let bob = record(&["/ip4/127.0.0.1/tcp/2"]);
        peering.registered(0, &registration(&alice, "chain", 7200));
        peering.registered(0, &registration(&bob, "chain", 10));
        let asker = PeerId::random();
        let found = peering.own(5_000, &ns("chain"), asker);
        assert_eq!(found.len(), 2);
        let alice_found = found
            .iter()
            .find(|f| f.record.peer_id() == alice.peer_id())
            .unwrap();
        assert_eq!(alice_found.ttl, 7195, "answers carry the remaining TTL");
        // Bob's registration expires; the asker never gets its own record.
        let found = peering.own(10_000, &ns("chain"), alice.peer_id());
        assert!(found.is_empty());
        assert!(peering.own(0, &ns("other"), asker).is_empty());
        // A renewal outlives the expiry of the registration it replaced.
        let renewed = record(&["/ip4/127.0.0.1/tcp/3"]);
        peering.registered(20_000, &registration(&renewed, "chain", 7200));
        let stale = record(&["/ip4/127.0.0.1/tcp/4"]);
        peering.unregistered(renewed.peer_id(), &ns("chain"), Some(&stale));
        assert_eq!(peering.own(20_000, &ns("chain"), asker).len(), 2);
        peering.unregistered(renewed.peer_id(), &ns("chain"), None);
        peering.unregistered(alice.peer_id(), &ns("chain"), Some(&alice));
        assert!(peering.own(20_000, &ns("chain"), asker).is_empty());
        assert_eq!(peering.mirrored, 0);
    }

    #[test]
    fn a_lookup_asks_every_peer_relay_once_and_answers_every_waiting_client() {
        let mut peering = Peering::<u32>::new(1000);
        let (r1, r2) = (PeerId::random(), PeerId::random());
        assert!(peering.relay_connected(r1) && peering.relay_connected(r2));
        let (c1, c2) = (PeerId::random(), PeerId::random());
        let first = peering.lookup(0, ns("chain"), c1, 1);
        assert_eq!(asks(&first).len(), 2);
        let second = peering.lookup(1, ns("chain"), c2, 2);
        assert!(second.is_empty(), "a round is already asking");
        let alice = record(&["/ip4/127.0.0.1/tcp/1/p2p-circuit"]);
        let found = vec![Found {
            record: alice.clone(),
            ttl: 60,
        }];
        assert!(peering
            .answered(2, r1, &ns("chain"), Some(found))
            .is_empty());
        let done = answers(peering.answered(3, r2, &ns("chain"), None));
        assert_eq!(
            done,
            vec![(1, vec![alice.peer_id()]), (2, vec![alice.peer_id()])]
        );
        // Fresh: answered from the cache, nobody asked.
        let cached = peering.lookup(500, ns("chain"), alice.peer_id(), 3);
        assert_eq!(answers(cached), vec![(3, vec![])], "not told about itself");
        // Stale: a new round.
        assert_eq!(asks(&peering.lookup(2000, ns("chain"), c1, 4)).len(), 2);
        // A relay leaving ends its part of the round.
        assert!(peering.relay_disconnected(2001, r1).is_empty());
        let done = answers(peering.relay_disconnected(2002, r2));
        assert_eq!(done, vec![(4, vec![])], "unregistered peers drop out");
        // Without peer relays a lookup is answered at once.
        assert_eq!(
            answers(peering.lookup(9000, ns("x"), c1, 5)),
            vec![(5, vec![])]
        );
    }

    #[test]
    fn rounds_end_at_their_deadline_and_records_at_their_ttl() {
        let mut peering = Peering::<u32>::new(100_000);
        let relay = PeerId::random();
        peering.relay_connected(relay);
        let client = PeerId::random();
        assert_eq!(asks(&peering.lookup(0, ns("chain"), client, 1)).len(), 1);
        assert!(peering.expire(ROUND_DEADLINE_MS - 1).is_empty());
        assert_eq!(
            answers(peering.expire(ROUND_DEADLINE_MS)),
            vec![(1, vec![])]
        );
        // A late answer is not taken for the next round's.
        let late = vec![Found {
            record: record(&[]),
            ttl: 60,
        }];
        assert!(peering
            .answered(ROUND_DEADLINE_MS + 1, relay, &ns("chain"), Some(late))
            .is_empty());

        let mut peering = Peering::<u32>::new(100_000);
        peering.relay_connected(relay);
        peering.lookup(0, ns("chain"), client, 1);
        let alice = record(&[]);
        let found = vec![Found {
            record: alice.clone(),
            ttl: 5,
        }];
        assert_eq!(
            answers(peering.answered(0, relay, &ns("chain"), Some(found))),
            vec![(1, vec![alice.peer_id()])]
        );
        let cached = peering.lookup(4_000, ns("chain"), client, 2);
        assert_eq!(answers(cached), vec![(2, vec![alice.peer_id()])]);
        let expired = peering.lookup(5_000, ns("chain"), client, 3);
        assert_eq!(answers(expired), vec![(3, vec![])], "the TTL is honoured");
    }

    #[test]
    fn caches_and_answers_are_bounded() {
        let mut peering = Peering::<u32>::new(1000);
        let relay = PeerId::random();
        peering.relay_connected(relay);
        let client = PeerId::random();
        // Too many records from one relay: capped.
        peering.lookup(0, ns("chain"), client, 0);
        let flood = (0..MAX_FOUND + 10)
            .map(|_| Found {
                record: record(&[]),
                ttl: 60,
            })
            .collect();
        let done = answers(peering.answered(0, relay, &ns("chain"), Some(flood)));
        assert_eq!(done[0].1.len(), MAX_FOUND);
        // Too many clients on one round: the rest are answered from the cache at once.
        peering.lookup(5000, ns("busy"), client, 0);
        for waiter in 1..MAX_WAITING as u32 {
            assert!(peering.lookup(5000, ns("busy"), client, waiter).is_empty());
        }
        assert_eq!(
            answers(peering.lookup(5000, ns("busy"), client, 99)).len(),
            1
        );
        // Too many namespaces: idle ones are evicted, busy ones are not.
        for n in 0..MAX_CACHED + 5 {
            let actions = peering.lookup(6000, ns(&n.to_string()), client, 0);
            if n + 2 < MAX_CACHED {
                assert_eq!(asks(&actions).len(), 1);
            }
        }
        assert!(peering.cache.len() <= MAX_CACHED);
        // Too many peer relays: the rest are not used.
        for _ in 0..MAX_PEER_RELAYS + 3 {
            peering.relay_connected(PeerId::random());
        }
        assert_eq!(peering.relays.len(), MAX_PEER_RELAYS);
    }
}
