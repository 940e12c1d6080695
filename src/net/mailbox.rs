//! Replicas of chains the node holds no copy of: the relay's mailbox opens every chain a peer
//! subscribes to, and a chain being joined (by the mailbox or a client) asks its peers for the
//! genesis and is created from the first batch that starts with it.

use libp2p::gossipsub::{IdentTopic, TopicHash};
use libp2p::PeerId;

use super::logline::LogLine;
use super::protocol::Envelope;
use super::{log, Node, NodeStore};

use crate::walytis::sync::Message;
use crate::walytis::{Block, BlockId};

impl<S: NodeStore> Node<S> {
    /// Asks a peer for a chain's genesis block (the chain ID is the genesis ID).
    pub(super) fn request_genesis(&mut self, peer: PeerId, chain: BlockId) {
        let want = Message::Want {
            ids: vec![chain],
            known: vec![],
        };
        self.swarm.behaviour_mut().sync.send_request(
            &peer,
            Envelope {
                chain,
                message: want,
            },
        );
    }

    /// The mailbox learns of a chain it does not hold: it joins it like a client would.
    pub(super) async fn mailbox_subscribe(&mut self, peer_id: PeerId, topic: &TopicHash) {
        let Ok(chain) = topic.as_str().parse::<BlockId>() else {
            return;
        };
        let limits = &self.config.limits;
        let by_peer = self.joining.values().filter(|j| j.by == Some(peer_id));
        if by_peer.count() >= limits.mailbox_joins_per_peer {
            log(LogLine::warn("mailbox_joins_per_peer")
                .field("joins", limits.mailbox_joins_per_peer)
                .field("chain", chain)
                .field("peer", peer_id));
            return;
        }
        if self.chains.len() + self.joining.len() >= self.config.limits.mailbox_max_chains {
            log(LogLine::warn("mailbox_full")
                .field("chains", self.config.limits.mailbox_max_chains)
                .field("chain", chain)
                .field("peer", peer_id));
            return;
        }
        // Joining asks every subscriber of the topic, `peer_id` among them, for the genesis.
        if let Err(e) = self.open(chain, None).await {
            log(LogLine::warn("mailbox_open_failed")
                .field("chain", chain)
                .field("peer", peer_id)
                .field("error", e));
        }
        if let Some(joining) = self.joining.get_mut(&chain) {
            joining.by = Some(peer_id);
        }
    }

    /// Gives up the mailbox's joins that no peer sent the genesis of within
    /// [`crate::net::Limits::mailbox_join_timeout`]: a subscription to a chain that does not
    /// exist holds a place in the mailbox for that long, not for good. Joins the owner asked
    /// for stay until a peer has the chain.
    pub(super) fn expire_joins(&mut self) {
        let now = self.now();
        let timeout = self.config.limits.mailbox_join_timeout.as_millis() as u64;
        let expired: Vec<(BlockId, PeerId)> = self
            .joining
            .iter()
            .filter(|(_, j)| now.saturating_sub(j.since) >= timeout)
            .filter_map(|(chain, j)| Some((*chain, j.by?)))
            .collect();
        for (chain, by) in expired {
            self.joining.remove(&chain);
            let topic = IdentTopic::new(chain.to_string());
            // Who was asked for the genesis, for whoever reads the log: the subscribers.
            let subscribers = self.topic_peers(&topic.hash()).len();
            self.topics.remove(&topic.hash());
            let _ = self.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
            log(LogLine::info("mailbox_join_expired")
                .field("chain", chain)
                .field("subscribers", subscribers)
                .field("peer", by));
        }
    }

    /// A sync message for a chain being joined: a batch that starts with the chain's
    /// genesis creates the replica.
    /// Returns whether the replica now exists.
    pub(super) async fn adopt(&mut self, request: &Envelope) -> bool {
        let Message::Blocks { blocks } = &request.message else {
            return false;
        };
        let Some(genesis) = blocks.first().and_then(|b| Block::decode(b).ok()) else {
            return false;
        };
        if genesis.id() != request.chain {
            return false;
        }
        match self.open(request.chain, Some(genesis)).await {
            Ok(()) => {
                self.changed(request.chain, None);
                true
            }
            Err(e) => {
                log(LogLine::warn("replica_failed")
                    .field("chain", request.chain)
                    .field("error", e));
                false
            }
        }
    }
}
