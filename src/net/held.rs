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
