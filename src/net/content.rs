//! Offchain content over `/endra/content/1`: this node serves its content store to peers
//! (never erased content), and fetches content from a chain's peers with the sans-IO
//! [`Fetch`], one tree or segment at a time, every answer verified before it is kept.
//!
//! A fetch asks one peer of the chain at a time and stays with it while it answers; a peer
//! that has nothing (or fails) is skipped for the round, one whose answer does not verify is
//! struck — never asked again — and another is asked. When every peer was tried the fetch
//! waits (1 s, doubling to 30 s) and starts a new round, for as long as it takes: content a
//! peer may yet bring is never given up. Progress is reported as [`NodeEvent::Content`].

use std::collections::HashSet;

use libp2p::gossipsub::IdentTopic;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::PeerId;

use super::handle::Reply;
use super::logline::LogLine;
use super::{log, NetError, Node, NodeEvent, NodeStore};
use crate::offchain::{
    serve, Commitment, ContentRequest, ContentResponse, ContentRoot, ContentStatus, Fetch,
    TransferError,
};
use crate::walytis::BlockId;

/// First wait after a round in which no peer had the content (ms); doubles up to
/// [`MAX_RETRY_MS`].
const FIRST_RETRY_MS: u64 = 1_000;
/// Longest wait between rounds (ms).
const MAX_RETRY_MS: u64 = 30_000;

/// One content this node is fetching.
pub(super) struct Fetching {
    chain: BlockId,
    fetch: Fetch,
    /// The request in flight and the peer asked.
    asked: Option<(PeerId, OutboundRequestId, ContentRequest)>,
    /// The peer that answered last: asked again first.
    current: Option<PeerId>,
    /// Peers that had nothing, or failed, this round.
    tried: HashSet<PeerId>,
    /// Who awaits the end.
    waiters: Vec<Reply<ContentStatus>>,
    /// When the next round starts (ms since start), while waiting between rounds.
    retry_at: Option<u64>,
    backoff: u64,
}

impl<S: NodeStore> Node<S> {
    /// Starts (or joins) the fetch of `commitment`'s content from `chain`'s peers; `reply`
    /// gets the final status (available), or why it cannot be had (erased, a store failure).
    pub(super) async fn fetch_content(
        &mut self,
        chain: BlockId,
        commitment: Commitment,
        reply: Reply<ContentStatus>,
    ) {
        let root = commitment.root;
        if let Some(fetching) = self.fetches.get_mut(&root) {
            fetching.waiters.push(reply);
            return;
        }
        let fetch = match Fetch::resume(commitment, &self.store).await {
            Ok(fetch) => fetch,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        match fetch.status() {
            ContentStatus::Available => {
                let _ = reply.send(Ok(ContentStatus::Available));
                return;
            }
            ContentStatus::Erased => {
                let _ = reply.send(Err(TransferError::Erased.into()));
                return;
            }
            _ => {}
        }
        self.fetches.insert(
            root,
            Fetching {
                chain,
                fetch,
                asked: None,
                current: None,
                tried: HashSet::new(),
                waiters: vec![reply],
                retry_at: None,
                backoff: FIRST_RETRY_MS,
            },
        );
        self.ask_next(root);
    }

    /// Sends the fetch's next request to a peer of its chain, or waits for the next round.
    fn ask_next(&mut self, root: ContentRoot) {
        let now = self.now();
        let Some(fetching) = self.fetches.get(&root) else {
            return;
        };
        if fetching.asked.is_some() || fetching.retry_at.is_some_and(|at| at > now) {
            return;
        }
        let Some(request) = fetching.fetch.next_request() else {
            let status = fetching.fetch.status();
            self.finish_fetch(root, Ok(status));
            return;
        };
        let topic = IdentTopic::new(fetching.chain.to_string()).hash();
        let candidates: Vec<PeerId> = self
            .topic_peers(&topic)
            .into_iter()
            .filter(|peer| !fetching.tried.contains(peer) && !self.content_struck.contains(peer))
            .collect();
        let peer = fetching
            .current
            .filter(|current| candidates.contains(current))
            .or_else(|| candidates.first().copied());
        let Some(fetching) = self.fetches.get_mut(&root) else {
            return;
        };
        match peer {
            Some(peer) => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .content
                    .send_request(&peer, request.clone());
                fetching.retry_at = None;
                fetching.asked = Some((peer, id, request));
                self.content_asks.insert(id, root);
            }
            None => {
                // Every peer was tried: wait, then a new round.
                fetching.tried.clear();
                fetching.retry_at = Some(now + fetching.backoff);
                fetching.backoff = (fetching.backoff * 2).min(MAX_RETRY_MS);
            }
        }
    }

    fn finish_fetch(&mut self, root: ContentRoot, outcome: Result<ContentStatus, NetError>) {
        let Some(fetching) = self.fetches.remove(&root) else {
            return;
        };
        if let Some((_, id, _)) = fetching.asked {
            self.content_asks.remove(&id);
        }
        for waiter in fetching.waiters {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// Fetches waiting between rounds whose time has come ask again (on every tick).
    pub(super) fn retry_fetches(&mut self) {
        let now = self.now();
        let due: Vec<ContentRoot> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.asked.is_none() && f.retry_at.is_none_or(|at| at <= now))
            .map(|(root, _)| *root)
            .collect();
        for root in due {
            if let Some(fetching) = self.fetches.get_mut(&root) {
                fetching.retry_at = None;
            }
            self.ask_next(root);
        }
    }

    pub(super) async fn on_content(
        &mut self,
        event: request_response::Event<ContentRequest, ContentResponse>,
    ) {
        match event {
            request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = match serve(&request, &self.store).await {
                    Ok(response) => response,
                    Err(e) => {
                        log(LogLine::warn("content_serve_failed").field("error", e));
                        ContentResponse::NotHeld
                    }
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .content
                    .send_response(channel, response);
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.on_content_response(peer, request_id, Some(response))
                    .await
            }
            request_response::Event::OutboundFailure {
                peer, request_id, ..
            } => self.on_content_response(peer, request_id, None).await,
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A peer's answer (`None`: the request failed) to a fetch's request.
    async fn on_content_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        response: Option<ContentResponse>,
    ) {
        let Some(root) = self.content_asks.remove(&request_id) else {
            return;
        };
        let Some(fetching) = self.fetches.get_mut(&root) else {
            return;
        };
        let Some((_, _, request)) = fetching.asked.take() else {
            return;
        };
        let accepted = match response {
            Some(response) => fetching.fetch.accept(&request, response, &self.store).await,
            None => Ok(false),
        };
        match accepted {
            Ok(true) => {
                fetching.current = Some(peer);
                fetching.backoff = FIRST_RETRY_MS;
                let event = NodeEvent::Content {
                    chain: fetching.chain,
                    root,
                    status: fetching.fetch.status(),
                };
                let _ = self.events.unbounded_send(event);
            }
            Ok(false) => {
                fetching.tried.insert(peer);
            }
            Err(TransferError::Content(e)) => {
                fetching.tried.insert(peer);
                self.content_struck.insert(peer);
                log(LogLine::warn("content_refused")
                    .field("peer", peer)
                    .field("error", e));
            }
            Err(e) => {
                self.finish_fetch(root, Err(e.into()));
                return;
            }
        }
        self.ask_next(root);
    }
}
