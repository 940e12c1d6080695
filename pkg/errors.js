// @ts-check
// Errors: every failure of the library is an `EndraError` with a stable `code`.

/** Every failure of the library: an `Error` with a stable `code`. */
export class EndraError extends Error {
  /**
   * @param {string} message
   * @param {string} code
   * @param {ErrorOptions} [options]
   */
  constructor(message, code, options) {
    super(message, options);
    this.name = 'EndraError';
    /** What went wrong, stable across versions. */
    this.code = code;
  }
}

/**
 * Any thrown value as an `EndraError` (the bindings throw plain `Error`s with a `code`).
 * @param {unknown} error
 * @returns {EndraError}
 */
export function wrap(error) {
  if (error instanceof EndraError) return error;
  const e = /** @type {{ code?: unknown, message?: unknown } | null | undefined} */ (error);
  const code = typeof e?.code === 'string' ? e.code : 'INTERNAL';
  const message = typeof e?.message === 'string' ? e.message : String(error);
  return new EndraError(message, code, { cause: error });
}

/**
 * Messages from the bindings, each `error` (a plain `Error` with a `code`) as an `EndraError`.
 * @template {{ error?: unknown }} M
 * @param {M[]} messages
 * @returns {M[]}
 */
export function readable(messages) {
  for (const message of messages) {
    if (message.error !== undefined) message.error = wrap(message.error);
  }
  return messages;
}

/**
 * Runs `fn`, turning whatever it throws or rejects with into an `EndraError`.
 * @template T
 * @param {() => T | Promise<T>} fn
 * @returns {Promise<T>}
 */
export async function call(fn) {
  try {
    return await fn();
  } catch (error) {
    throw wrap(error);
  }
}

/**
 * `value`, checked to be bytes.
 * @param {unknown} value
 * @param {string} what
 * @returns {Uint8Array}
 */
export function bytes(value, what) {
  if (!(value instanceof Uint8Array)) {
    throw new EndraError(`${what} must be a Uint8Array`, 'INVALID_ARGUMENT');
  }
  return value;
}

/**
 * Rejects with `ABORTED` if `signal` fired.
 * @param {AbortSignal | undefined} signal
 * @param {string} [what]
 */
export function throwIfAborted(signal, what = 'aborted') {
  if (signal?.aborted) throw new EndraError(what, 'ABORTED', { cause: signal.reason });
}

/**
 * An options object or nothing, refusing the positional `AbortSignal` of older versions.
 * @template {object} T
 * @param {T | undefined} options
 * @param {string} where
 * @returns {Partial<T>}
 */
export function options(options, where) {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || (typeof AbortSignal === 'function' && options instanceof AbortSignal)) {
    throw new EndraError(`${where} takes an options object (pass a signal as { signal })`, 'INVALID_ARGUMENT');
  }
  return options;
}

/** The token that lets the package's own modules construct its classes. */
export const INTERNAL = Symbol('endra.internal');

/**
 * Refuses `new` from outside the package.
 * @param {unknown} token
 * @param {string} how
 */
export function internalOnly(token, how) {
  if (token !== INTERNAL) throw new TypeError(`not constructible: ${how}`);
}
