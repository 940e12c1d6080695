// The reference of the transfer bench: a plain WebSocket relay in this Node process — no
// libp2p, no encryption, no verification — that forwards every binary message of one page to
// the other. A minimal RFC 6455 server (handshake, masked client frames, unmasked server
// frames; no extensions), so the bench needs no dependency.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Frames `payload` as one unmasked binary (or close) frame. */
function frame(payload, opcode = 0x2) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, len])
    : len < 65_536 ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 0xff])
      : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  return Buffer.concat([head, payload]);
}

/** Reads the client's frames from `socket`, calling `onMessage(payload)` for each message. */
function reader(socket, onMessage) {
  let buffer = Buffer.alloc(0);
  /** @type {Buffer[]} */
  let fragments = [];
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      if (buffer.length < 2) return;
      const fin = (buffer[0] & 0x80) !== 0;
      const opcode = buffer[0] & 0x0f;
      let len = buffer[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (buffer.length < 4) return;
        len = buffer.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (buffer.length < 10) return;
        len = Number(buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (buffer[1] & 0x80) !== 0;
      const maskAt = offset;
      if (masked) offset += 4;
      if (buffer.length < offset + len) return;
      const payload = Buffer.from(buffer.subarray(offset, offset + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buffer[maskAt + (i % 4)];
      buffer = buffer.subarray(offset + len);
      if (opcode === 0x8) {
        socket.end(frame(Buffer.alloc(0), 0x8));
        return;
      }
      if (opcode === 0x9) {
        socket.write(frame(payload, 0xa));
        continue;
      }
      if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) {
        fragments.push(payload);
        if (fin) {
          onMessage(Buffer.concat(fragments));
          fragments = [];
        }
      }
    }
  });
}

/**
 * Starts the reference relay on 127.0.0.1: the first two pages to connect are paired, and
 * each binary message of one is sent on to the other. Resolves to `{ url, close }`.
 */
export function startWsRelay() {
  const sockets = [];
  const server = createServer((_req, res) => res.writeHead(426).end());
  server.on('upgrade', (req, socket) => {
    const key = req.headers['sec-websocket-key'];
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.setNoDelay(true);
    // A page that closes resets its connection: nothing to report.
    socket.on('error', () => socket.destroy());
    const me = sockets.length;
    sockets.push(socket);
    reader(socket, (payload) => {
      const other = sockets[1 - me];
      if (other) other.write(frame(payload));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        url: `ws://127.0.0.1:${port}`,
        close: () => new Promise((done) => {
          for (const socket of sockets) socket.destroy();
          server.close(() => done());
        }),
      });
    });
  });
}
