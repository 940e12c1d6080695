//! A cap on inbound connections per remote IP address, which libp2p's connection limits do
//! not have: without it one host can take every connection a relay allows.
//!
//! [`IpCounts`] is the bookkeeping (sans-IO, unit-tested); [`Behaviour`] is the thin libp2p
//! shell that refuses a connection when its address is at the cap. Connections through a
//! circuit relay carry the relay's address, not the remote peer's, so they are not counted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure,
    NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// The connection was refused: its remote address already has `limit` connections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} already has {limit} connections to this node")]
pub struct TooManyFromIp {
    /// The remote address.
    pub ip: IpAddr,
    /// The cap.
    pub limit: u32,
}

/// Inbound connections (pending and established) by remote IP.
#[derive(Debug)]
pub struct IpCounts {
    limit: u32,
    by_ip: HashMap<IpAddr, u32>,
    connections: HashMap<ConnectionId, IpAddr>,
}

impl IpCounts {
    /// Counts with a cap of `limit` connections per address.
    pub fn new(limit: u32) -> Self {
        IpCounts {
            limit,
            by_ip: HashMap::new(),
            connections: HashMap::new(),
        }
    }

    /// Admits connection `id` from `remote` if its address is below the cap. Addresses
    /// without an IP (a circuit, a memory transport) are always admitted and not counted.
    pub fn admit(&mut self, id: ConnectionId, remote: &Multiaddr) -> Result<(), TooManyFromIp> {
        let Some(ip) = remote_ip(remote) else {
            return Ok(());
        };
        if self.connections.contains_key(&id) {
            return Ok(());
        }
        let count = self.by_ip.entry(ip).or_default();
        if *count >= self.limit {
            return Err(TooManyFromIp {
                ip,
                limit: self.limit,
            });
        }
        *count += 1;
        self.connections.insert(id, ip);
        Ok(())
    }

    /// Connection `id` closed or failed.
    pub fn release(&mut self, id: ConnectionId) {
        let Some(ip) = self.connections.remove(&id) else {
            return;
        };
        if let Some(count) = self.by_ip.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.by_ip.remove(&ip);
            }
        }
    }

    /// Connections counted from `ip`.
    pub fn count(&self, ip: &IpAddr) -> u32 {
        self.by_ip.get(ip).copied().unwrap_or(0)
    }
}

/// The remote IP of a direct connection; `None` for a relayed one or one without an IP.
fn remote_ip(address: &Multiaddr) -> Option<IpAddr> {
    if address.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    address.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// The libp2p behaviour that enforces [`IpCounts`] on inbound connections.
pub struct Behaviour {
    counts: IpCounts,
}

impl Behaviour {
    /// At most `limit` inbound connections per remote IP.
    pub fn new(limit: u32) -> Self {
        Behaviour {
            counts: IpCounts::new(limit),
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.counts
            .admit(connection_id, remote)
            .map_err(ConnectionDenied::new)
    }

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _address: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.counts.release(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_cap_and_closing_frees_a_place() {
        let mut counts = IpCounts::new(2);
        let here: Multiaddr = "/ip4/192.0.2.1/tcp/4001".parse().expect("addr");
        let other: Multiaddr = "/ip6/2001:db8::1/udp/9/quic-v1".parse().expect("addr");
        let circuit: Multiaddr = "/ip4/192.0.2.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
            .parse()
            .expect("addr");
        let id = ConnectionId::new_unchecked;
        assert!(counts.admit(id(1), &here).is_ok());
        assert!(counts.admit(id(2), &here).is_ok());
        let refused = counts
            .admit(id(3), &here)
            .expect_err("third from one address");
        assert_eq!(refused.limit, 2);
        assert!(
            counts.admit(id(4), &other).is_ok(),
            "another address is apart"
        );
        assert!(
            counts.admit(id(5), &circuit).is_ok(),
            "circuits are not counted"
        );
        counts.release(id(1));
        counts.release(id(1));
        assert_eq!(counts.count(&"192.0.2.1".parse().expect("ip")), 1);
        assert!(
            counts.admit(id(6), &here).is_ok(),
            "a closed connection frees a place"
        );
        counts.release(id(3));
        assert_eq!(
            counts.count(&"192.0.2.1".parse().expect("ip")),
            2,
            "a refused one was never counted"
        );
    }
}
