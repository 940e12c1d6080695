//! The node task: the [`Node`] struct, its construction, and the event loop that dispatches
//! swarm events, commands and timers to the concerns in the sibling modules.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::channel::mpsc;
use futures::{FutureExt, StreamExt};
use libp2p::gossipsub::{IdentTopic, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, rendezvous, request_response, Multiaddr, PeerId, Swarm};

use super::content::{Fetching, OfferWait, ServedRead};
use super::discovery::{circuit_relay, REGISTRATION_RENEWAL_MS};
use super::handle::Command;
use super::logline::LogLine;
use super::peer_index::PeerIndex;
use super::peering::Peering;
use super::protocol::{Found, PEERED_PROTOCOL};
use super::redial::Redial;
use super::{
    log, Behaviour, BehaviourEvent, NetError, NodeConfig, NodeEvent, NodeHandle, NodeStore,
};
use crate::offchain::{ContentRequest, ContentRoot, ContentShape};
use crate::walytis::sync::{Input, Peer, Sync};
use crate::walytis::{BlockId, Rules};

/// A chain being joined: asked for its genesis since `since` (ms since start), for the
/// mailbox on behalf of the peer whose subscription it follows (`None`: opened by the owner).
#[derive(Debug, Clone, Copy)]
pub(super) struct Joining {
    pub(super) since: u64,
    pub(super) by: Option<PeerId>,
}

/// The node task: owns the swarm and the sync state of each open chain.
pub struct Node<S: NodeStore> {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) store: S,
    /// The kinds of chain this node opens (see [`crate::walytis::Rules`]).
    pub(super) rules: Rules,
    /// The device key that signs [`NodeHandle::append`]ed blocks; `None` on a relay.
    pub(super) key: Option<SigningKey>,
    pub(super) config: NodeConfig,
    pub(super) chains: HashMap<BlockId, Sync<S>>,
    /// Chains opened without a local copy, waiting for a peer to send their genesis.
    pub(super) joining: HashMap<BlockId, Joining>,
    pub(super) topics: HashMap<TopicHash, BlockId>,
    /// The sync core's numbers of the connected peers.
    pub(super) peers: PeerIndex<PeerId>,
    /// Relays this node uses, with their addresses: kept, and dialled again whenever lost.
    pub(super) relays: HashMap<PeerId, Vec<Multiaddr>>,
    /// When to dial each lost relay again.
    pub(super) redial: Redial<PeerId>,
    /// Relays holding a circuit reservation for this node: chains are registered there.
    pub(super) reserved: std::collections::HashSet<PeerId>,
    /// When registrations were last renewed (ms since start).
    pub(super) announced_at: u64,
    /// Chains whose mailbox quota was reported, so the log says it once.
    pub(super) over_quota: std::collections::HashSet<BlockId>,
    /// Chains a held block waits for (a group member's person chain; see
    /// [`crate::walytis::Output::Awaiting`]), opened — fetched from the chain's peers — at the
    /// end of the loop's turn.
    pub(super) awaited: Vec<BlockId>,
    /// The rendezvous registrations shared with peered relays (relays only).
    pub(super) peering: Peering<request_response::ResponseChannel<Vec<Found>>>,
    /// Lookups this relay sent to its peer relays, by request.
    pub(super) peering_asks:
        HashMap<request_response::OutboundRequestId, (PeerId, rendezvous::Namespace)>,
    /// Offchain content being fetched, by root.
    pub(super) fetches: HashMap<ContentRoot, Fetching>,
    /// Which fetch each content request in flight belongs to.
    pub(super) content_asks: HashMap<request_response::OutboundRequestId, ContentRoot>,
    /// Peers that served content that did not verify: never asked again.
    pub(super) content_struck: std::collections::HashSet<PeerId>,
    /// Offers sent to relays, by request, and the offer each belongs to.
    pub(super) offers: HashMap<request_response::OutboundRequestId, u64>,
    pub(super) offer_waits: HashMap<u64, OfferWait>,
    /// Erase requests made again to a relay that connected (see `Node::erase_again`), by
    /// request: the content and the relay.
    pub(super) erase_asks: HashMap<request_response::OutboundRequestId, (ContentRoot, PeerId)>,
    /// Relays that answered an erase request this run, by content: not asked again.
    pub(super) erase_answered: HashSet<(ContentRoot, PeerId)>,
    /// Peers' reads of trees and segments being served (see `Node::on_content`): their
    /// store reads overlap instead of queueing behind one another.
    pub(super) serving: futures::stream::FuturesUnordered<ServedRead>,
    pub(super) next_offer: u64,
    /// When to offer again the contents no relay keeps yet (ms since start), and the wait
    /// after that (see `Node::offer_again`).
    pub(super) offer_retry_at: u64,
    pub(super) offer_retry_ms: u64,
    /// Offers to make a moment after a post, with when (ms since start; see
    /// `Node::offer_content_later`).
    pub(super) deferred_offers: Vec<(u64, BlockId, ContentShape)>,
    /// Erase requests for contents being fetched whose tree had not come yet, with the chain
    /// named and the secret (see `Node::on_erase`).
    pub(super) asked_erasures: HashMap<ContentRoot, (BlockId, [u8; 32])>,
    /// A mailbox's quota counter as last read or written (see `Node::content_bytes_used`):
    /// read once, not on each message's path.
    pub(super) content_used: std::cell::Cell<Option<u64>>,
    /// A member's count of the segments its content store keeps, as last read and
    /// counted on since (see `Node::room_for`): read again at each fetch's start and
    /// tick, not on each message's path.
    pub(super) segments_kept: std::cell::Cell<Option<u64>>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) events: mpsc::UnboundedSender<NodeEvent>,
    pub(super) started: web_time::Instant,
    pub(super) jitter: u64,
}

impl<S: NodeStore> Node<S> {
    /// A node over an already built swarm, without a device key: it syncs, stores and relays
    /// blocks (a relay); give it a key with [`Node::with_device_key`] to write. Every chain
    /// it opens is held to `rules` (an Endra node passes [`crate::identity::rules`]). Returns
    /// the node (run it with [`Node::run`]), its handle and its event stream.
    pub fn new(
        swarm: Swarm<Behaviour>,
        store: S,
        rules: Rules,
        config: NodeConfig,
    ) -> (Self, NodeHandle, mpsc::UnboundedReceiver<NodeEvent>) {
        let (command_tx, commands) = mpsc::unbounded();
        let (events, event_rx) = mpsc::unbounded();
        let peer_id = *swarm.local_peer_id();
        let streams = swarm.behaviour().streams.new_control();
        // Seeded from the peer ID so the nodes' anti-entropy timers drift apart.
        let jitter = peer_id
            .to_bytes()
            .get(2..10)
            .and_then(|b| b.try_into().ok())
            .map_or(7, u64::from_le_bytes)
            | 1;
        // A client asks again every tick while it has no peers: one round per tick at most.
        let fresh_ms = config.tick.as_millis() as u64;
        let node = Node {
            swarm,
            store,
            rules,
            key: None,
            config,
            chains: HashMap::new(),
            joining: HashMap::new(),
            topics: HashMap::new(),
            peers: PeerIndex::default(),
            relays: HashMap::new(),
            redial: Redial::new(jitter.rotate_left(17)),
            reserved: std::collections::HashSet::new(),
            over_quota: std::collections::HashSet::new(),
            awaited: Vec::new(),
            peering: Peering::new(fresh_ms),
            peering_asks: HashMap::new(),
            announced_at: 0,
            fetches: HashMap::new(),
            content_asks: HashMap::new(),
            content_struck: std::collections::HashSet::new(),
            offers: HashMap::new(),
            offer_waits: HashMap::new(),
            erase_asks: HashMap::new(),
            erase_answered: HashSet::new(),
            serving: futures::stream::FuturesUnordered::new(),
            next_offer: 0,
            offer_retry_at: 0,
            offer_retry_ms: 5_000,
            deferred_offers: Vec::new(),
            asked_erasures: HashMap::new(),
            content_used: std::cell::Cell::new(None),
            segments_kept: std::cell::Cell::new(None),
            commands,
            events,
            started: web_time::Instant::now(),
            jitter,
        };
        (
            node,
            NodeHandle {
                commands: command_tx,
                peer_id,
                streams,
            },
            event_rx,
        )
    }

    pub(super) fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The device key that signs the blocks [`NodeHandle::append`] writes.
    pub fn with_device_key(mut self, key: SigningKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Runs until every [`NodeHandle`] is dropped or one calls [`NodeHandle::stop`].
    pub async fn run(mut self) {
        let mut stopped = None;
        let mut tick = futures_timer::Delay::new(self.next_tick()).fuse();
        // Armed for the redial schedule's next wake, re-armed whenever that moves.
        let mut redial = futures::future::Fuse::terminated();
        let mut redial_at = None;
        // Armed for the fetches' next round and the held requests' next expiry (see
        // `Node::next_content_wake`), which the tick (seconds apart) would make late.
        let mut content = futures::future::Fuse::terminated();
        let mut content_at = None;
        loop {
            let now = self.now();
            rearm(&mut content, &mut content_at, self.next_content_wake(), now);
            rearm(&mut redial, &mut redial_at, self.redial.next_wake(), now);
            futures::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event).await,
                (channel, response) = self.serving.select_next_some() => {
                    let _ = self.swarm.behaviour_mut().content.send_response(channel, response);
                }
                () = redial => {
                    redial_at = None;
                    self.redial_due();
                }
                () = content => {
                    content_at = None;
                    self.retry_fetches();
                    self.release_expired_held();
                    self.offer_deferred();
                }
                command = self.commands.next() => match command {
                    Some(Command::Stop(reply)) => {
                        stopped = Some(reply);
                        break;
                    }
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                () = tick => {
                    let chains: Vec<BlockId> = self.chains.keys().copied().collect();
                    for chain in chains {
                        self.drive(chain, Input::Tick).await;
                    }
                    // A genesis request can reach a peer that is itself still joining.
                    self.expire_joins();
                    let joining: Vec<BlockId> = self.joining.keys().copied().collect();
                    for chain in joining {
                        let topic = IdentTopic::new(chain.to_string()).hash();
                        for peer in self.topic_peers(&topic) {
                            self.request_genesis(peer, chain);
                        }
                    }
                    // A chain whose only peers are relays looks for its members again: one
                    // may have registered after this node last asked.
                    // Registrations expire after two hours: renew them every half hour.
                    let renew = self.now() >= self.announced_at + REGISTRATION_RENEWAL_MS;
                    if renew {
                        self.announced_at = self.now();
                    }
                    for chain in self.chain_ids() {
                        let topic = IdentTopic::new(chain.to_string()).hash();
                        let members = self.topic_peers(&topic);
                        if renew || members.iter().all(|peer| self.relays.contains_key(peer)) {
                            self.announce(chain);
                        }
                    }
                    let expired = self.peering.expire(self.now());
                    self.peering_act(expired);
                    self.retry_fetches();
                    self.release_expired_held();
                    self.offer_again(false).await;
                    self.expire_offered_fetches().await;
                    // Posts and erasures elsewhere change the count: read it again.
                    self.segments_kept.set(None);
                    tick = futures_timer::Delay::new(self.next_tick()).fuse();
                }
            }
            for chain in std::mem::take(&mut self.awaited) {
                if let Err(e) = self.open(chain, None).await {
                    log(LogLine::warn("awaited_chain_not_opened")
                        .field("chain", chain)
                        .field("error", e));
                }
            }
        }
        // The swarm goes first: its connections and listeners close before the caller hears
        // that the node stopped.
        drop(self);
        if let Some(reply) = stopped {
            let _ = reply.send(Ok(()));
        }
    }

    /// The tick interval ± 25 %, so peers' anti-entropy rounds do not synchronise.
    fn next_tick(&mut self) -> Duration {
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let base = self.config.tick.as_millis() as u64;
        Duration::from_millis(base * 3 / 4 + self.jitter % (base / 2 + 1))
    }

    pub(super) fn peer(&mut self, id: PeerId) -> Peer {
        self.peers.number(id)
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Open {
                chain,
                genesis,
                reply,
            } => {
                let result = self.open(chain, genesis).await;
                let _ = reply.send(result);
            }
            Command::Append {
                chain,
                items,
                time,
                reply,
            } => {
                let result = self.append(chain, time, &items).await;
                let _ = reply.send(result);
            }
            Command::Publish {
                chain,
                blocks,
                inline,
                reply,
            } => {
                let result = match self.chains.get_mut(&chain) {
                    None => Err(NetError::UnknownChain(chain)),
                    Some(sync) => match sync.published(blocks).await {
                        Ok(outputs) => {
                            self.route_with_content(chain, outputs, inline);
                            self.changed(chain, None);
                            self.authority_grew(chain).await;
                            Ok(())
                        }
                        Err(e) => Err(e.into()),
                    },
                };
                let _ = reply.send(result);
            }
            Command::Listen(address, reply) => {
                let result = self
                    .swarm
                    .listen_on(address.clone())
                    .map(|_| ())
                    .map_err(|e| NetError::Unreachable {
                        address: address.to_string(),
                        reason: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::Dial(address, reply) => {
                let result = self
                    .swarm
                    .dial(address.clone())
                    .map_err(|e| NetError::Unreachable {
                        address: address.to_string(),
                        reason: e.to_string(),
                    });
                let _ = reply.send(result);
            }
            Command::UseRelay(address, reply) => {
                let _ = reply.send(self.use_relay(address));
            }
            Command::AddExternal(address) => self.swarm.add_external_address(address),
            Command::Reconnect => {
                self.redial.hurry(self.now());
                self.redial_due();
            }
            // `run` takes a stop itself, before it reaches here.
            Command::Stop(reply) => {
                let _ = reply.send(Err(NetError::Stopped));
            }
            Command::Offline => {
                let relays: Vec<PeerId> = self.relays.keys().copied().collect();
                for relay in relays {
                    let _ = self.swarm.disconnect_peer_id(relay);
                }
            }
            Command::Unkept(reply) => {
                let roots = self
                    .pending_offers()
                    .await
                    .into_iter()
                    .map(|(_, shape)| shape.root);
                let _ = reply.send(Ok(roots.collect()));
            }
            Command::Peers(chain, reply) => {
                let topic = IdentTopic::new(chain.to_string()).hash();
                let _ = reply.send(Ok(self.topic_peers(&topic)));
            }
            Command::FetchContent {
                chain,
                commitment,
                reply,
            } => self.fetch_content(chain, commitment, reply).await,
            Command::OfferContent {
                chain,
                shape,
                reply,
            } => self.offer_content(chain, shape, reply).await,
            Command::OfferContentLater {
                chain,
                shape,
                reply,
            } => {
                self.offer_content_later(chain, shape).await;
                let _ = reply.send(Ok(()));
            }
            Command::EraseContent { request, reply } => {
                // Kept, for the relays not reachable now (see `Node::erase_again`).
                if let ContentRequest::Erase(chain, root, secret) = &request {
                    self.keep_pending_erasure(*chain, *root, *secret).await;
                }
                self.ask_relays(&request, Some(reply));
            }
            Command::Synced(chain, reply) => {
                let synced = self.chains.get(&chain).is_some_and(Sync::is_synced);
                let _ = reply.send(Ok(synced));
            }
        }
    }

    async fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                if let Some(relay) = circuit_relay(&address) {
                    // A reservation: others reach this node at this address through the relay.
                    self.swarm.add_external_address(address.clone());
                    self.reserved.insert(relay);
                    for chain in self.chain_ids() {
                        self.announce(chain);
                    }
                }
                let _ = self.events.unbounded_send(NodeEvent::Listening(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if let Some(relay) = circuit_relay(&address) {
                    self.reserved.remove(&relay);
                }
            }
            // A circuit listener closes with its relay's connection: the reservation is gone
            // (it is made again when the relay is back).
            SwarmEvent::ListenerClosed { addresses, .. } => {
                for address in addresses {
                    if let Some(relay) = circuit_relay(&address) {
                        self.reserved.remove(&relay);
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } if self.relays.contains_key(&peer) && !self.swarm.is_connected(&peer) => {
                log(LogLine::info("relay_unreachable")
                    .field("relay", peer)
                    .field("error", error));
                self.redial.failed(peer, self.now());
            }
            // A connection that stopped answering pings is dead even if no transport said so
            // (a laptop that slept, a network that vanished): close it, so that it is
            // reported and its relay dialled again.
            SwarmEvent::Behaviour(BehaviourEvent::Ping(libp2p::ping::Event {
                peer,
                connection,
                result:
                    Err(
                        error @ (libp2p::ping::Failure::Timeout
                        | libp2p::ping::Failure::Other { .. }),
                    ),
            })) => {
                log(LogLine::info("ping_failed")
                    .field("peer", peer)
                    .field("error", error));
                self.swarm.close_connection(connection);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                let _ = self.events.unbounded_send(NodeEvent::Connection {
                    peer: peer_id,
                    connected: true,
                });
                if self.relays.contains_key(&peer_id) {
                    self.redial.connected(peer_id);
                }
                if self.swarm.behaviour().relay_client.is_enabled() {
                    if let Some(address) = self.relays.get(&peer_id).and_then(|a| a.first()) {
                        let circuit = address.clone().with(Protocol::P2pCircuit);
                        if let Err(e) = self.swarm.listen_on(circuit) {
                            log(LogLine::warn("circuit_listen_failed")
                                .field("relay", peer_id)
                                .field("error", e));
                        }
                    }
                }
                if self.relays.contains_key(&peer_id) {
                    for chain in self.chain_ids() {
                        self.announce(chain);
                    }
                    self.offer_again(true).await;
                    self.erase_again(peer_id).await;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let _ = self.events.unbounded_send(NodeEvent::Connection {
                    peer: peer_id,
                    connected: false,
                });
                if let Some(peer) = self.peers.known(&peer_id) {
                    let chains: Vec<BlockId> = self.chains.keys().copied().collect();
                    for chain in chains {
                        self.drive(chain, Input::Disconnected(peer)).await;
                    }
                    self.peers.forget(&peer_id);
                }
                let actions = self.peering.relay_disconnected(self.now(), peer_id);
                self.peering_act(actions);
                if self.relays.contains_key(&peer_id) {
                    log(LogLine::info("relay_lost").field("relay", peer_id));
                    self.reserved.remove(&peer_id);
                    self.redial.lost(peer_id, self.now());
                }
            }
            // A relay serving the peered protocol is a peer relay (either side dialled).
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if self.config.relay_server && info.protocols.contains(&PEERED_PROTOCOL) => {
                self.peer_relay(peer_id);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Rendezvous(event)) => {
                self.on_rendezvous_server(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Peered(event)) => self.on_peered(event),
            SwarmEvent::Behaviour(BehaviourEvent::Content(event)) => self.on_content(event).await,
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event).await,
            SwarmEvent::Behaviour(BehaviourEvent::Discovery(
                rendezvous::client::Event::Discovered { registrations, .. },
            )) => {
                for registration in registrations {
                    let peer = registration.record.peer_id();
                    self.dial_found(peer, registration.record.addresses().to_vec());
                }
            }
            // An oversized or malformed sync frame fails its decoding: dropped, with a line.
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::InboundFailure {
                    peer,
                    error: request_response::InboundFailure::Io(e),
                    ..
                },
            )) => log(LogLine::warn("sync_frame_dropped")
                .field("peer", peer)
                .field("error", e)),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            })) => {
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, ());
                if !self.swarm.is_connected(&peer) {
                    // Its connection closed meanwhile: it is forgotten, and stays so.
                    return;
                }
                let from = self.peer(peer);
                if self.joining.contains_key(&request.chain) {
                    // A peer that speaks of the chain has it: ask it for the genesis.
                    if !self.adopt(&request).await {
                        self.request_genesis(peer, request.chain);
                    }
                }
                self.drive(request.chain, Input::Received(from, request.message))
                    .await;
            }
            _ => {}
        }
    }
}

/// Arms `timer` for `wake` (ms since the node started; `None`: never) when that moved from
/// `armed_at`, the wake it was armed for.
fn rearm(
    timer: &mut futures::future::Fuse<futures_timer::Delay>,
    armed_at: &mut Option<u64>,
    wake: Option<u64>,
    now: u64,
) {
    if wake == *armed_at {
        return;
    }
    *armed_at = wake;
    *timer = match wake {
        Some(at) => futures_timer::Delay::new(Duration::from_millis(at.saturating_sub(now))).fuse(),
        None => futures::future::Fuse::terminated(),
    };
}
