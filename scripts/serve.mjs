// A small static server for the demo page and the npm package, on 127.0.0.1 only.
// `node scripts/serve.mjs [port]` (or PORT=…); port 0 picks a free one.
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.ts': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Starts `endra-relay` (built by `cargo build -p endra-relay`) with its key, certificate and
 * mailbox in `dir`, listening on WebSocket and WebRTC-Direct `ports` of 127.0.0.1 (free ones
 * by default). Resolves to `{ addresses, ws, webrtc, peerId, ports, waitFor, kill, stop }`
 * once both listeners are up; `startRelay({ dir, ports })` with the same `dir` and `ports`
 * restarts it as the same peer on the same addresses. `mailbox: false` runs it without a
 * mailbox; `peers` are other relays to connect to.
 */
export async function startRelay({
  dir,
  binary = join(root, 'target/debug/endra-relay'),
  mailbox = true,
  peers = [],
  ports = { ws: 0, webrtc: 0 },
} = {}) {
  await mkdir(dir, { recursive: true });
  const listeners = [`/ip4/127.0.0.1/tcp/${ports.ws}/ws`, `/ip4/127.0.0.1/udp/${ports.webrtc}/webrtc-direct`];
  const child = spawn(binary, [
    ...listeners.flatMap((address) => ['--listen', address]),
    '--key-file', join(dir, 'relay.key'),
    '--webrtc-cert', join(dir, 'relay-webrtc.pem'),
    ...(mailbox ? ['--mailbox', join(dir, 'mailbox.redb')] : ['--no-mailbox']),
    ...peers.flatMap((address) => ['--peer', address]),
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  const seen = [];
  const waiters = new Set();
  const addresses = await new Promise((resolveAddresses, reject) => {
    const lines = createInterface({ input: child.stdout });
    const found = [];
    const timer = setTimeout(() => reject(new Error(`endra-relay printed ${found.length} of ${listeners.length} addresses in 20 s`)), 20_000);
    child.once('exit', (code) => reject(new Error(`endra-relay exited with ${code}`)));
    lines.on('line', (line) => {
      if (process.env.ENDRA_RELAY_LOG) console.error(line);
      seen.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.delete(waiter);
          waiter.resolve(line);
        }
      }
      const match = /event=listening address=(\S+)/.exec(line);
      if (match) {
        found.push(match[1]);
        if (found.length === listeners.length) {
          clearTimeout(timer);
          resolveAddresses(found);
        }
      }
    });
  });
  const ws = addresses.find((a) => a.includes('/ws/'));
  const webrtc = addresses.find((a) => a.includes('/webrtc-direct/'));
  /**
   * Sends `signal` and resolves once the relay has exited. A relay that has not exited 10 s
   * after a gentler signal is killed (and the stop rejects), so a stuck shutdown fails a test
   * instead of hanging it.
   */
  const kill = (signal) => new Promise((done, fail) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    const timer = signal === 'SIGKILL' ? null : setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`endra-relay did not exit within 10 s of ${signal}`));
    }, 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      done();
    });
    child.kill(signal);
  });
  return {
    addresses,
    ws,
    webrtc,
    peerId: addresses[0].split('/p2p/')[1],
    ports: { ws: Number(/\/tcp\/(\d+)/.exec(ws)[1]), webrtc: Number(/\/udp\/(\d+)/.exec(webrtc)[1]) },
    /** Resolves with the first line of the relay's output matching `pattern`. */
    waitFor: (pattern, timeout = 30_000) => new Promise((resolveLine, reject) => {
      const line = seen.find((l) => pattern.test(l));
      if (line) return resolveLine(line);
      const timer = setTimeout(() => {
        if (waiters.delete(waiter)) reject(new Error(`relay never printed ${pattern}`));
      }, timeout);
      const waiter = {
        pattern,
        resolve: (found) => {
          clearTimeout(timer);
          resolveLine(found);
        },
      };
      waiters.add(waiter);
    }),
    /** Kills it with `signal` (SIGKILL by default: no shutdown code runs). */
    kill: (signal = 'SIGKILL') => kill(signal),
    /** Stops it gracefully (SIGINT, as Ctrl-C). */
    stop: () => kill('SIGINT'),
  };
}

/** Starts the server; resolves to `{ url, port, close }`. `relays` go to `/www/config.json`. */
export function startServer({ port = 8080, relays = [] } = {}) {
  const server = createServer(async (req, res) => {
    try {
      let path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
      if (path === '/www/config.json') {
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify({ relays }));
        return;
      }
      if (path === '/') path = '/www/';
      let file = join(root, path);
      if (!file.startsWith(root)) throw Object.assign(new Error('outside root'), { code: 'ENOENT' });
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const actual = server.address().port;
      resolvePromise({
        port: actual,
        url: `http://127.0.0.1:${actual}/www/`,
        close: () => new Promise((done) => server.close(done)),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
  const relay = await startRelay({ dir: join(root, '.cache/relay') });
  // The demo uses the WebSocket address only: a browser's uploads over WebRTC-Direct can
  // stall (see the README's relay section).
  const { url } = await startServer({ port, relays: [relay.ws] });
  console.log(`Endra relay: ${relay.addresses.join(' ')}`);
  console.log(`Endra demo: ${url}`);
  const stop = async () => { await relay.stop(); process.exit(0); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
