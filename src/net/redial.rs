//! When to dial a lost relay again: exponential backoff with jitter, sans-IO.
//!
//! A node keeps every relay it uses for as long as it runs. When the last connection to one
//! closes, or a dial to it fails, [`Redial`] schedules the next attempt after a delay that
//! doubles with each failure (from [`Redial::FIRST_DELAY_MS`] up to
//! [`Redial::MAX_DELAY_MS`]), drawn from its upper half so that the clients of a relay that
//! restarts do not all come back in the same millisecond. A connection resets the delay; a
//! hint that the network is back (the browser's `online` event, a tab becoming visible) makes
//! every scheduled attempt due at once ([`Redial::hurry`]).
//!
//! Time is passed in (milliseconds on the caller's clock) and randomness comes from a seeded
//! generator, so the schedule is deterministic in tests.

use std::collections::HashMap;
use std::hash::Hash;

/// Where one relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Connected (or never lost): nothing to do.
    Connected,
    /// The next dial is due at this time; `failures` attempts failed since the last
    /// connection.
    Waiting { due: u64, failures: u32 },
    /// A dial is under way (it ends in [`Redial::connected`] or [`Redial::failed`]); it counts
    /// as failed if neither came by `deadline`.
    Dialing { deadline: u64, failures: u32 },
}

/// The redial schedule of a node's relays, keyed by `K` (a peer ID in the node).
#[derive(Debug, Clone)]
pub struct Redial<K> {
    relays: HashMap<K, State>,
    rng: u64,
}

impl<K: Copy + Eq + Hash> Redial<K> {
    /// The delay before the first attempt after a loss.
    pub const FIRST_DELAY_MS: u64 = 500;
    /// The longest delay between two attempts.
    pub const MAX_DELAY_MS: u64 = 30_000;
    /// A dial that has neither connected nor failed after this long counts as failed (a
    /// WebRTC-Direct dial to a dead address can hang instead of failing).
    pub const DIAL_DEADLINE_MS: u64 = 20_000;

    /// An empty schedule; `seed` drives the jitter.
    pub fn new(seed: u64) -> Self {
        Redial {
            relays: HashMap::new(),
            rng: seed | 1,
        }
    }

    /// The connection to `relay` was lost at `now` (or a first dial is to be made later):
    /// schedule an attempt. A relay already waiting or dialling keeps its schedule.
    pub fn lost(&mut self, relay: K, now: u64) {
        match self.relays.get(&relay) {
            Some(State::Waiting { .. } | State::Dialing { .. }) => {}
            Some(State::Connected) | None => {
                let due = now + self.delay(0);
                self.relays
                    .insert(relay, State::Waiting { due, failures: 0 });
            }
        }
    }

    /// A dial to `relay` started at `now` (a first dial, or one [`Redial::due`] returned).
    pub fn dialing(&mut self, relay: K, now: u64) {
        let failures = match self.relays.get(&relay) {
            Some(State::Waiting { failures, .. } | State::Dialing { failures, .. }) => *failures,
            Some(State::Connected) | None => 0,
        };
        self.relays.insert(
            relay,
            State::Dialing {
                deadline: now + Self::DIAL_DEADLINE_MS,
                failures,
            },
        );
    }

    /// `relay` is connected: its backoff starts again from the first delay.
    pub fn connected(&mut self, relay: K) {
        self.relays.insert(relay, State::Connected);
    }

    /// A dial to `relay` failed at `now`: the next waits twice as long (up to the maximum).
    pub fn failed(&mut self, relay: K, now: u64) {
        let failures = match self.relays.get(&relay) {
            Some(State::Dialing { failures, .. } | State::Waiting { failures, .. }) => {
                failures.saturating_add(1)
            }
            // A failed dial to a connected relay (a second address) changes nothing.
            Some(State::Connected) => return,
            None => 1,
        };
        let due = now + self.delay(failures);
        self.relays.insert(relay, State::Waiting { due, failures });
    }

    /// The relays whose attempt is due at `now`; each is marked as dialling. Dials that
    /// outlived their deadline count as failed first.
    pub fn due(&mut self, now: u64) -> Vec<K> {
        let stuck: Vec<K> = self
            .relays
            .iter()
            .filter(|(_, s)| matches!(s, State::Dialing { deadline, .. } if *deadline <= now))
            .map(|(k, _)| *k)
            .collect();
        for relay in stuck {
            self.failed(relay, now);
        }
        let due: Vec<K> = self
            .relays
            .iter()
            .filter(|(_, s)| matches!(s, State::Waiting { due, .. } if *due <= now))
            .map(|(k, _)| *k)
            .collect();
        for relay in &due {
            self.dialing(*relay, now);
        }
        due
    }

    /// The network is likely back: every waiting relay is due at `now`, and the backoff
    /// starts again from the first delay.
    pub fn hurry(&mut self, now: u64) {
        for state in self.relays.values_mut() {
            if let State::Waiting { due, failures } = state {
                *due = now;
                *failures = 0;
            }
        }
    }

    /// When [`Redial::due`] next has something to return: the earliest attempt or deadline.
    pub fn next_wake(&self) -> Option<u64> {
        self.relays
            .values()
            .filter_map(|s| match s {
                State::Connected => None,
                State::Waiting { due, .. } => Some(*due),
                State::Dialing { deadline, .. } => Some(*deadline),
            })
            .min()
    }

    /// Whether `relay` is known and not connected.
    pub fn is_lost(&self, relay: &K) -> bool {
        matches!(
            self.relays.get(relay),
            Some(State::Waiting { .. } | State::Dialing { .. })
        )
    }

    /// The delay after `failures` failed attempts: 2^failures × the first delay, capped, then
    /// drawn uniformly from its upper half ("equal jitter").
    fn delay(&mut self, failures: u32) -> u64 {
        let full = Self::FIRST_DELAY_MS
            .saturating_mul(1u64 << failures.min(16))
            .min(Self::MAX_DELAY_MS);
        let half = full / 2;
        half + self.next_random() % (full - half + 1)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: plenty for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Redial<u8>;

    #[test]
    fn a_lost_relay_is_dialled_after_the_first_delay_and_backs_off_to_the_cap() {
        let mut redial = R::new(42);
        redial.connected(1);
        assert_eq!(redial.next_wake(), None, "nothing to do while connected");
        redial.lost(1, 1_000);
        let wake = redial.next_wake().expect("scheduled");
        assert!(
            (1_250..=1_500).contains(&wake),
            "first attempt after 0.25–0.5 s: {wake}"
        );
        assert!(redial.due(wake - 1).is_empty(), "not before it is due");
        assert_eq!(redial.due(wake), vec![1]);
        assert!(redial.due(wake).is_empty(), "one dial at a time");

        // Each failure doubles the delay, up to 30 s, never below half of it.
        let mut now = wake;
        let mut last_full = R::FIRST_DELAY_MS;
        for _ in 0..12 {
            redial.failed(1, now);
            let next = redial.next_wake().expect("scheduled");
            let full = (last_full * 2).min(R::MAX_DELAY_MS);
            let delay = next - now;
            assert!(
                (full / 2..=full).contains(&delay),
                "delay {delay} outside {}..={full}",
                full / 2
            );
            assert_eq!(redial.due(next), vec![1]);
            now = next;
            last_full = full;
        }
        assert_eq!(last_full, R::MAX_DELAY_MS, "capped at 30 s");

        // A connection resets the backoff: the next loss waits the first delay again.
        redial.connected(1);
        assert!(!redial.is_lost(&1));
        redial.lost(1, now);
        assert!(redial.next_wake().expect("scheduled") - now <= R::FIRST_DELAY_MS);
    }

    #[test]
    fn a_hanging_dial_counts_as_failed_at_its_deadline() {
        let mut redial = R::new(7);
        redial.dialing(1, 0);
        assert_eq!(redial.next_wake(), Some(R::DIAL_DEADLINE_MS));
        assert!(redial.due(R::DIAL_DEADLINE_MS - 1).is_empty());
        // At the deadline it is failed and rescheduled, not dialled again at once.
        assert!(redial.due(R::DIAL_DEADLINE_MS).is_empty());
        assert!(redial.is_lost(&1));
        let next = redial.next_wake().expect("rescheduled");
        assert!(next > R::DIAL_DEADLINE_MS);
        assert_eq!(redial.due(next), vec![1]);
    }

    #[test]
    fn hurry_makes_every_waiting_relay_due_now_and_resets_the_backoff() {
        let mut redial = R::new(3);
        for relay in [1, 2] {
            redial.dialing(relay, 0);
            for _ in 0..6 {
                redial.failed(relay, 0);
            }
        }
        redial.connected(3);
        assert!(
            redial.next_wake().expect("scheduled") > 10_000,
            "deep in backoff"
        );
        redial.hurry(100);
        let mut due = redial.due(100);
        due.sort_unstable();
        assert_eq!(due, vec![1, 2], "both at once; the connected one untouched");
        redial.failed(1, 100);
        assert!(
            redial.next_wake().expect("scheduled") <= 100 + 2 * R::FIRST_DELAY_MS,
            "backoff starts over after a hurry"
        );
    }

    #[test]
    fn clients_of_one_relay_spread_their_attempts() {
        // Many clients lose the same relay at the same instant: their first attempts differ.
        let wakes: std::collections::BTreeSet<u64> = (1..=50u64)
            .map(|seed| {
                let mut redial = R::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                redial.lost(1, 0);
                redial.next_wake().expect("scheduled")
            })
            .collect();
        assert!(
            wakes.len() > 25,
            "only {} distinct first attempts",
            wakes.len()
        );
    }

    #[test]
    fn a_second_loss_report_keeps_the_schedule() {
        let mut redial = R::new(9);
        redial.lost(1, 0);
        let first = redial.next_wake();
        redial.lost(1, 400);
        assert_eq!(redial.next_wake(), first);
        // A failed dial to a connected relay (another of its addresses) changes nothing.
        redial.connected(1);
        redial.failed(1, 500);
        assert!(!redial.is_lost(&1));
    }
}
