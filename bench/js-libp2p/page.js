// Browser side of the reference: `window.ref` publishes and records arrivals like the Endra
// latency bench does with `window.arrivals`.
import { multiaddr } from '@multiformats/multiaddr';
import { referenceNode, TOPIC } from './node.js';

window.startReference = async (hub) => {
  const node = await referenceNode();
  const arrivals = new Map();
  node.services.pubsub.addEventListener('message', (event) => {
    const id = new TextDecoder().decode(event.detail.data);
    arrivals.set(id, performance.timeOrigin + performance.now());
  });
  node.services.pubsub.subscribe(TOPIC);
  await node.dial(multiaddr(hub));
  window.ref = {
    peerId: node.peerId.toString(),
    arrivals,
    publish: (id) => node.services.pubsub.publish(TOPIC, new TextEncoder().encode(id)),
    stop: () => node.stop(),
  };
  return window.ref.peerId;
};
