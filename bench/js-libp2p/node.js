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
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Everything runs on 127.0.0.1, which browsers' default gater refuses to dial.
    connectionGater: { denyDialMultiaddr: () => false },
    services: {
      identify: identify(),
      pubsub: gossipsub({ emitSelf: false, allowPublishToZeroTopicPeers: false }),
    },
  });
}
