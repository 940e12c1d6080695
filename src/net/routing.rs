//! Sync routing: opening a chain's [`Sync`], feeding it inputs (gossip, requests, ticks,
//! peers coming and going) and carrying its outputs out as gossip publishes and
//! `/endra/walytis/sync/1` requests, reporting what changed to the owner.

use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::PeerId;

use super::logline::LogLine;
use super::node::Joining;
use super::protocol::{Envelope, GossipFrame};
use super::{log, NetError, Node, NodeEvent, NodeStore};

use crate::offchain::InlineContent;
use crate::walytis::sync::{Input, Message, Output, Sync, RECENT_BLOCKS};
use crate::walytis::{Block, BlockId, Chain, ChainError, Entry, Judgement};

impl<S: NodeStore> Node<S> {
    /// Signs the blocks, pushes them to the chain's peers, then stores them: the store's
    /// write overlaps their trip instead of preceding it (see [`Sync::sign`]).
    pub(super) async fn append(
        &mut self,
        chain: BlockId,
        time: u64,
        items: &[(Vec<u8>, Vec<String>)],
    ) -> Result<Vec<Entry>, NetError> {
        let key = self.key.as_ref().ok_or(NetError::NoDeviceKey)?;
        let sync = self
            .chains
            .get_mut(&chain)
            .ok_or(NetError::UnknownChain(chain))?;
        let (blocks, outputs) = sync.sign(key, time, items).await?;
        self.route(chain, outputs);
        let sync = self
            .chains
            .get_mut(&chain)
            .ok_or(NetError::UnknownChain(chain))?;
        let entries = sync.store_signed(blocks).await?;
        let recent = (entries.len() <= RECENT_BLOCKS).then(|| entries.clone());
        self.changed(chain, recent);
        Ok(entries)
    }

    pub(super) async fn open(
        &mut self,
        chain: BlockId,
        genesis: Option<Block>,
    ) -> Result<(), NetError> {
        if self.chains.contains_key(&chain) {
            return Ok(());
        }
        let topic = IdentTopic::new(chain.to_string());
        self.topics.insert(topic.hash(), chain);
        let opened = match genesis {
            Some(genesis) if genesis.id() == chain => {
                Chain::from_genesis(self.store.clone(), &self.rules, genesis).await?
            }
            Some(genesis) => return Err(ChainError::NotGenesis(genesis.id()).into()),
            None => match Chain::open(self.store.clone(), &self.rules, chain).await {
                Ok(opened) => opened,
                Err(ChainError::UnknownChain(_)) => {
                    // Join: subscribe now, ask the first peer of the chain for its genesis.
                    let since = self.now();
                    self.joining.insert(chain, Joining { since, by: None });
                    let _ = self.swarm.behaviour_mut().gossipsub.subscribe(&topic);
                    for peer in self.topic_peers(&topic.hash()) {
                        self.request_genesis(peer, chain);
                    }
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            },
        };
        self.joining.remove(&chain);
        self.chains.insert(chain, Sync::new(opened));
        // Subscribing tells every connected peer; their subscription events connect syncs.
        let _ = self.swarm.behaviour_mut().gossipsub.subscribe(&topic);
        // Peers already subscribed to the topic are chain peers right away.
        for peer in self.topic_peers(&topic.hash()) {
            let peer = self.peer(peer);
            self.drive(chain, Input::Connected(peer)).await;
        }
        self.announce(chain);
        Ok(())
    }

    pub(super) fn chain_ids(&self) -> Vec<BlockId> {
        self.chains
            .keys()
            .chain(self.joining.keys())
            .copied()
            .collect()
    }

    pub(super) fn topic_peers(&self, topic: &TopicHash) -> Vec<PeerId> {
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&topic))
            .map(|(peer, _)| *peer)
            .collect()
    }

    pub(super) async fn drive(&mut self, chain: BlockId, input: Input) {
        let now = self.now();
        let Some(sync) = self.chains.get_mut(&chain) else {
            return;
        };
        let before = sync.chain().len();
        let was_synced = sync.is_synced();
        if self.config.mailbox
            && before >= self.config.limits.mailbox_chain_blocks
            && matches!(
                input,
                Input::Received(_, Message::Push { .. } | Message::Blocks { .. })
            )
        {
            if self.over_quota.insert(chain) {
                log(LogLine::warn("mailbox_quota_reached")
                    .field("chain", chain)
                    .field("blocks", before));
            }
            return;
        }
        match sync.handle(now, input).await {
            Ok(outputs) => {
                let grew = sync.chain().len() > before;
                let recent = sync.take_recent();
                let synced = !was_synced && sync.is_synced();
                self.route(chain, outputs);
                if grew {
                    self.changed(chain, recent);
                    self.authority_grew(chain).await;
                }
                if synced {
                    let _ = self.events.unbounded_send(NodeEvent::Synced { chain });
                }
            }
            Err(e) => log(LogLine::warn("sync_failed")
                .field("chain", chain)
                .field("error", e)),
        }
    }

    /// `authority` grew: the chains holding blocks for it (chains bound to it, groups whose
    /// members' anchors are in it) judge them again.
    pub(super) async fn authority_grew(&mut self, authority: BlockId) {
        let now = self.now();
        let bound: Vec<BlockId> = self
            .chains
            .iter()
            .filter(|(_, sync)| sync.chain().awaits(&authority))
            .map(|(id, _)| *id)
            .collect();
        for chain in bound {
            let Some(sync) = self.chains.get_mut(&chain) else {
                continue;
            };
            let before = sync.chain().len();
            match sync.authority_grew(now).await {
                Ok(outputs) => {
                    let grew = sync.chain().len() > before;
                    let recent = sync.take_recent();
                    self.route(chain, outputs);
                    if grew {
                        self.changed(chain, recent);
                    }
                }
                Err(e) => log(LogLine::warn("sync_failed")
                    .field("chain", chain)
                    .field("error", e)),
            }
        }
    }

    pub(super) fn changed(&mut self, chain: BlockId, blocks: Option<Vec<Entry>>) {
        if let Some(sync) = self.chains.get(&chain) {
            let count = sync.chain().len();
            let _ = self.events.unbounded_send(NodeEvent::Changed {
                chain,
                count,
                blocks,
            });
        }
    }

    pub(super) fn route(&mut self, chain: BlockId, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send(peer, message) => {
                    if let Some(peer) = self.peers.id(peer) {
                        self.swarm
                            .behaviour_mut()
                            .sync
                            .send_request(&peer, Envelope { chain, message });
                    }
                }
                Output::Publish(message @ Message::Heads { .. }) => {
                    // Gossip names a message by its content (see `Behaviour::new`) and drops
                    // repeats, as it should for blocks; heads repeat tick after tick, so they
                    // go to each peer of the chain directly.
                    let topic = IdentTopic::new(chain.to_string()).hash();
                    for peer in self.topic_peers(&topic) {
                        self.swarm.behaviour_mut().sync.send_request(
                            &peer,
                            Envelope {
                                chain,
                                message: message.clone(),
                            },
                        );
                    }
                }
                Output::Publish(message) => self.gossip(chain, &GossipFrame::Sync(message)),
                Output::Awaiting(authority) => {
                    let known = self.chains.contains_key(&authority)
                        || self.joining.contains_key(&authority)
                        || self.awaited.contains(&authority);
                    if !known {
                        self.awaited.push(authority);
                    }
                }
                Output::Refused(peer, block, reason) => {
                    log(LogLine::warn("block_refused")
                        .field("chain", chain)
                        .field("block", block)
                        .field(
                            "peer",
                            self.peers
                                .id(peer)
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                        )
                        .field("reason", reason));
                }
                Output::Disconnect(peer) => {
                    if let Some(peer) = self.peers.id(peer) {
                        log(LogLine::warn("peer_disconnected")
                            .field("peer", peer)
                            .field("reason", "invalid blocks or flood"));
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
            }
        }
    }

    /// Stores a gossip message from `source`: the content that came inline with a block the
    /// chain admits (`admissible`: new here, and judged admissible), then the block.
    async fn store_gossip(
        &mut self,
        chain: BlockId,
        source: PeerId,
        message: Message,
        sealed: Option<InlineContent>,
        admissible: bool,
    ) {
        // Content that came with its block is kept only beside a block the chain admits
        // (signed by a member, on known parents): anyone else's bytes, or a block not judged
        // yet, do not fill the store; its readers pull it instead.
        let mut staged = None;
        if let (Some(sealed), true) = (sealed, admissible) {
            staged = self.keep_inline(chain, &sealed).await;
        }
        let from = self.peer(source);
        self.drive(chain, Input::Received(from, message)).await;
        if let Some(root) = staged {
            self.kept_inline(chain, root).await;
        }
    }

    /// [`Node::route`], with the pushes of `inline`'s blocks (`(index in outputs, sealed
    /// segment)`) carrying their content (see [`GossipFrame::Inline`]).
    pub(super) fn route_with_content(
        &mut self,
        chain: BlockId,
        outputs: Vec<Output>,
        inline: Vec<(usize, InlineContent)>,
    ) {
        let mut inline: std::collections::HashMap<usize, InlineContent> =
            inline.into_iter().collect();
        for (index, output) in outputs.into_iter().enumerate() {
            match (output, inline.remove(&index)) {
                (Output::Publish(Message::Push { block }), Some(content)) => {
                    self.gossip(chain, &GossipFrame::Inline { block, content });
                }
                (output, _) => self.route(chain, vec![output]),
            }
        }
    }

    fn gossip(&mut self, chain: BlockId, frame: &GossipFrame) {
        let topic = IdentTopic::new(chain.to_string());
        // No subscribed peer yet is normal: heads exchanges catch up later.
        let _ = self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, frame.encode());
    }

    pub(super) async fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                let known = self.topics.get(&topic).copied();
                if let Some(chain) = known.filter(|c| self.joining.contains_key(c)) {
                    self.request_genesis(peer_id, chain);
                } else if let Some(chain) = known {
                    let peer = self.peer(peer_id);
                    self.drive(chain, Input::Connected(peer)).await;
                    let _ = self.events.unbounded_send(NodeEvent::ChainPeer {
                        chain,
                        peer: peer_id,
                        joined: true,
                    });
                } else if self.config.mailbox {
                    self.mailbox_subscribe(peer_id, &topic).await;
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                if let Some(chain) = self.topics.get(&topic).copied() {
                    // A peer whose connection closed is forgotten and gone from every chain.
                    if let Some(peer) = self.peers.known(&peer_id) {
                        self.drive(chain, Input::Disconnected(peer)).await;
                    }
                    let _ = self.events.unbounded_send(NodeEvent::ChainPeer {
                        chain,
                        peer: peer_id,
                        joined: false,
                    });
                }
            }
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let chain = self.topics.get(&message.topic).copied();
                let (decoded, sealed) = match GossipFrame::decode(&message.data) {
                    Ok(GossipFrame::Sync(message)) => (Ok(message), None),
                    Ok(GossipFrame::Inline { block, content }) => {
                        (Ok(Message::Push { block }), Some(content))
                    }
                    Err(e) => (Err(e), None),
                };
                // Judged before this node's own write, so the hop costs a check, not a
                // commit. Blocks of chains this node holds no replica of, and blocks it
                // cannot judge yet (parents or authority missing), go on as they came.
                let (mut fresh, mut replayed) = (false, false);
                let judgement = match (&decoded, chain.and_then(|c| self.chains.get_mut(&c))) {
                    (Ok(Message::Push { block }), Some(sync)) => {
                        // Content rides only with a block this replica does not hold yet: a
                        // held block replayed with other bytes (anyone can, blocks are
                        // public) must not make every member store them, nor travel on.
                        if sealed.is_some() {
                            let held = sync.holds(block).await;
                            fresh = matches!(held, Ok(false));
                            replayed = matches!(held, Ok(true));
                        }
                        sync.judge(block).await.ok()
                    }
                    _ => None,
                };
                let verdict = match (&decoded, judgement) {
                    (Ok(Message::Push { .. }), Some(Judgement::Refused)) => {
                        MessageAcceptance::Reject
                    }
                    (Ok(Message::Push { .. }), _) if replayed => MessageAcceptance::Ignore,
                    (Ok(Message::Push { .. }), _) => MessageAcceptance::Accept,
                    // Heads go point to point (see `route`); nothing else travels by gossip.
                    (Ok(Message::Heads { .. }), _) => MessageAcceptance::Ignore,
                    (Ok(_) | Err(_), _) => MessageAcceptance::Reject,
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
                let Some(chain) = chain else {
                    return;
                };
                if !self.swarm.is_connected(&propagation_source) {
                    return;
                }
                match decoded {
                    Ok(message @ (Message::Push { .. } | Message::Heads { .. })) => {
                        let admissible = fresh && judgement == Some(Judgement::Admissible);
                        self.store_gossip(chain, propagation_source, message, sealed, admissible)
                            .await;
                    }
                    Ok(_) | Err(_) => log(LogLine::warn("malformed_message_dropped")
                        .field("peer", propagation_source)
                        .field("bytes", message.data.len())),
                }
            }
            _ => {}
        }
    }
}
