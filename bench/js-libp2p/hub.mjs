// The Node side of the reference: a js-libp2p node on ws://127.0.0.1, subscribed to the topic
// so that its gossipsub forwards page A's messages to page B (like endra-relay does for us).
import { meshed, referenceNode, TOPIC } from './node.js';

/** Starts the hub; resolves to `{ multiaddr, peerId, meshed(peerIds), stop }`. */
export async function startHub() {
  const node = await referenceNode({ listen: ['/ip4/127.0.0.1/tcp/0/ws'] });
  node.services.pubsub.subscribe(TOPIC);
  return {
    multiaddr: node.getMultiaddrs()[0].toString(),
    peerId: node.peerId.toString(),
    /** Resolves once all `peerIds` are in the hub's mesh for the topic. */
    meshed: (peerIds, timeout) => meshed(node, peerIds, timeout),
    stop: () => node.stop(),
  };
}
