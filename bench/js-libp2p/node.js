// One js-libp2p configuration for the hub (Node) and the pages (bundled for the browser):
// WebSocket, Noise, Yamux, identify, gossipsub with defaults — the reference stack.
import './polyfill.js';
import { createLibp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { gossipsub } from '@libp2p/gossipsub';

export const TOPIC = 'endra-latency-reference';

export function referenceNode({ listen = [] } = {}) {
  return createLibp2p({
    addresses: { listen },
    // @libp2p/websockets 10 dials ws:// and wss:// alike (no filter option any more).
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Everything runs on 127.0.0.1, which browsers' default gater refuses to dial.
    connectionGater: { denyDialMultiaddr: () => false },
    services: {
      identify: identify(),
      // Defaults like Endra's gossipsub; no echo to the sender, no publishing into the void.
      pubsub: gossipsub({ emitSelf: false, allowPublishToZeroTopicPeers: false }),
    },
  });
}

/**
 * Resolves once every one of `peerIds` is in `node`'s gossipsub mesh for the topic. The mesh
 * only changes on a GRAFT or in a heartbeat, so it is checked on those events, not on a timer.
 */
export function meshed(node, peerIds, timeout = 20_000) {
  const pubsub = node.services.pubsub;
  const done = () => {
    const mesh = pubsub.getMeshPeers(TOPIC).map(String);
    return peerIds.every((id) => mesh.includes(id));
  };
  if (done()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!done()) return;
      stop();
      resolve();
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`js-libp2p reference: no mesh with ${peerIds.join(', ')} within ${timeout} ms`));
    }, timeout);
    const stop = () => {
      clearTimeout(timer);
      pubsub.removeEventListener('gossipsub:graft', check);
      pubsub.removeEventListener('gossipsub:heartbeat', check);
    };
    pubsub.addEventListener('gossipsub:graft', check);
    pubsub.addEventListener('gossipsub:heartbeat', check);
  });
}
