// A Chromium driven through its DevTools pipe with the Target, Page and Runtime domains only.
// Playwright keeps the Network domain on in every page, and Chromium then reports each
// WebSocket frame with its payload, base64-encoded, to the driver: one transfer-only run of
// bench/transfer.mjs under Playwright carried 11,073 frame events and 117 MB of protocol
// text, CPU spent in the renderer, the browser process and Node on a machine whose transfer
// is CPU-bound. No page of a user's has DevTools attached, so the benchmarks that move bytes
// over WebSocket drive their pages with this instead.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_ARGS, startEndra } from '../e2e/browser.mjs';

/** A page of a bare Chromium: `evaluate(fn, arg)` as Playwright's (JSON values only). */
export class BarePage {
  #send;
  #session;

  constructor(send, session) {
    this.#send = send;
    this.#session = session;
  }

  /**
   * Runs `fn(arg)` in the page and resolves to its (awaited) result; rejects with the
   * page's exception.
   * @template T
   * @param {(arg: any) => T | Promise<T>} fn
   * @param {unknown} [arg]
   * @returns {Promise<T>}
   */
  async evaluate(fn, arg) {
    const expression = `(${fn.toString()})(${arg === undefined ? '' : JSON.stringify(arg)})`;
    const { result, exceptionDetails } = await this.#send('Runtime.evaluate', {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }, this.#session);
    if (exceptionDetails) {
      throw new Error(exceptionDetails.exception?.description ?? exceptionDetails.text);
    }
    return result.value;
  }
}

/**
 * Resolves once `check` is true in `page` (checked every 20 ms; a check that throws, as one
 * in a document being replaced does, counts as false); rejects after 30 s naming `label`.
 */
async function until(page, check, label) {
  const deadline = Date.now() + 30_000;
  while (!(await page.evaluate(check).catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not ${label} after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A bare Chromium with a profile of its own in a fresh directory: `{ newPage, endraPage, close }`. */
export async function launchBare() {
  const dir = await mkdtemp(join(tmpdir(), 'endra-bench-'));
  const child = spawn(process.env.CHROMIUM ?? '/usr/bin/chromium', [
    ...CHROMIUM_ARGS,
    `--user-data-dir=${dir}`,
    '--remote-debugging-pipe',
    'about:blank',
  ], { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
  const [toBrowser, fromBrowser] = [child.stdio[3], child.stdio[4]];
  const calls = new Map();
  let nextId = 0;
  let pending = Buffer.alloc(0);
  // A browser that died fails every call waiting on it (below), not the process.
  toBrowser.on('error', () => {});
  const exited = once(child, 'exit');
  void exited.then(() => {
    for (const call of calls.values()) call.reject(new Error(`chromium exited during ${call.method}`));
    calls.clear();
  });
  // Messages are JSON, each ended by a NUL byte.
  fromBrowser.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (let end = pending.indexOf(0); end >= 0; end = pending.indexOf(0)) {
      const message = JSON.parse(pending.subarray(0, end).toString());
      pending = pending.subarray(end + 1);
      if (message.id !== undefined) {
        const call = calls.get(message.id);
        calls.delete(message.id);
        if (message.error) call?.reject(new Error(`${call.method}: ${message.error.message}`));
        else call?.resolve(message.result);
      } else if (message.method === 'Runtime.exceptionThrown') {
        const details = message.params.exceptionDetails;
        console.error('page error:', details.exception?.description ?? details.text);
      }
    }
  });
  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const id = ++nextId;
    calls.set(id, { resolve, reject, method });
    toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
  });

  /** A new page at `url`, once its document has loaded. */
  const newPage = async (url) => {
    const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    await send('Runtime.enable', {}, sessionId);
    await send('Page.navigate', { url }, sessionId);
    const page = new BarePage(send, sessionId);
    await until(page, () => document.readyState === 'complete' && location.href !== 'about:blank', `${url} loaded`);
    return page;
  };

  return {
    newPage,
    /** As `endraPage` of e2e/browser.mjs: a demo page with `window.endra` started. */
    endraPage: async ({ url, relays, store, options = {} }) => {
      const page = await newPage(url);
      await until(page, () => document.body?.dataset.ready === 'true', `${url} ready`);
      await page.evaluate(startEndra, [relays, store, options]);
      return page;
    },
    close: async () => {
      if (child.exitCode === null) {
        await send('Browser.close').catch(() => {});
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
