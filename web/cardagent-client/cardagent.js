// @cardagent/client: the browser client of cardagent, the desktop smartcard
// agent. A dependency-free ES module for sign-in pages.
//
//   import { connect } from "./cardagent.js";
//   const agent = await connect();                 // finds the agent on 127.0.0.1:43800-43809
//   const token = await agent.authenticate(challenge); // the agent asks for the PIN itself
//   // POST {token, challenge} to your server, which verifies it (agent/token).
//
// Discovery: a CORS GET of http://127.0.0.1:PORT/cardagent/v1/info on the
// ports of the range in order, one at a time (each with a short timeout),
// stopping at the first agent that answers for this page: normally one
// request, so the page's console stays clean. A port that refuses the page
// is skipped: an agent that does not allow this origin (HTTP 403 without
// CORS headers, which a browser reports as a failed fetch), or another OS
// user's agent (it closes the connection unanswered, like a closed port).
// Then the
// WebSocket ws://127.0.0.1:PORT/cardagent/v1/ws and a `hello`, which must
// name this page's origin and protocol; an agent that fails this is not the
// page's, and the scan goes on from the next port. Requests are matched to
// their replies by id (docs/protocol.md). Errors are CardAgentError values
// with a stable `code` (the protocol's codes plus the client's own:
// agent_not_found, local_network_denied, not_allowed, disconnected,
// timeout, aborted, unsupported_protocol) and, for wrong_pin, `triesLeft`. Card and reader
// events are dispatched as events (EventTarget, or on()). A dropped
// connection is re-established with backoff until close() is called.
//
// The PIN never goes through this module: there is no API to send one.

/** The protocol version this client speaks. */
export const PROTOCOL = 1;
/** The agent's default port range: 43800..43809. */
export const DEFAULT_PORTS = Object.freeze(Array.from({ length: 10 }, (_, i) => 43800 + i));
/** Token formats authenticate can ask for: cardagent's (the default) and Web eID's. */
export const TOKEN_FORMATS = Object.freeze(["cardagent-auth-token/1", "web-eid:1.0"]);
/** Paths of the agent's loopback API. */
export const INFO_PATH = "/cardagent/v1/info";

/** The longest card id the agent takes in a request's "card" field. */
export const MAX_CARD_ID = 128;

/**
 * withCard adds opts.card, when given, to req as its "card" field: the id
 * status reports for a card (a string of 1 to 128 printable ASCII characters).
 */
function withCard(req, opts) {
  if (opts?.card === undefined) return req;
  const id = opts.card;
  if (typeof id !== "string" || id === "" || id.length > MAX_CARD_ID || !/^[\x20-\x7e]+$/.test(id)) {
    throw new CardAgentError(ErrorCodes.BAD_REQUEST, `card must be a card's id from status (1 to ${MAX_CARD_ID} printable ASCII characters)`);
  }
  req.card = id;
  return req;
}
export const WS_PATH = "/cardagent/v1/ws";

/**
 * Error codes. Those of the agent (docs/protocol.md) are passed on as they
 * come; the rest are the client's own.
 */
export const ErrorCodes = Object.freeze({
  // The agent's.
  USER_CANCELLED: "user_cancelled",
  TIMEOUT: "timeout",
  PIN_BLOCKED: "pin_blocked",
  WRONG_PIN: "wrong_pin",
  PIN_FORMAT: "pin_format",
  NO_CARD: "no_card",
  CARD_REMOVED: "card_removed",
  BUSY: "busy",
  RATE_LIMITED: "rate_limited",
  NOT_ALLOWED: "not_allowed",
  BAD_REQUEST: "bad_request",
  UNSUPPORTED_CARD: "unsupported_card",
  NO_CERTIFICATE: "no_certificate",
  PROMPT_UNAVAILABLE: "prompt_unavailable",
  SERVICE_UNAVAILABLE: "service_unavailable",
  CARD_ERROR: "card_error",
  INTERNAL_ERROR: "internal_error",
  CARD_NOT_FOUND: "card_not_found", // the card named with opts.card is not inserted
  CARD_AMBIGUOUS: "card_ambiguous", // several cards are inserted: name one with opts.card
  // The client's.
  AGENT_NOT_FOUND: "agent_not_found", // no agent answered on the port range
  LOCAL_NETWORK_DENIED: "local_network_denied", // the browser's Local Network Access kept the page from loopback
  DISCONNECTED: "disconnected", // the connection closed before the reply came
  ABORTED: "aborted", // the caller's AbortSignal fired
  UNSUPPORTED_PROTOCOL: "unsupported_protocol", // the agent speaks another protocol version
});

// RESOLVED marks options resolveOptions has already checked.
const RESOLVED = Symbol("resolved");

const DEFAULTS = Object.freeze({
  host: "127.0.0.1",
  probeTimeout: 1000, // per port, ms
  connectTimeout: 5000, // WebSocket open + hello, ms
  requestTimeout: 30000, // status, certificates, ms
  // authenticate includes the PIN prompt; the agent ends it after 3 minutes
  // (limits.request_timeout), so its own timeout normally answers first.
  authenticateTimeout: 190000,
  reconnect: true,
  reconnectDelay: 250, // first retry, ms; doubles up to maxReconnectDelay
  maxReconnectDelay: 10000,
});

/** An error with a stable code, and triesLeft for wrong_pin. */
export class CardAgentError extends Error {
  /**
   * @param {string} code a stable code (ErrorCodes)
   * @param {string} [message]
   * @param {{triesLeft?: number, cause?: unknown, details?: object}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message || code, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "CardAgentError";
    this.code = code;
    if (Number.isInteger(extra.triesLeft)) this.triesLeft = extra.triesLeft;
    if (extra.details !== undefined) this.details = extra.details;
  }
}

/** An event of the client: `detail` carries its data. */
export class CardAgentEvent extends Event {
  constructor(type, detail) {
    super(type);
    this.detail = detail;
  }
}

/**
 * errorFromReply turns a reply's `error` member into a CardAgentError.
 * @param {{code?: string, message?: string, tries_left?: number}} e
 */
export function errorFromReply(e) {
  const code = typeof e?.code === "string" && e.code ? e.code : ErrorCodes.INTERNAL_ERROR;
  const message = typeof e?.message === "string" && e.message ? e.message : code.replaceAll("_", " ");
  return new CardAgentError(code, message, { triesLeft: e?.tries_left });
}

function resolveOptions(options = {}) {
  const o = { ...DEFAULTS, ...options };
  if (!Array.isArray(options.ports)) {
    const start = options.port ?? DEFAULT_PORTS[0];
    const count = options.portCount ?? DEFAULT_PORTS.length;
    o.ports = Array.from({ length: count }, (_, i) => start + i);
  }
  o.ports = o.ports.filter((p) => Number.isInteger(p) && p > 0 && p < 65536);
  if (!o.ports.length) throw new CardAgentError(ErrorCodes.BAD_REQUEST, "no valid port to probe");
  // The page's origin, which the agent's hello must name (none outside a browser).
  o.origin = options.origin ?? globalThis.location?.origin ?? "";
  if (o.origin === "null") o.origin = "";
  o.fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
  o.WebSocket = options.WebSocket ?? globalThis.WebSocket;
  if (typeof o.fetch !== "function") throw new CardAgentError(ErrorCodes.AGENT_NOT_FOUND, "this environment has no fetch()");
  if (typeof o.WebSocket !== "function") throw new CardAgentError(ErrorCodes.AGENT_NOT_FOUND, "this environment has no WebSocket");
  return o;
}

function hostPort(host, port) {
  return `${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
}

// probe asks one port for the agent's info (one CORS GET). It returns
// {port, info} or {port, refused | unsupported | failed}. A browser reports a
// refusal without CORS headers (a 403 from an agent that does not allow this
// page) as a failed fetch, like a closed port (or another user's agent, which
// closes the connection unanswered): refusedHere tells a 403 apart
// afterwards, only when no agent was found.
async function probe(o, port, parent) {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  parent.addEventListener("abort", stop, { once: true });
  const timer = setTimeout(stop, o.probeTimeout);
  const url = `http://${hostPort(o.host, port)}${INFO_PATH}`;
  try {
    let res;
    try {
      res = await o.fetch(url, { method: "GET", mode: "cors", credentials: "omit", cache: "no-store", signal: ctl.signal });
    } catch (err) {
      if (ctl.signal.aborted) return { port, failed: "timeout" };
      return { port, failed: String(err?.message ?? err), url };
    }
    if (res.status === 403) return { port, refused: true };
    if (!res.ok) return { port, failed: `HTTP ${res.status}` };
    let info;
    try {
      info = await res.json();
    } catch {
      return { port, failed: "not JSON" };
    }
    if (info?.name !== "cardagent" || !Number.isInteger(info?.protocol)) return { port, failed: "not cardagent" };
    if (info.protocol !== PROTOCOL) return { port, unsupported: info };
    return { port, info };
  } finally {
    clearTimeout(timer);
    parent.removeEventListener("abort", stop);
  }
}

// refusedHere asks a port whose CORS probe failed whether something answers
// at all: an opaque answer to a no-cors request means a program listens there
// and refused this page.
async function refusedHere(o, url, parent) {
  const ctl = new AbortController();
  const stop = () => ctl.abort();
  parent.addEventListener("abort", stop, { once: true });
  const timer = setTimeout(stop, o.probeTimeout);
  try {
    const opaque = await o.fetch(url, { method: "GET", mode: "no-cors", credentials: "omit", cache: "no-store", signal: ctl.signal });
    return Boolean(opaque && (opaque.type === "opaque" || opaque.status === 403));
  } catch {
    return false; // nothing listening
  } finally {
    clearTimeout(timer);
    parent.removeEventListener("abort", stop);
  }
}

// scan probes o.ports in order from index `from`, one at a time, and stops at
// the first agent that answers for this page with this client's protocol:
// the normal case costs one request, and the page's console stays clean (a
// browser logs every refused connection). It resolves with {port, info,
// index}, or rejects with agent_not_found, not_allowed or
// unsupported_protocol when no port from `from` on has such an agent.
async function scan(o, from = 0) {
  const all = new AbortController();
  const onAbort = () => all.abort();
  o.signal?.addEventListener?.("abort", onAbort, { once: true });
  if (o.signal?.aborted) throw new CardAgentError(ErrorCodes.ABORTED, "discovery aborted");
  let refused = 0;
  let unsupported = null;
  const failed = [];
  try {
    for (let i = from; i < o.ports.length; i++) {
      const r = await probe(o, o.ports[i], all.signal);
      if (o.signal?.aborted) throw new CardAgentError(ErrorCodes.ABORTED, "discovery aborted");
      if (r.info) return { port: r.port, info: r.info, index: i };
      if (r.refused) refused++;
      if (r.unsupported) unsupported = r.unsupported;
      if (r.url) failed.push(r.url);
    }
    // Nothing for this page. Did the browser keep it from loopback (Local
    // Network Access: the user has not allowed this site, and IT's policy
    // does not), was it refused, or is nothing there? Only now (the failure
    // case) is the browser asked, and the failed ports asked again.
    if (!refused && !unsupported && failed.length) {
      // Only "denied" says it: "prompt" is also what a page that is itself
      // local (where the permission does not apply) reads.
      const lna = await localNetworkAccess(o);
      if (lna === "denied") {
        throw new CardAgentError(ErrorCodes.LOCAL_NETWORK_DENIED,
          `the browser does not let this site reach local programs (local network access: ${lna}); allow it in the site's settings, or ask IT to allow this site`,
          { details: { localNetworkAccess: lna } });
      }
    }
    if (!refused && !unsupported && o.probeRefusals !== false) {
      for (const url of failed) {
        if (await refusedHere(o, url, all.signal)) refused++;
        if (o.signal?.aborted) throw new CardAgentError(ErrorCodes.ABORTED, "discovery aborted");
      }
    }
  } finally {
    all.abort();
    o.signal?.removeEventListener?.("abort", onAbort);
  }
  const range = `${o.host} ports ${o.ports[from]}-${o.ports[o.ports.length - 1]}`;
  if (unsupported) {
    throw new CardAgentError(ErrorCodes.UNSUPPORTED_PROTOCOL,
      `cardagent ${unsupported.version ?? ""} speaks protocol ${unsupported.protocol}; this page speaks ${PROTOCOL}`,
      { details: { info: unsupported } });
  }
  if (refused) {
    throw new CardAgentError(ErrorCodes.NOT_ALLOWED,
      `a program on ${range} refused this page: cardagent does not allow this site`);
  }
  throw new CardAgentError(ErrorCodes.AGENT_NOT_FOUND, `cardagent is not running (nothing answered on ${range})`);
}

// localNetworkAccess asks the browser whether this page may reach local
// addresses (Chrome's Local Network Access permission): "granted", "prompt",
// "denied", or "" where the browser has no such permission.
async function localNetworkAccess(o) {
  const perms = o.permissions ?? globalThis.navigator?.permissions;
  if (typeof perms?.query !== "function") return "";
  try {
    const st = await perms.query({ name: "local-network-access" });
    return typeof st?.state === "string" ? st.state : "";
  } catch {
    return ""; // a browser without this permission name
  }
}

/**
 * discover finds the agent: the first port of the range, in order, whose
 * info endpoint answers as cardagent with this client's protocol. Ports are
 * probed one at a time and probing stops there.
 * @param {object} [options] ports | port+portCount, host, probeTimeout, fetch, signal
 * @returns {Promise<{port: number, info: {name: string, version: string, protocol: number}}>}
 */
export async function discover(options = {}) {
  const o = options[RESOLVED] ? options : resolveOptions(options);
  const { port, info } = await scan(o);
  return { port, info };
}

/**
 * CardAgent is a connection to the agent. Create it with connect() (or
 * `new CardAgent(options)` then `await agent.connect()`).
 *
 * Events (addEventListener gets a CardAgentEvent with .detail; on(name, fn)
 * calls fn(detail, event)):
 *   card_reading, card_inserted, card_changed, card_removed, reader_added,
 *   reader_removed, service_down, service_up
 *                   the agent's pushed events; detail {event, reader, card, time}
 *   session_ended   the card that signed in was removed (IT's removal
 *                   policy); detail {event, reader, session, time}
 *   event           every pushed event, whatever its name
 *   connected       the socket is (re)connected; detail {port, hello}
 *   disconnected    the socket dropped; detail {code, reason, reconnecting}
 *   close           the client is closed for good (close(), or reconnect off)
 */
export class CardAgent extends EventTarget {
  #o;
  #ws = null;
  #port = 0;
  #info = null;
  #hello = null;
  #nextId = 1;
  #pending = new Map(); // id -> {resolve, reject, timer, cleanup}
  #connecting = null; // Promise of the running connection attempt
  #closed = false;
  #retryTimer = 0;
  #retryDelay = 0;

  /** @param {object} [options] see README.md */
  constructor(options = {}) {
    super();
    this.#o = { ...resolveOptions(options), [RESOLVED]: true };
    this.#retryDelay = this.#o.reconnectDelay;
  }

  /** Connects (discovery, WebSocket, hello) and resolves with a connected CardAgent. */
  static async connect(options = {}) {
    const a = new CardAgent(options);
    await a.connect();
    return a;
  }

  /** The port of the agent (0 before the first connection). */
  get port() {
    return this.#port;
  }

  /** The agent's info ({name, version, protocol}) from discovery. */
  get info() {
    return this.#info;
  }

  /** The agent's hello reply ({name, version, protocol, features, origin}). */
  get hello() {
    return this.#hello;
  }

  /** Whether the WebSocket is open and the hello was answered. */
  get connected() {
    return this.#ws !== null && this.#hello !== null;
  }

  /** Connects if not connected; resolves with this. */
  async connect() {
    if (this.#closed) throw new CardAgentError(ErrorCodes.DISCONNECTED, "the client was closed");
    if (this.connected) return this;
    if (!this.#connecting) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = 0;
      this.#connecting = this.#open().finally(() => {
        this.#connecting = null;
      });
    }
    await this.#connecting;
    return this;
  }

  // #open connects to the first agent of the range that is this page's: its
  // info answers, its WebSocket opens and its hello is cardagent's, with this
  // client's protocol and this page's origin. An agent that answers but fails
  // the handshake (another user's, or one that does not serve this origin)
  // is not this page's: the scan goes on from the next port.
  async #open() {
    let from = 0;
    let lastErr = null;
    for (;;) {
      let found;
      try {
        found = await scan(this.#o, from);
      } catch (err) {
        if (lastErr && err.code === ErrorCodes.AGENT_NOT_FOUND) throw lastErr;
        throw err;
      }
      try {
        await this.#handshake(found.port, found.info);
        return;
      } catch (err) {
        if (this.#closed || err.code === ErrorCodes.ABORTED || err.code === ErrorCodes.DISCONNECTED) throw err;
        lastErr = err;
        from = found.index + 1;
        if (from >= this.#o.ports.length) throw err;
      }
    }
  }

  async #handshake(port, info) {
    const url = `ws://${hostPort(this.#o.host, port)}${WS_PATH}`;
    const ws = await this.#openSocket(url);
    if (this.#closed) {
      ws.close(1000, "client closed");
      throw new CardAgentError(ErrorCodes.DISCONNECTED, "the client was closed");
    }
    this.#ws = ws;
    this.#port = port;
    this.#info = info;
    ws.onmessage = (e) => this.#onMessage(e.data);
    ws.onclose = (e) => this.#onClose(ws, e?.code ?? 1006, e?.reason ?? "");
    ws.onerror = () => {}; // a close follows
    let hello;
    try {
      hello = await this.#request({ type: "hello", protocol: PROTOCOL }, this.#o.connectTimeout, undefined, true);
    } catch (err) {
      this.#dropSocket(ws);
      throw err;
    }
    if (hello?.name !== "cardagent") {
      this.#dropSocket(ws);
      throw new CardAgentError(ErrorCodes.AGENT_NOT_FOUND, `the program on port ${port} is not cardagent`);
    }
    if (hello.protocol !== PROTOCOL) {
      this.#dropSocket(ws);
      throw new CardAgentError(ErrorCodes.UNSUPPORTED_PROTOCOL, `the agent speaks protocol ${hello.protocol}; this page speaks ${PROTOCOL}`);
    }
    if (this.#o.origin && hello.origin !== this.#o.origin) {
      this.#dropSocket(ws);
      throw new CardAgentError(ErrorCodes.NOT_ALLOWED, `the agent on port ${port} serves ${hello.origin}, not this page (${this.#o.origin})`);
    }
    this.#hello = hello;
    this.#retryDelay = this.#o.reconnectDelay;
    this.#emit("connected", { port, hello });
  }

  #dropSocket(ws) {
    ws.onclose = ws.onmessage = ws.onerror = null;
    try {
      ws.close(1000, "client closed");
    } catch {
      // already closed
    }
    if (this.#ws === ws) this.#ws = null;
    this.#rejectAll(new CardAgentError(ErrorCodes.DISCONNECTED, "the connection to cardagent closed"));
  }

  #openSocket(url) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this.#o.WebSocket(url);
      } catch (err) {
        reject(new CardAgentError(ErrorCodes.AGENT_NOT_FOUND, `cannot open ${url}`, { cause: err }));
        return;
      }
      const timer = setTimeout(() => {
        fail(ErrorCodes.TIMEOUT, `no answer from ${url}`);
        try {
          ws.close();
        } catch {
          // ignore
        }
      }, this.#o.connectTimeout);
      const fail = (code, msg) => {
        clearTimeout(timer);
        ws.onopen = ws.onclose = ws.onerror = null;
        reject(new CardAgentError(code, msg));
      };
      ws.onopen = () => {
        clearTimeout(timer);
        ws.onopen = ws.onclose = ws.onerror = null;
        resolve(ws);
      };
      // A refused handshake (403) shows as an error then a close (1006).
      ws.onerror = () => fail(ErrorCodes.NOT_ALLOWED, `cardagent refused the connection to ${url}`);
      ws.onclose = () => fail(ErrorCodes.NOT_ALLOWED, `cardagent refused the connection to ${url}`);
    });
  }

  #onMessage(data) {
    let m;
    try {
      m = JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      return; // the agent only sends JSON; ignore anything else
    }
    if (m === null || typeof m !== "object") return;
    if (m.type === "event" && m.id === undefined) {
      const name = typeof m.event === "string" ? m.event : "unknown";
      const { type: _t, ...detail } = m;
      this.#emit(name, detail);
      this.#emit("event", detail);
      return;
    }
    const p = this.#pending.get(m.id);
    if (!p) return; // a late reply to a request that timed out
    this.#pending.delete(m.id);
    p.cleanup();
    if (m.error) {
      p.reject(errorFromReply(m.error));
      return;
    }
    // The body is the reply without its id, and without its type when that
    // only echoes the request's (a result may have a "type" of its own).
    const { id: _i, ...body } = m;
    if (body.type === p.type) delete body.type;
    p.resolve(body);
  }

  #onClose(ws, code, reason) {
    if (this.#ws !== ws) return;
    const wasConnected = this.#hello !== null;
    this.#ws = null;
    this.#hello = null;
    this.#rejectAll(new CardAgentError(ErrorCodes.DISCONNECTED, `the connection to cardagent closed (${code}${reason ? ` ${reason}` : ""})`));
    if (!wasConnected) return; // closed during connect(): connect() reports it
    const reconnecting = !this.#closed && this.#o.reconnect !== false;
    this.#emit("disconnected", { code, reason, reconnecting });
    if (reconnecting) {
      this.#scheduleReconnect();
    } else if (!this.#closed) {
      this.#closed = true;
      this.#emit("close", { code, reason });
    }
  }

  #scheduleReconnect() {
    if (this.#closed || this.#retryTimer || this.#connecting) return;
    const delay = this.#retryDelay;
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.#o.maxReconnectDelay);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = 0;
      this.connect().catch(() => this.#scheduleReconnect());
    }, delay);
  }

  #rejectAll(err) {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) {
      p.cleanup();
      p.reject(err);
    }
  }

  #emit(name, detail) {
    this.dispatchEvent(new CardAgentEvent(name, detail));
  }

  // request sends msg with a fresh id and resolves with the reply's body.
  #request(msg, timeout, signal, duringConnect = false) {
    return new Promise((resolve, reject) => {
      const ws = this.#ws;
      if (!ws || (!duringConnect && !this.#hello)) {
        reject(new CardAgentError(ErrorCodes.DISCONNECTED, "not connected to cardagent"));
        return;
      }
      if (signal?.aborted) {
        reject(new CardAgentError(ErrorCodes.ABORTED, `${msg.type} aborted`));
        return;
      }
      const id = this.#nextId++;
      const onAbort = () => {
        if (this.#pending.delete(id)) {
          cleanup();
          reject(new CardAgentError(ErrorCodes.ABORTED, `${msg.type} aborted`));
        }
      };
      const timer = setTimeout(() => {
        if (this.#pending.delete(id)) {
          cleanup();
          reject(new CardAgentError(ErrorCodes.TIMEOUT, `cardagent did not answer ${msg.type} within ${timeout} ms`));
        }
      }, timeout);
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener?.("abort", onAbort);
      };
      signal?.addEventListener?.("abort", onAbort, { once: true });
      this.#pending.set(id, { resolve, reject, cleanup, type: msg.type });
      try {
        ws.send(JSON.stringify({ id, ...msg }));
      } catch (err) {
        this.#pending.delete(id);
        cleanup();
        reject(new CardAgentError(ErrorCodes.DISCONNECTED, "sending to cardagent failed", { cause: err }));
      }
    });
  }

  async #call(msg, timeout, opts = {}) {
    await this.connect();
    return this.#request(msg, opts.timeout ?? timeout, opts.signal);
  }

  /**
   * status reports the readers and cards the agent sees (no PIN, no card I/O).
   * @returns {Promise<{service: string, expiry_warning_days: number, readers: Array<{name: string, card: object|null}>}>}
   */
  status(opts) {
    return this.#call({ type: "status" }, this.#o.requestTimeout, opts);
  }

  /**
   * certificates returns the certificates of the card sign-in would use:
   * the card opts.card names (its id in status, card.id), else the one
   * usable card. With several cards inserted and no opts.card it rejects
   * with card_ambiguous (a read-only request never shows a choice).
   * @param {{timeout?: number, signal?: AbortSignal, card?: string}} [opts]
   * @returns {Promise<{reader: string, card_id?: string, card_type: string, holder?: object, certificates: object[], authentication_certificate: string}>}
   */
  async certificates(opts) {
    return this.#call(withCard({ type: "certificates" }, opts), this.#o.requestTimeout, opts);
  }

  /**
   * authenticate asks the agent to sign the server's challenge (base64url of
   * at least 32 random bytes) for this page's origin. The agent shows its
   * own PIN prompt. Resolves with the token ({format, algorithm,
   * certificate, chain?, origin, signature}) to send to the server. With
   * opts.format "web-eid:1.0" the token is Web eID's ({unverifiedCertificate,
   * algorithm, signature, format, appVersion}) for a server that verifies Web
   * eID tokens; the challenge is then its challenge nonce. With opts.card
   * (a card's id from status, card.id) the agent uses that card without
   * asking which (card_not_found when it is not inserted); without it and
   * several cards inserted, the agent asks the user to choose.
   * @param {string} challenge
   * @param {{timeout?: number, signal?: AbortSignal, format?: string, card?: string}} [opts]
   */
  async authenticate(challenge, opts) {
    if (typeof challenge !== "string" || challenge === "") {
      throw new CardAgentError(ErrorCodes.BAD_REQUEST, "authenticate needs the challenge string the server issued");
    }
    const req = { type: "authenticate", challenge };
    if (opts?.format !== undefined) {
      if (!TOKEN_FORMATS.includes(opts.format)) {
        throw new CardAgentError(ErrorCodes.BAD_REQUEST, `token format must be one of ${TOKEN_FORMATS.join(", ")}`);
      }
      req.format = opts.format;
    }
    withCard(req, opts);
    const reply = await this.#call(req, this.#o.authenticateTimeout, opts);
    if (!reply.token || typeof reply.token !== "object") {
      throw new CardAgentError(ErrorCodes.INTERNAL_ERROR, "the agent's reply carries no token");
    }
    return reply.token;
  }

  /**
   * on calls fn(detail, event) for every event named name; it returns a
   * function that removes the listener.
   */
  on(name, fn) {
    const l = (e) => fn(e.detail, e);
    this.addEventListener(name, l);
    return () => this.removeEventListener(name, l);
  }

  /** close ends the connection for good (no reconnect); pending requests fail with disconnected. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
    const ws = this.#ws;
    this.#ws = null;
    this.#hello = null;
    if (ws) this.#dropSocket(ws);
    this.#rejectAll(new CardAgentError(ErrorCodes.DISCONNECTED, "the client was closed"));
    this.#emit("close", { code: 1000, reason: "client closed" });
  }
}

/**
 * connect finds the agent and resolves with a connected CardAgent.
 * @param {object} [options] see README.md
 */
export function connect(options) {
  return CardAgent.connect(options);
}

export default { connect, discover, CardAgent, CardAgentError, CardAgentEvent, ErrorCodes, PROTOCOL, DEFAULT_PORTS, TOKEN_FORMATS };
