//! Peers' requests for pieces of a content this node is itself still fetching, held to be
//! answered as the pieces arrive (sans-IO: the node's shell passes the time, the peers its
//! fetch is waiting on, and whether the fetch may still bring a piece).
//!
//! A reader fetching from a relay that is still fetching the content gets each segment as
//! it arrives there, instead of "not held" and a round of backoff. Anyone can ask, so the
//! holding is bounded: [`MAX_HELD`] requests per content, [`HOLD_MS`] each at most; a
//! request is never held for a fetch that waits on nobody, nor for one that waits on the
//! requester itself — two members fetching one content from each other would each hold
//! the other's request until it expired.

use libp2p::PeerId;

use crate::offchain::ContentRequest;

/// The most requests held per content: the full windows (16 segments) of 16 readers of one
/// content at a relay still fetching it (with 64, five readers overflowed it under CI load
/// and turned to the writer).
pub const MAX_HELD: usize = 256;
/// How long a held request waits for its piece before it is answered from the store (ms):
/// well within a requester's own timeout.
pub const HOLD_MS: u64 = 5_000;

/// The held requests of one content's fetch, in arrival order, each with its answer
/// channel `A` and when it came (ms).
#[derive(Debug)]
pub struct HeldRequests<A> {
    held: Vec<(ContentRequest, A, u64)>,
}

impl<A> Default for HeldRequests<A> {
    fn default() -> Self {
        Self { held: Vec::new() }
    }
}

impl<A> HeldRequests<A> {
    /// Holds `from`'s `request` at `now` while the fetch waits on the peers `awaited` and
    /// `brings` the piece (it may still arrive). Gives the request back, to be answered from
    /// the store at once, when there is nothing to wait for: the fetch will not bring it,
    /// waits on nobody (between rounds) or on `from` itself, or [`MAX_HELD`] wait already.
    pub fn hold(
        &mut self,
        from: PeerId,
        request: ContentRequest,
        answer: A,
        now: u64,
        mut awaited: impl Iterator<Item = PeerId>,
        brings: bool,
    ) -> Option<(ContentRequest, A)> {
        let mut awaits_anyone = false;
        let awaits_only_others = awaited.all(|peer| {
            awaits_anyone = true;
            peer != from
        });
        if brings && awaits_anyone && awaits_only_others && self.held.len() < MAX_HELD {
            self.held.push((request, answer, now));
            None
        } else {
            Some((request, answer))
        }
    }

    /// Takes the requests to answer now, in arrival order: those whose piece the fetch will
    /// no longer bring (it came, or never will), and those that waited [`HOLD_MS`].
    pub fn release(
        &mut self,
        now: u64,
        brings: impl Fn(&ContentRequest) -> bool,
    ) -> Vec<(ContentRequest, A)> {
        let (waiting, ready): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(request, _, at)| brings(request) && now.saturating_sub(*at) < HOLD_MS);
        self.held = waiting;
        ready.into_iter().map(|(r, a, _)| (r, a)).collect()
    }

    /// When the longest-held request's wait ends (ms), if any is held: the shell wakes then.
    pub fn next_expiry(&self) -> Option<u64> {
        // Held in arrival order (`release` keeps it): the first waited longest.
        self.held.first().map(|(_, _, at)| at + HOLD_MS)
    }

    /// Whether no request is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// How many requests are held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Every held request, to answer from the store (the fetch ended).
    pub fn into_requests(self) -> impl Iterator<Item = (ContentRequest, A)> {
        self.held.into_iter().map(|(r, a, _)| (r, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(index: u32) -> ContentRequest {
        ContentRequest::Segment([7; 32], index)
    }

    fn indices(answered: &[(ContentRequest, u32)]) -> Vec<u32> {
        answered.iter().map(|(_, answer)| *answer).collect()
    }

    #[test]
    fn a_request_is_held_only_while_the_fetch_waits_on_another_peer_for_its_piece() {
        let (reader, writer, other) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut held = HeldRequests::default();
        // The fetch asks the writer: the reader's request waits.
        assert!(held
            .hold(reader, segment(0), 0, 10, [writer].into_iter(), true)
            .is_none());
        // Between rounds the fetch waits on nobody: nothing would wake the request.
        let back = held.hold(reader, segment(1), 1, 10, std::iter::empty(), true);
        assert_eq!(back.map(|(_, answer)| answer), Some(1));
        // The fetch already has that piece, or will never bring it.
        let back = held.hold(reader, segment(2), 2, 10, [writer].into_iter(), false);
        assert_eq!(back.map(|(_, answer)| answer), Some(2));
        // Two members fetching from each other: the fetch waits on the requester itself
        // (among others), so holding its request would only make both wait out HOLD_MS.
        let back = held.hold(reader, segment(3), 3, 10, [other, reader].into_iter(), true);
        assert_eq!(back.map(|(_, answer)| answer), Some(3));
        assert_eq!(held.len(), 1);
    }

    #[test]
    fn at_most_max_held_requests_wait_and_room_comes_back_as_they_are_answered() {
        let writer = PeerId::random();
        let mut held = HeldRequests::default();
        for i in 0..MAX_HELD as u32 {
            let back = held.hold(
                PeerId::random(),
                segment(i),
                i,
                0,
                [writer].into_iter(),
                true,
            );
            assert!(back.is_none(), "request {i} was given back");
        }
        // A flood past the bound is answered at once, not kept.
        let flood = held.hold(
            PeerId::random(),
            segment(999),
            999,
            0,
            [writer].into_iter(),
            true,
        );
        assert_eq!(flood.map(|(_, answer)| answer), Some(999));
        assert_eq!(held.len(), MAX_HELD);
        // Segment 0 arrives: its request is answered, and there is room for one more.
        let answered = held.release(1, |request| request != &segment(0));
        assert_eq!(indices(&answered), vec![0]);
        assert!(held
            .hold(
                PeerId::random(),
                segment(999),
                999,
                1,
                [writer].into_iter(),
                true
            )
            .is_none());
        let refused = held.hold(
            PeerId::random(),
            segment(1000),
            1000,
            1,
            [writer].into_iter(),
            true,
        );
        assert!(refused.is_some());
    }

    #[test]
    fn a_held_request_is_answered_when_its_piece_comes_or_after_hold_ms_in_arrival_order() {
        let writer = PeerId::random();
        let mut held = HeldRequests::default();
        assert_eq!(held.next_expiry(), None);
        for (i, at) in [(0u32, 100u64), (1, 200), (2, 300), (3, 400)] {
            assert!(held
                .hold(
                    PeerId::random(),
                    segment(i),
                    i,
                    at,
                    [writer].into_iter(),
                    true
                )
                .is_none());
        }
        assert_eq!(held.next_expiry(), Some(100 + HOLD_MS));
        // Nothing came and nobody waited HOLD_MS yet.
        assert!(held.release(100 + HOLD_MS - 1, |_| true).is_empty());
        // Segment 2 came; the first request's wait is over.
        let answered = held.release(100 + HOLD_MS, |request| request != &segment(2));
        assert_eq!(indices(&answered), vec![0, 2]);
        assert_eq!(held.next_expiry(), Some(200 + HOLD_MS));
        let answered = held.release(400 + HOLD_MS, |_| true);
        assert_eq!(indices(&answered), vec![1, 3]);
        assert!(held.is_empty());
        assert_eq!(held.next_expiry(), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A request from peer `from` for segment `index`, `dt` ms after the last op, while
        /// the fetch awaits the peers `awaited` (bits) and may (`brings`) bring the piece.
        Hold {
            from: usize,
            index: u32,
            dt: u64,
            awaited: u8,
            brings: bool,
        },
        /// `dt` ms later, segments `arrived` (bits) are here.
        Release { dt: u64, arrived: u32 },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        // Bursts of requests from four readers (most in the same millisecond, so MAX_HELD
        // is reached), the fetch mostly waiting on the writer (peer 4), a segment arriving
        // now and then.
        let dt = prop_oneof![9 => Just(0u64), 1 => 0..400u64];
        let awaited =
            prop_oneof![8 => Just(1u8 << 4), 1 => any::<u8>().prop_map(|bits| bits & 0x1f)];
        prop_oneof![
            60 => (0..4usize, 0..32u32, dt, awaited, prop::bool::weighted(0.9))
                .prop_map(|(from, index, dt, awaited, brings)| Op::Hold { from, index, dt, awaited, brings }),
            1 => (0..1_500u64, 0..32u32).prop_map(|(dt, index)| Op::Release { dt, arrived: 1 << index }),
        ]
    }

    proptest::proptest! {
        /// Over any run of requests and arrivals: every request is answered exactly once
        /// (given back at once, released, or given back at the fetch's end), held ones in
        /// arrival order; a request is held exactly when the rules say so, never more than
        /// MAX_HELD at once, and none stays held once its piece came or HOLD_MS passed.
        #[test]
        fn every_request_is_answered_once_and_none_is_held_beyond_the_rules(
            ops in proptest::collection::vec(op(), 1..1_000)
        ) {
            let peers: Vec<PeerId> = (0..5).map(|_| PeerId::random()).collect();
            let mut held = HeldRequests::default();
            // The model: id → (index, when it came), for the requests held.
            let mut model: Vec<(u32, u32, u64)> = Vec::new();
            let mut answered = std::collections::BTreeSet::new();
            let mut arrived = 0u32;
            let (mut now, mut next_id) = (0u64, 0u32);
            let index_of = |request: &ContentRequest| match request {
                ContentRequest::Segment(_, index) => *index,
                _ => u32::MAX,
            };
            for op in ops {
                match op {
                    Op::Hold { from, index, dt, awaited, brings } => {
                        now += dt;
                        let id = next_id;
                        next_id += 1;
                        let awaited: Vec<PeerId> =
                            (0..5).filter(|i| awaited & (1 << i) != 0).map(|i| peers[i]).collect();
                        let brings = brings && arrived & (1 << index) == 0;
                        let should_hold = brings
                            && !awaited.is_empty()
                            && !awaited.contains(&peers[from])
                            && model.len() < MAX_HELD;
                        let back = held.hold(peers[from], segment(index), id, now, awaited.into_iter(), brings);
                        proptest::prop_assert_eq!(back.is_none(), should_hold);
                        match back {
                            None => model.push((id, index, now)),
                            Some((_, answer)) => {
                                proptest::prop_assert!(answered.insert(answer));
                            }
                        }
                    }
                    Op::Release { dt, arrived: more } => {
                        now += dt;
                        arrived |= more;
                        let released = held.release(now, |request| arrived & (1 << index_of(request)) == 0);
                        let ids: Vec<u32> = released.iter().map(|(_, answer)| *answer).collect();
                        proptest::prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "arrival order");
                        for id in ids {
                            proptest::prop_assert!(answered.insert(id), "answered twice");
                        }
                        model.retain(|(_, index, at)| arrived & (1 << index) == 0 && now - at < HOLD_MS);
                    }
                }
                proptest::prop_assert!(held.len() <= MAX_HELD);
                proptest::prop_assert_eq!(held.len(), model.len());
                proptest::prop_assert_eq!(held.next_expiry(), model.first().map(|(_, _, at)| at + HOLD_MS));
            }
            for (_, answer) in held.into_requests() {
                proptest::prop_assert!(answered.insert(answer), "answered twice");
            }
            proptest::prop_assert_eq!(answered.len() as u32, next_id, "a request was lost");
        }
    }

    #[test]
    fn every_held_request_is_given_back_when_the_fetch_ends() {
        let writer = PeerId::random();
        let mut held = HeldRequests::default();
        for i in 0..3u32 {
            assert!(held
                .hold(
                    PeerId::random(),
                    segment(i),
                    i,
                    0,
                    [writer].into_iter(),
                    true
                )
                .is_none());
        }
        let answers: Vec<u32> = held.into_requests().map(|(_, answer)| answer).collect();
        assert_eq!(answers, vec![0, 1, 2]);
    }
}
