// Browser side of the reference, bundled by measure.mjs. `window.ref` publishes, and records
// arrivals in the message listener like the Endra latency bench does with `window.arrivals`,
// so the time taken to hand a result back to the bench is not part of the latency.
import { multiaddr } from '@multiformats/multiaddr';
import { meshed, referenceNode, TOPIC } from './node.js';

const now = () => performance.timeOrigin + performance.now();

/** Dials the hub and resolves with this page's peer id once the hub is in its mesh. */
window.startReference = async (hubAddress, hubPeerId) => {
  const node = await referenceNode();
  const arrivals = new Map();
  const waiters = new Map();
  node.services.pubsub.addEventListener('message', (event) => {
    if (event.detail.topic !== TOPIC) return;
    const arrived = now();
    const id = new TextDecoder().decode(event.detail.data);
    arrivals.set(id, arrived);
    waiters.get(id)?.(arrived);
  });
  node.services.pubsub.subscribe(TOPIC);
  await node.dial(multiaddr(hubAddress));
  await meshed(node, [hubPeerId]);
  window.ref = {
    /** Publishes `id`; resolves with the time just before handing it to gossipsub. */
    publish: async (id) => {
      const sent = now();
      await node.services.pubsub.publish(TOPIC, new TextEncoder().encode(id));
      return sent;
    },
    /** Resolves with the arrival time of `id`, recorded by the listener above. */
    waitFor: (id, timeout = 10_000) => {
      if (arrivals.has(id)) return Promise.resolve(arrivals.get(id));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(id);
          reject(new Error(`message ${id} did not arrive within ${timeout} ms`));
        }, timeout);
        waiters.set(id, (arrived) => {
          clearTimeout(timer);
          waiters.delete(id);
          resolve(arrived);
        });
      });
    },
    stop: () => node.stop(),
  };
  return node.peerId.toString();
};
