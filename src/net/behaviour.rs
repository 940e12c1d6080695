//! The libp2p behaviours of a node.
// The derive generates `BehaviourEvent` without doc comments.
#![allow(missing_docs)]

use std::time::Duration;

use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::gossipsub::{self, MessageAuthenticity};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, identity, ping, relay, rendezvous, request_response};
use sha2::{Digest, Sha256};

use super::protocol::{
    ContentCodec, PeeredCodec, SyncCodec, CONTENT_PROTOCOL, PEERED_PROTOCOL, PROTOCOL,
};
use super::{NetError, NodeConfig};

/// The behaviours every Endra node runs.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub(super) limits: connection_limits::Behaviour,
    /// Inbound connections per remote IP.
    pub(super) ip_limit: super::ip_limit::Behaviour,
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) sync: request_response::Behaviour<SyncCodec>,
    /// Circuit relay v2 server (relays only).
    pub(super) relay: Toggle<relay::Behaviour>,
    /// Rendezvous server (relays only).
    pub(super) rendezvous: Toggle<rendezvous::server::Behaviour>,
    /// Circuit relay v2 client: listens on `/p2p-circuit` through relays (clients only).
    pub(super) relay_client: Toggle<relay::client::Behaviour>,
    /// Rendezvous client: registers at relays under each chain's ID and discovers the
    /// chain's other peers there (clients only).
    pub(super) discovery: Toggle<rendezvous::client::Behaviour>,
    /// Rendezvous registrations shared between peered relays: relays answer (their own
    /// registrations to peer relays, their peer relays' to clients), clients ask.
    pub(super) peered: request_response::Behaviour<PeeredCodec>,
    /// Offchain content served to and fetched from peers (`/endra/content/1`).
    pub(super) content: request_response::Behaviour<ContentCodec>,
    /// Raw streams: `/endra/session/1` ([`super::session`]) runs over them.
    pub(super) streams: libp2p_stream::Behaviour,
}

impl Behaviour {
    /// The behaviour of a node with identity `key`; `relay_client` comes from the swarm
    /// builder's relay transport.
    pub fn new(
        key: &identity::Keypair,
        config: &NodeConfig,
        relay_client: Option<relay::client::Behaviour>,
    ) -> Result<Self, NetError> {
        // Gossip carries blocks, each signed by its author and checked before it is stored,
        // and heads, which are hints checked against the store: a second signature per
        // message (made by the sender, checked by every hop and every copy) buys nothing and
        // costs a message's latency. Messages are anonymous and named by their content.
        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            // A hop passes a block on only once it judged it (see `Node::on_gossip`): one
            // peer's invalid blocks are not spread by honest nodes, who would then be blamed
            // for them by the next hop.
            .validate_messages()
            .message_id_fn(|message: &gossipsub::Message| {
                let digest = Sha256::digest(&message.data);
                gossipsub::MessageId::new(&digest[..20])
            })
            .max_transmit_size(256 * 1024)
            .heartbeat_interval(Duration::from_millis(700))
            // Small groups: publish to every subscriber rather than wait for a full mesh.
            .flood_publish(true)
            .mesh_n_low(1)
            .mesh_outbound_min(0)
            .build()
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, gossip_config)
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let sync = request_response::Behaviour::with_codec(
            SyncCodec,
            [(PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );
        let peered = request_response::Behaviour::with_codec(
            PeeredCodec,
            [(
                PEERED_PROTOCOL,
                if config.relay_server {
                    request_response::ProtocolSupport::Full
                } else {
                    request_response::ProtocolSupport::Outbound
                },
            )],
            // Longer than a relay's round (`peering::ROUND_DEADLINE_MS`) plus a tick.
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        );
        let peer_id = key.public().to_peer_id();
        let limits = &config.limits;
        let relay_config = relay::Config {
            // Chats are long-lived: circuits last an hour and carry up to the configured cap.
            max_circuit_duration: limits.circuit_duration,
            max_circuit_bytes: limits.circuit_bytes,
            max_reservations: limits.max_connections as usize,
            max_circuits: limits.max_connections as usize,
            max_circuits_per_peer: 64,
            ..relay::Config::default()
        };
        Ok(Behaviour {
            limits: connection_limits::Behaviour::new(
                ConnectionLimits::default()
                    .with_max_established(Some(limits.max_connections))
                    .with_max_established_per_peer(Some(limits.max_connections_per_peer))
                    .with_max_pending_incoming(Some(limits.max_connections.min(512))),
            ),
            // No address cache: a peer is dialled only at addresses this node was given or
            // found by rendezvous, never at others it advertised (a browser told to reach its
            // relay over WebSocket must not redial it over WebRTC-Direct).
            ip_limit: super::ip_limit::Behaviour::new(limits.max_connections_per_ip),
            identify: identify::Behaviour::new(
                identify::Config::new("/endra/1".into(), key.public()).with_cache_size(0),
            ),
            ping: ping::Behaviour::default(),
            gossipsub,
            sync,
            relay: Toggle::from(
                config
                    .relay_server
                    .then(|| relay::Behaviour::new(peer_id, relay_config)),
            ),
            rendezvous: Toggle::from(config.relay_server.then(|| {
                rendezvous::server::Behaviour::new(rendezvous::server::Config::default())
            })),
            relay_client: Toggle::from(relay_client.filter(|_| !config.relay_server)),
            discovery: Toggle::from(
                (!config.relay_server).then(|| rendezvous::client::Behaviour::new(key.clone())),
            ),
            peered,
            content: request_response::Behaviour::with_codec(
                ContentCodec,
                [(CONTENT_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(Duration::from_secs(20))
                    .with_max_concurrent_streams(64),
            ),
            streams: libp2p_stream::Behaviour::new(),
        })
    }
}
