//! The libp2p shell around the sans-IO sync core ([`crate::walytis::sync`]).
//!
//! One node task owns the [`libp2p::Swarm`] and one [`Sync`] per open chain. It maps:
//! - gossipsub topic = chain ID: [`Output::Publish`] is a gossip publish, and gossip messages
//!   are [`Input::Received`]; a peer subscribing to a chain's topic is [`Input::Connected`];
//! - [`Output::Send`] is a request on `/endra/walytis/sync/1` ([`protocol`]);
//! - a jittered timer is [`Input::Tick`] (anti-entropy).
//!
//! The same node runs in a client and in the relay. With `mailbox` on (the relay), it keeps a
//! replica of every chain a peer subscribes to, fetching its genesis on first sight: it can
//! read nothing (blocks are public metadata; private content arrives encrypted with the
//! offchain layer) and forge nothing (every block is signed).
//!
//! Relays share rendezvous with the relays they peer with ([`peering`]): a client asks its
//! relay for a chain's peers registered at those relays and dials them over `/p2p-circuit`.

mod behaviour;
pub mod logline;
pub mod peering;
pub mod protocol;
pub mod redial;
pub mod session;

pub use behaviour::{Behaviour, BehaviourEvent};

use std::collections::HashMap;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, identity, rendezvous, request_response, Multiaddr, PeerId, Swarm};

use crate::store::BlockStore;
use crate::walytis::sync::{Input, Message, Output, Peer, Sync, RECENT_BLOCKS};
use crate::walytis::{Block, BlockId, Chain, ChainError, Entry, Rules};
use logline::LogLine;
use peering::Peering;
use protocol::{Envelope, Found, Lookup, PEERED_PROTOCOL};
use redial::Redial;

/// What went wrong in the network shell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The chain operation failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The node does not sync this chain.
    #[error("chain {0} is not open on this node")]
    UnknownChain(BlockId),
    /// Building the transport or behaviour failed.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// Listening or dialling failed.
    #[error("cannot reach {address}: {reason}")]
    Unreachable {
        /// The address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The node task has stopped.
    #[error("the network node has stopped")]
    Stopped,
    /// The node was built without a device key (a relay): it stores and forwards blocks but
    /// signs none.
    #[error("this node has no device key: it relays blocks but cannot write them")]
    NoDeviceKey,
}

/// Options of a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Replicate every chain a peer subscribes to (the relay's mailbox).
    pub mailbox: bool,
    /// Serve circuit relay v2 and rendezvous (the relay).
    pub relay_server: bool,
    /// Mean interval of anti-entropy heads exchanges.
    pub tick: Duration,
    /// Caps on connections, circuits and the mailbox.
    pub limits: Limits,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            mailbox: false,
            relay_server: false,
            tick: Duration::from_secs(5),
            limits: Limits::default(),
        }
    }
}

/// Caps that keep one node (above all the relay) within its means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Established connections in total; more are refused.
    pub max_connections: u32,
    /// Established connections to one peer.
    pub max_connections_per_peer: u32,
    /// Chains the mailbox replicates; subscriptions to further chains are not replicated.
    pub mailbox_max_chains: usize,
    /// Blocks the mailbox keeps of one chain; beyond, it stops accepting the chain's blocks
    /// (its members still sync directly with each other).
    pub mailbox_chain_blocks: u64,
    /// Bytes one relayed circuit may carry in each direction.
    pub circuit_bytes: u64,
    /// How long one relayed circuit may last before the client renews it.
    pub circuit_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 4096,
            max_connections_per_peer: 8,
            mailbox_max_chains: 100_000,
            mailbox_chain_blocks: 1_000_000,
            circuit_bytes: 64 << 20,
            circuit_duration: Duration::from_secs(3600),
        }
    }
}

/// Something the node reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// The node listens on this address.
    Listening(Multiaddr),
    /// A chain gained blocks; read them with [`Chain::since`].
    Changed {
        /// The chain.
        chain: BlockId,
        /// Its block count now.
        count: u64,
        /// The new blocks in arrival order when few (a live message: no store read needed to
        /// show it), `None` after a larger batch (a catch-up) or a change made elsewhere.
        blocks: Option<Vec<Entry>>,
    },
    /// A connection to a peer opened (`true`) or its last connection closed (`false`).
    Connection {
        /// The peer.
        peer: PeerId,
        /// Whether the node is now connected to it.
        connected: bool,
    },
    /// A chain caught up with its peers: a peer's heads were heard and every block they named
    /// is stored (see [`Sync::is_synced`]). Reported each time it becomes true again.
    Synced {
        /// The chain.
        chain: BlockId,
    },
    /// A peer of a chain joined or left.
    ChainPeer {
        /// The chain.
        chain: BlockId,
        /// The peer.
        peer: PeerId,
        /// Joined (true) or left (false).
        joined: bool,
    },
}

/// How long a browser's WebRTC-Direct dial may take before it counts as failed.
#[cfg(target_arch = "wasm32")]
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How often rendezvous registrations (valid two hours) are renewed.
const REGISTRATION_RENEWAL_MS: u64 = 30 * 60 * 1000;

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

enum Command {
    Open {
        chain: BlockId,
        genesis: Option<Block>,
        reply: Reply<()>,
    },
    Append {
        chain: BlockId,
        items: Vec<(Vec<u8>, Vec<String>)>,
        time: u64,
        reply: Reply<Vec<Entry>>,
    },
    Publish {
        chain: BlockId,
        blocks: Vec<Vec<u8>>,
        reply: Reply<()>,
    },
    Listen(Multiaddr, Reply<()>),
    Dial(Multiaddr, Reply<()>),
    UseRelay(Multiaddr, Reply<()>),
    AddExternal(Multiaddr),
    Peers(BlockId, Reply<Vec<PeerId>>),
    Synced(BlockId, Reply<bool>),
    Reconnect,
    Offline,
    Stop(Reply<()>),
}

/// A cheap handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    commands: mpsc::UnboundedSender<Command>,
    peer_id: PeerId,
    streams: libp2p_stream::Control,
}

impl NodeHandle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .unbounded_send(make(tx))
            .map_err(|_| NetError::Stopped)?;
        rx.await.map_err(|_| NetError::Stopped)?
    }

    /// This node's peer ID.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Opens and accepts raw streams on the node's connections, such as identity sessions
    /// ([`session::open_session`], [`session::accept_sessions`]).
    pub fn streams(&self) -> libp2p_stream::Control {
        self.streams.clone()
    }

    /// Starts syncing a chain: the store's copy, a new replica starting at `genesis`, or, with
    /// neither, a replica whose genesis the first peer of the chain is asked for.
    pub async fn open(&self, chain: BlockId, genesis: Option<Block>) -> Result<(), NetError> {
        self.call(|reply| Command::Open {
            chain,
            genesis,
            reply,
        })
        .await
    }

    /// Pushes blocks that another handle on the node's store already stored (signed by
    /// another key: an identity's device key) to the chain's peers.
    pub async fn publish(&self, chain: BlockId, blocks: Vec<Vec<u8>>) -> Result<(), NetError> {
        self.call(|reply| Command::Publish {
            chain,
            blocks,
            reply,
        })
        .await
    }

    /// Appends blocks signed with the node's device key and pushes them to peers.
    pub async fn append(
        &self,
        chain: BlockId,
        time: u64,
        items: Vec<(Vec<u8>, Vec<String>)>,
    ) -> Result<Vec<Entry>, NetError> {
        self.call(|reply| Command::Append {
            chain,
            items,
            time,
            reply,
        })
        .await
    }

    /// Listens on an address; [`NodeEvent::Listening`] reports the bound address.
    pub async fn listen(&self, address: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::Listen(address, reply)).await
    }

    /// Dials an address.
    pub async fn dial(&self, address: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::Dial(address, reply)).await
    }

    /// Dials a relay (an address ending in `/p2p/<relay>`), listens on `/p2p-circuit` through
    /// it once connected, and registers and discovers the peers of every open chain there.
    /// Several addresses of one relay (WebRTC-Direct, WebSocket) are dialled together and
    /// the first to connect wins, so a failing transport falls back to the others.
    pub async fn use_relay(&self, address: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::UseRelay(address, reply)).await
    }

    /// The network is likely back (the browser's `online` event, a tab becoming visible):
    /// dial every lost relay now instead of at its next backoff step.
    pub fn reconnect(&self) {
        let _ = self.commands.unbounded_send(Command::Reconnect);
    }

    /// Stops the node: closes its connections and listeners; every later call on any of its
    /// handles fails with [`NetError::Stopped`]. Resolves once it has stopped.
    pub async fn stop(&self) -> Result<(), NetError> {
        self.call(Command::Stop).await
    }

    /// The device lost its network (the browser's `offline` event): closes the connections to
    /// the relays now, so that [`NodeEvent::Connection`] says so at once instead of after the
    /// pings time out; they are dialled again with backoff and at [`NodeHandle::reconnect`].
    pub fn offline(&self) {
        let _ = self.commands.unbounded_send(Command::Offline);
    }

    /// Declares an address others reach this node at (a relay needs one to serve circuits).
    pub fn add_external_address(&self, address: Multiaddr) {
        let _ = self.commands.unbounded_send(Command::AddExternal(address));
    }

    /// The peers currently syncing a chain with this node.
    pub async fn peers(&self, chain: BlockId) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::Peers(chain, reply)).await
    }

    /// Whether a chain has caught up with its peers ([`NodeEvent::Synced`]); `false` while it
    /// is still being joined or is not open.
    pub async fn is_synced(&self, chain: BlockId) -> Result<bool, NetError> {
        self.call(|reply| Command::Synced(chain, reply)).await
    }
}

/// The node task: owns the swarm and the sync state of each open chain.
pub struct Node<S: BlockStore + Clone> {
    swarm: Swarm<Behaviour>,
    store: S,
    /// The kinds of chain this node opens (see [`crate::walytis::Rules`]).
    rules: Rules,
    /// The device key that signs [`NodeHandle::append`]ed blocks; `None` on a relay.
    key: Option<SigningKey>,
    config: NodeConfig,
    chains: HashMap<BlockId, Sync<S>>,
    /// Chains opened without a local copy, waiting for a peer to send their genesis.
    joining: std::collections::HashSet<BlockId>,
    topics: HashMap<TopicHash, BlockId>,
    peers: HashMap<PeerId, Peer>,
    peer_ids: HashMap<Peer, PeerId>,
    /// Relays this node uses, with their addresses: kept, and dialled again whenever lost.
    relays: HashMap<PeerId, Vec<Multiaddr>>,
    /// When to dial each lost relay again.
    redial: Redial<PeerId>,
    /// Relays holding a circuit reservation for this node: chains are registered there.
    reserved: std::collections::HashSet<PeerId>,
    /// When registrations were last renewed (ms since start).
    announced_at: u64,
    /// Chains whose mailbox quota was reported, so the log says it once.
    over_quota: std::collections::HashSet<BlockId>,
    /// The rendezvous registrations shared with peered relays (relays only).
    peering: Peering<request_response::ResponseChannel<Vec<Found>>>,
    /// Lookups this relay sent to its peer relays, by request.
    peering_asks: HashMap<request_response::OutboundRequestId, (PeerId, rendezvous::Namespace)>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<NodeEvent>,
    started: web_time::Instant,
    jitter: u64,
}

impl<S: BlockStore + Clone> Node<S> {
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
            joining: std::collections::HashSet::new(),
            topics: HashMap::new(),
            peers: HashMap::new(),
            peer_ids: HashMap::new(),
            relays: HashMap::new(),
            redial: Redial::new(jitter.rotate_left(17)),
            reserved: std::collections::HashSet::new(),
            over_quota: std::collections::HashSet::new(),
            peering: Peering::new(fresh_ms),
            peering_asks: HashMap::new(),
            announced_at: 0,
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

    fn now(&self) -> u64 {
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
        loop {
            let wake = self.redial.next_wake();
            if wake != redial_at {
                redial_at = wake;
                redial = match wake {
                    Some(at) => {
                        let wait = Duration::from_millis(at.saturating_sub(self.now()));
                        futures_timer::Delay::new(wait).fuse()
                    }
                    None => futures::future::Fuse::terminated(),
                };
            }
            futures::select! {
                event = self.swarm.select_next_some() => self.on_swarm(event).await,
                () = redial => {
                    redial_at = None;
                    self.redial_due();
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
                    let joining: Vec<BlockId> = self.joining.iter().copied().collect();
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
                    tick = futures_timer::Delay::new(self.next_tick()).fuse();
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

    fn peer(&mut self, id: PeerId) -> Peer {
        let next = self.peers.len() as Peer;
        let peer = *self.peers.entry(id).or_insert(next);
        self.peer_ids.insert(peer, id);
        peer
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
                reply,
            } => {
                let result = match self.chains.get_mut(&chain) {
                    None => Err(NetError::UnknownChain(chain)),
                    Some(sync) => match sync.published(blocks).await {
                        Ok(outputs) => {
                            self.route(chain, outputs);
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
            Command::Peers(chain, reply) => {
                let topic = IdentTopic::new(chain.to_string()).hash();
                let _ = reply.send(Ok(self.topic_peers(&topic)));
            }
            Command::Synced(chain, reply) => {
                let synced = self.chains.get(&chain).is_some_and(Sync::is_synced);
                let _ = reply.send(Ok(synced));
            }
        }
    }

    /// Signs the blocks, pushes them to the chain's peers, then stores them: the store's
    /// write overlaps their trip instead of preceding it (see [`Sync::sign`]).
    async fn append(
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

    async fn open(&mut self, chain: BlockId, genesis: Option<Block>) -> Result<(), NetError> {
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
                    self.joining.insert(chain);
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

    /// Dials the lost relays whose backoff step came.
    fn redial_due(&mut self) {
        let now = self.now();
        for relay in self.redial.due(now) {
            if self.swarm.is_connected(&relay) {
                self.redial.connected(relay);
                continue;
            }
            if !self.relays.contains_key(&relay) {
                continue;
            }
            log(LogLine::info("relay_redial").field("relay", relay));
            if let Err(e) = self.dial_relay(relay, now) {
                log(LogLine::warn("dial_failed")
                    .field("peer", relay)
                    .field("error", e));
                self.redial.failed(relay, now);
            }
        }
    }

    /// Dials a relay at the addresses it was given (no others: see `Behaviour::new`), and
    /// marks it as dialling. A dial already under way (another of its addresses) serves.
    fn dial_relay(&mut self, relay: PeerId, now: u64) -> Result<(), libp2p::swarm::DialError> {
        let addresses = self.relays.get(&relay).cloned().unwrap_or_default();
        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(relay)
            .addresses(addresses)
            .build();
        match self.swarm.dial(options) {
            Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                self.redial.dialing(relay, now);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn use_relay(&mut self, address: Multiaddr) -> Result<(), NetError> {
        let unreachable = |reason: String| NetError::Unreachable {
            address: address.to_string(),
            reason,
        };
        let Some(Protocol::P2p(relay)) = address.iter().last() else {
            return Err(unreachable(
                "a relay address must end in /p2p/<peer id>".into(),
            ));
        };
        let addresses = self.relays.entry(relay).or_default();
        if !addresses.contains(&address) {
            addresses.push(address.clone());
        }
        if self.swarm.is_connected(&relay) {
            self.redial.connected(relay);
            return Ok(());
        }
        let now = self.now();
        self.dial_relay(relay, now)
            .map_err(|e| unreachable(e.to_string()))
    }

    /// Tells the relays about a chain this node has: registers it where this node holds a
    /// reservation (so others can reach it through `/p2p-circuit`), and asks every connected
    /// relay for the chain's other peers.
    fn announce(&mut self, chain: BlockId) {
        let Some(discovery) = self.swarm.behaviour_mut().discovery.as_mut() else {
            return;
        };
        let Ok(namespace) = rendezvous::Namespace::new(chain.to_string()) else {
            return;
        };
        for relay in &self.reserved {
            if let Err(e) = discovery.register(namespace.clone(), *relay, None) {
                log(LogLine::warn("register_failed")
                    .field("chain", chain)
                    .field("relay", relay)
                    .field("error", e));
            }
        }
        let connected: Vec<PeerId> = self
            .relays
            .keys()
            .filter(|relay| self.swarm.is_connected(relay))
            .copied()
            .collect();
        for relay in connected {
            if let Some(discovery) = self.swarm.behaviour_mut().discovery.as_mut() {
                discovery.discover(Some(namespace.clone()), None, None, relay);
            }
            // And for the chain's peers registered at the relays it peers with.
            self.swarm.behaviour_mut().peered.send_request(
                &relay,
                Lookup {
                    namespace: namespace.clone(),
                    forward: true,
                },
            );
        }
    }

    /// Dials a peer found by rendezvous (at a relay or at a relay's peer relays), unless it
    /// is this node or already connected.
    fn dial_found(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
        if peer == *self.swarm.local_peer_id() || self.swarm.is_connected(&peer) {
            return;
        }
        let options = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
            .addresses(addresses)
            .build();
        match self.swarm.dial(options) {
            // Found twice (at the relay and at its peers): the first dial serves.
            Ok(()) | Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => log(LogLine::warn("dial_failed")
                .field("peer", peer)
                .field("error", e)),
        }
    }

    /// Carries out what the shared rendezvous asks for.
    fn peering_act(
        &mut self,
        actions: Vec<peering::Action<request_response::ResponseChannel<Vec<Found>>>>,
    ) {
        for action in actions {
            match action {
                peering::Action::Ask { relay, namespace } => {
                    let request = self.swarm.behaviour_mut().peered.send_request(
                        &relay,
                        Lookup {
                            namespace: namespace.clone(),
                            forward: false,
                        },
                    );
                    self.peering_asks.insert(request, (relay, namespace));
                }
                peering::Action::Answer { waiter, found } => {
                    // The client may have gone: nothing to do then.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .peered
                        .send_response(waiter, found);
                }
            }
        }
    }

    fn on_peered(&mut self, event: request_response::Event<Lookup, Vec<Found>>) {
        let now = self.now();
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if !self.config.relay_server {
                    return;
                }
                if request.forward {
                    let actions = self.peering.lookup(now, request.namespace, peer, channel);
                    self.peering_act(actions);
                } else {
                    let found = self.peering.own(now, &request.namespace, peer);
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .peered
                        .send_response(channel, found);
                }
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
                if let Some((relay, namespace)) = self.peering_asks.remove(&request_id) {
                    let actions = self
                        .peering
                        .answered(now, relay, &namespace, Some(response));
                    self.peering_act(actions);
                } else if self.relays.contains_key(&peer) {
                    // A client's own relay answered: dial the peers of its peer relays.
                    for found in response {
                        let id = found.record.peer_id();
                        self.dial_found(id, found.record.addresses().to_vec());
                    }
                }
            }
            request_response::Event::OutboundFailure { request_id, .. } => {
                if let Some((relay, namespace)) = self.peering_asks.remove(&request_id) {
                    let actions = self.peering.answered(now, relay, &namespace, None);
                    self.peering_act(actions);
                }
            }
            _ => {}
        }
    }

    /// A connected relay that serves the peered protocol: this relay shares rendezvous with it.
    fn peer_relay(&mut self, relay: PeerId) {
        if !self.peering.is_relay(&relay)
            && self.swarm.is_connected(&relay)
            && self.peering.relay_connected(relay)
        {
            log(LogLine::info("peer_relay").field("relay", relay));
        }
    }

    fn on_rendezvous_server(&mut self, event: rendezvous::server::Event) {
        let now = self.now();
        match event {
            rendezvous::server::Event::PeerRegistered { registration, .. } => {
                self.peering.registered(now, &registration);
            }
            rendezvous::server::Event::PeerUnregistered { peer, namespace } => {
                self.peering.unregistered(peer, &namespace, None);
            }
            rendezvous::server::Event::RegistrationExpired(registration) => {
                self.peering.unregistered(
                    registration.record.peer_id(),
                    &registration.namespace,
                    Some(&registration.record),
                );
            }
            _ => {}
        }
    }

    fn chain_ids(&self) -> Vec<BlockId> {
        self.chains
            .keys()
            .chain(self.joining.iter())
            .copied()
            .collect()
    }

    fn topic_peers(&self, topic: &TopicHash) -> Vec<PeerId> {
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&topic))
            .map(|(peer, _)| *peer)
            .collect()
    }

    /// Asks a peer for a chain's genesis block (the chain ID is the genesis ID).
    fn request_genesis(&mut self, peer: PeerId, chain: BlockId) {
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

    async fn drive(&mut self, chain: BlockId, input: Input) {
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

    /// `authority` grew: the chains bound to it judge the blocks they held for it.
    async fn authority_grew(&mut self, authority: BlockId) {
        let now = self.now();
        let bound: Vec<BlockId> = self
            .chains
            .iter()
            .filter(|(_, sync)| {
                sync.chain().authority() == Some(authority) && sync.chain().has_awaiting()
            })
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

    fn changed(&mut self, chain: BlockId, blocks: Option<Vec<Entry>>) {
        if let Some(sync) = self.chains.get(&chain) {
            let count = sync.chain().len();
            let _ = self.events.unbounded_send(NodeEvent::Changed {
                chain,
                count,
                blocks,
            });
        }
    }

    fn route(&mut self, chain: BlockId, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send(peer, message) => {
                    if let Some(peer) = self.peer_ids.get(&peer).copied() {
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
                Output::Publish(message) => {
                    let topic = IdentTopic::new(chain.to_string());
                    // No subscribed peer yet is normal: heads exchanges catch up later.
                    let _ = self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .publish(topic, message.encode());
                }
                Output::Refused(peer, block, reason) => {
                    log(LogLine::warn("block_refused")
                        .field("chain", chain)
                        .field("block", block)
                        .field(
                            "peer",
                            self.peer_ids
                                .get(&peer)
                                .map(PeerId::to_string)
                                .unwrap_or_default(),
                        )
                        .field("reason", reason));
                }
                Output::Disconnect(peer) => {
                    if let Some(peer) = self.peer_ids.get(&peer).copied() {
                        log(LogLine::warn("peer_disconnected")
                            .field("peer", peer)
                            .field("reason", "invalid blocks or flood"));
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                }
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
                let peer = self.peer(peer_id);
                let chains: Vec<BlockId> = self.chains.keys().copied().collect();
                for chain in chains {
                    self.drive(chain, Input::Disconnected(peer)).await;
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
                let from = self.peer(peer);
                if self.joining.contains(&request.chain) {
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

    async fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Subscribed { peer_id, topic, .. } => {
                let known = self.topics.get(&topic).copied();
                if let Some(chain) = known.filter(|c| self.joining.contains(c)) {
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
                    let peer = self.peer(peer_id);
                    self.drive(chain, Input::Disconnected(peer)).await;
                    let _ = self.events.unbounded_send(NodeEvent::ChainPeer {
                        chain,
                        peer: peer_id,
                        joined: false,
                    });
                }
            }
            gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            } => {
                let Some(chain) = self.topics.get(&message.topic).copied() else {
                    return;
                };
                let from = self.peer(propagation_source);
                match Message::decode(&message.data) {
                    // Only pushes and heads travel by gossip; requests go point to point.
                    Ok(m @ (Message::Push { .. } | Message::Heads { .. })) => {
                        self.drive(chain, Input::Received(from, m)).await;
                    }
                    Ok(_) | Err(_) => log(LogLine::warn("malformed_message_dropped")
                        .field("peer", propagation_source)
                        .field("bytes", message.data.len())),
                }
            }
            _ => {}
        }
    }

    /// The mailbox learns of a chain it does not hold: it joins it like a client would.
    async fn mailbox_subscribe(&mut self, peer_id: PeerId, topic: &TopicHash) {
        let Ok(chain) = topic.as_str().parse::<BlockId>() else {
            return;
        };
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
    }

    /// A sync message for a chain being joined: a batch that starts with the chain's
    /// genesis creates the replica.
    /// Returns whether the replica now exists.
    async fn adopt(&mut self, request: &Envelope) -> bool {
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

/// The relay of a `/p2p/<relay>/p2p-circuit` listen address.
fn circuit_relay(address: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for protocol in address.iter() {
        match protocol {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// One structured line to standard error (native) or the console (browser).
fn log(line: LogLine) {
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{line}");
    #[cfg(target_arch = "wasm32")]
    web_sys::console::warn_1(&line.to_string().into());
}

/// Builds a native swarm over TCP and WebSocket (Noise, Yamux) with identity `key`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn native_swarm(
    key: identity::Keypair,
    config: &NodeConfig,
) -> Result<Swarm<Behaviour>, NetError> {
    build_native(key, config, None).await
}

/// The certificate a WebRTC-Direct listener presents; its hash is part of the listen address
/// (`/certhash/…`), so a relay keeps it across restarts.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub use libp2p_webrtc::tokio::Certificate as WebRtcCertificate;

/// A new WebRTC-Direct certificate.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub fn new_webrtc_certificate() -> Result<WebRtcCertificate, NetError> {
    WebRtcCertificate::generate(&mut rand_webrtc::rng()).map_err(|e| NetError::Setup(e.to_string()))
}

/// Builds a native swarm over TCP, WebSocket and WebRTC-Direct (UDP, for browsers), with
/// identity `key` and the WebRTC `certificate`.
#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
pub async fn native_swarm_with_webrtc(
    key: identity::Keypair,
    config: &NodeConfig,
    certificate: WebRtcCertificate,
) -> Result<Swarm<Behaviour>, NetError> {
    build_native(key, config, Some(certificate)).await
}

#[cfg(all(feature = "webrtc", not(target_arch = "wasm32")))]
type NativeCertificate = WebRtcCertificate;
#[cfg(all(not(feature = "webrtc"), not(target_arch = "wasm32")))]
type NativeCertificate = std::convert::Infallible;

#[cfg(not(target_arch = "wasm32"))]
async fn build_native(
    key: identity::Keypair,
    config: &NodeConfig,
    webrtc: Option<NativeCertificate>,
) -> Result<Swarm<Behaviour>, NetError> {
    use libp2p::{noise, tcp, yamux};
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let builder = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| setup(&e))?;
    #[cfg(feature = "webrtc")]
    let builder = builder
        .with_other_transport(|key| {
            use libp2p::core::muxing::StreamMuxerBox;
            use libp2p::core::transport::OptionalTransport;
            use libp2p::core::Transport;
            match webrtc {
                Some(certificate) => OptionalTransport::some(
                    libp2p_webrtc::tokio::Transport::new(key.clone(), certificate)
                        .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection))),
                ),
                None => OptionalTransport::none(),
            }
        })
        .map_err(|e| setup(&e))?;
    #[cfg(not(feature = "webrtc"))]
    let _ = webrtc;
    // The builder's phases are ordered: other transports (WebRTC) come before DNS and WebSocket.
    Ok(builder
        .with_dns()
        .map_err(|e| setup(&e))?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, config, Some(relay_client)).map_err(|e| e.to_string().into())
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build())
}

/// Builds a browser swarm: WebRTC-Direct and WebSocket to relays (Noise, Yamux).
#[cfg(target_arch = "wasm32")]
pub fn browser_swarm(
    key: identity::Keypair,
    config: &NodeConfig,
) -> Result<Swarm<Behaviour>, NetError> {
    use libp2p::core::muxing::StreamMuxerBox;
    use libp2p::core::upgrade::Version;
    use libp2p::core::Transport;
    use libp2p::{noise, webrtc_websys, websocket_websys, yamux};
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    Ok(libp2p::SwarmBuilder::with_existing_identity(key)
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            // A WebRTC-Direct dial to a dead address hangs instead of failing; the timeout
            // makes it fail, so that the relay is dialled again when it is back.
            libp2p::core::transport::timeout::TransportTimeout::with_outgoing_timeout(
                webrtc_websys::Transport::new(webrtc_websys::Config::new(key))
                    .map(|(peer, connection), _| (peer, StreamMuxerBox::new(connection))),
                DIAL_TIMEOUT,
            )
        })
        .map_err(|e| setup(&e))?
        .with_other_transport(|key| {
            let noise = noise::Config::new(key).map_err(
                |e| -> Box<dyn std::error::Error + Send + std::marker::Sync> { Box::new(e) },
            )?;
            Ok(websocket_websys::Transport::default()
                .upgrade(Version::V1)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .map_err(|e| setup(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_behaviour(|key, relay_client| {
            Behaviour::new(key, config, Some(relay_client)).map_err(|e| e.to_string().into())
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
        .build())
}
