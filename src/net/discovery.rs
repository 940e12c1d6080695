//! Finding and reaching peers: the relays a node uses (dialled again with backoff when
//! lost), rendezvous registration and discovery of each chain's peers, the rendezvous shared
//! between peered relays ([`super::peering`]), and dialling what was found over `/p2p-circuit`.

use libp2p::multiaddr::Protocol;
use libp2p::{rendezvous, request_response, Multiaddr, PeerId};

use super::logline::LogLine;
use super::peering;
use super::protocol::{Found, Lookup};
use super::{log, NetError, Node, NodeStore};

use crate::walytis::BlockId;

/// How often rendezvous registrations (valid two hours) are renewed.
pub(super) const REGISTRATION_RENEWAL_MS: u64 = 30 * 60 * 1000;

impl<S: NodeStore> Node<S> {
    /// Dials the lost relays whose backoff step came.
    pub(super) fn redial_due(&mut self) {
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

    pub(super) fn use_relay(&mut self, address: Multiaddr) -> Result<(), NetError> {
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
    pub(super) fn announce(&mut self, chain: BlockId) {
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
    pub(super) fn dial_found(&mut self, peer: PeerId, addresses: Vec<Multiaddr>) {
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
    pub(super) fn peering_act(
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

    pub(super) fn on_peered(&mut self, event: request_response::Event<Lookup, Vec<Found>>) {
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
    pub(super) fn peer_relay(&mut self, relay: PeerId) {
        if !self.peering.is_relay(&relay)
            && self.swarm.is_connected(&relay)
            && self.peering.relay_connected(relay)
        {
            log(LogLine::info("peer_relay").field("relay", relay));
        }
    }

    pub(super) fn on_rendezvous_server(&mut self, event: rendezvous::server::Event) {
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
}

/// The relay of a `/p2p/<relay>/p2p-circuit` listen address.
pub(super) fn circuit_relay(address: &Multiaddr) -> Option<PeerId> {
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
