//! The libp2p behaviours of a node.
// The derive generates `BehaviourEvent` without doc comments.
#![allow(missing_docs)]

use std::time::Duration;

use libp2p::gossipsub::{self, MessageAuthenticity};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, identity, ping, relay, rendezvous, request_response};

use super::protocol::{SyncCodec, PROTOCOL};
use super::{NetError, NodeConfig};

/// The behaviours every Endra node runs.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub(super) identify: identify::Behaviour,
    pub(super) ping: ping::Behaviour,
    pub(super) gossipsub: gossipsub::Behaviour,
    pub(super) sync: request_response::Behaviour<SyncCodec>,
    pub(super) relay: Toggle<relay::Behaviour>,
    pub(super) rendezvous: Toggle<rendezvous::server::Behaviour>,
}

impl Behaviour {
    /// The behaviour of a node with identity `key`.
    pub fn new(key: &identity::Keypair, config: &NodeConfig) -> Result<Self, NetError> {
        let gossip_config = gossipsub::ConfigBuilder::default()
            .max_transmit_size(256 * 1024)
            .heartbeat_interval(Duration::from_millis(700))
            // Small groups: publish to every subscriber rather than wait for a full mesh.
            .flood_publish(true)
            .mesh_n_low(1)
            .mesh_outbound_min(0)
            .build()
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let gossipsub =
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_config)
                .map_err(|e| NetError::Setup(e.to_string()))?;
        let sync = request_response::Behaviour::with_codec(
            SyncCodec,
            [(PROTOCOL, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );
        let peer_id = key.public().to_peer_id();
        Ok(Behaviour {
            identify: identify::Behaviour::new(identify::Config::new(
                "/endra/1".into(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            gossipsub,
            sync,
            relay: Toggle::from(
                config
                    .relay_server
                    .then(|| relay::Behaviour::new(peer_id, relay::Config::default())),
            ),
            rendezvous: Toggle::from(config.relay_server.then(|| {
                rendezvous::server::Behaviour::new(rendezvous::server::Config::default())
            })),
        })
    }
}
