// Unit tests of the JS client with node's test runner (node --test): a fake
// fetch and a fake WebSocket are injected through the options, so nothing
// touches the network.
import test from "node:test";
import assert from "node:assert/strict";

import defaultExport, { CardAgent, CardAgentError, DEFAULT_PORTS, ErrorCodes, PROTOCOL, connect, discover, errorFromReply } from "./cardagent.js";

const INFO = { name: "cardagent", version: "0.4.0", protocol: PROTOCOL };
const TOKEN = { format: "cardagent-auth-v1", algorithm: "RS256", certificate: "MIIB", origin: "https://signin.example", signature: "c2ln" };
const CHALLENGE = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function abortError() {
  const e = new Error("This operation was aborted");
  e.name = "AbortError";
  return e;
}

// fakeAgent simulates the loopback API on a set of ports. Each port's
// behaviour: "agent" (info + WebSocket), "refuse" (HTTP 403, as seen from
// node), "cors-refuse" (what a browser sees of a 403 without CORS headers: a
// failed fetch, and an opaque answer to no-cors), "closed" (connection
// refused), "hang" (never answers), "other" (some other JSON service),
// {info} (answers with that info), {delay, then} (waits, then behaves as then).
// handle(req, ws) answers WebSocket requests; the default answers hello,
// status, certificates and authenticate successfully.
function fakeAgent(ports, handle) {
  const fetchCalls = [];
  const sockets = [];
  const requests = [];

  async function behave(b, url, init) {
    if (b && typeof b === "object" && b.delay) {
      await sleep(b.delay);
      return behave(b.then, url, init);
    }
    if (init?.signal?.aborted) throw abortError();
    switch (b) {
      case "agent":
        return { ok: true, status: 200, type: "cors", json: async () => ({ ...INFO }) };
      case "refuse":
        return { ok: false, status: 403, type: "cors", json: async () => ({ error: { code: "not_allowed" } }) };
      case "cors-refuse":
        if (init.mode === "no-cors") return { ok: false, status: 0, type: "opaque", json: async () => { throw new SyntaxError("opaque"); } };
        throw new TypeError("Failed to fetch");
      case "other":
        return { ok: true, status: 200, type: "cors", json: async () => ({ hello: "world" }) };
      case "hang":
        return new Promise((_, reject) => {
          init.signal.addEventListener("abort", () => reject(abortError()), { once: true });
        });
      case undefined:
      case "closed":
        throw new TypeError("fetch failed: ECONNREFUSED");
      default:
        if (b?.info) return { ok: true, status: 200, type: "cors", json: async () => b.info };
        throw new Error(`bad behaviour ${JSON.stringify(b)}`);
    }
  }

  async function fetch(url, init) {
    fetchCalls.push({ url, init });
    const port = Number(new URL(url).port);
    return behave(ports[port], url, init);
  }

  const defaultHandle = (req) => {
    switch (req.type) {
      case "hello":
        return { name: "cardagent", version: "0.4.0", protocol: PROTOCOL, features: ["status", "certificates", "authenticate", "events"], origin: "https://signin.example" };
      case "status":
        return { service: "up", expiry_warning_days: 90, readers: [{ name: "Virtual PCD 00 00", card: null }] };
      case "certificates":
        // The card's "type" is a field of the result, beside the reply's own type.
        return { reader: "Virtual PCD 00 00", cardType: "NHS PIV", certificates: [], authentication_certificate: "MIIB" };
      case "authenticate":
        return { token: TOKEN };
    }
    return { error: { code: "bad_request", message: "unknown request type" } };
  };
  const h = handle ?? defaultHandle;

  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.readyState = 0;
      this.closedWith = null;
      sockets.push(this);
      const port = Number(new URL(url).port);
      const b = ports[port];
      setTimeout(() => {
        if (b === "agent" || b?.info || b?.then === "agent") {
          this.readyState = 1;
          this.onopen?.({});
        } else {
          // A refused handshake: error, then close 1006.
          this.onerror?.({});
          this.onclose?.({ code: 1006, reason: "" });
        }
      }, 0);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
      this.sent.push(data);
      const req = JSON.parse(data);
      requests.push(req);
      const reply = h(req, this, defaultHandle);
      if (reply === undefined) return; // the handler answers later (or never)
      this.reply(req, reply);
    }
    // reply answers req like the agent: same id and type.
    reply(req, body) {
      setTimeout(() => this.push({ id: req.id, type: req.type, ...body }), 0);
    }
    // push delivers a message from the agent.
    push(obj) {
      if (this.readyState === 1) this.onmessage?.({ data: typeof obj === "string" ? obj : JSON.stringify(obj) });
    }
    // drop is the agent closing the connection.
    drop(code = 1001, reason = "agent stopping") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    close(code, reason) {
      if (this.readyState === 3) return;
      this.closedWith = { code, reason };
      this.readyState = 3;
      setTimeout(() => this.onclose?.({ code: code ?? 1005, reason: reason ?? "" }), 0);
    }
  }

  return { fetch, WebSocket: FakeWebSocket, fetchCalls, sockets, requests };
}

// client builds options for a fake; tests close what they open.
function opts(fake, extra = {}) {
  return { fetch: fake.fetch, WebSocket: fake.WebSocket, probeTimeout: 50, connectTimeout: 200, requestTimeout: 200, reconnectDelay: 10, maxReconnectDelay: 40, ...extra };
}

async function rejectsWithCode(promise, code) {
  const err = await promise.then(() => assert.fail(`resolved; want ${code}`), (e) => e);
  assert.ok(err instanceof CardAgentError, `want a CardAgentError, got ${err}`);
  assert.ok(err instanceof Error);
  assert.equal(err.code, code, `code of ${err.message}`);
  return err;
}

function waitEvent(agent, name) {
  return new Promise((resolve) => agent.addEventListener(name, (e) => resolve(e), { once: true }));
}

test("exports", () => {
  assert.deepEqual(DEFAULT_PORTS, [43800, 43801, 43802, 43803, 43804, 43805, 43806, 43807, 43808, 43809]);
  assert.equal(defaultExport.connect, connect);
  assert.equal(defaultExport.CardAgent, CardAgent);
  assert.equal(typeof CardAgent.connect, "function");
});

test("discovery", async (t) => {
  const cases = [
    { name: "first port", ports: { 43800: "agent" }, want: 43800 },
    { name: "403 from another user's agent is skipped", ports: { 43800: "refuse", 43801: "agent" }, want: 43801 },
    { name: "browser-style refusal is skipped", ports: { 43800: "cors-refuse", 43801: "cors-refuse", 43802: "agent" }, want: 43802 },
    { name: "closed ports are skipped", ports: { 43805: "agent" }, want: 43805 },
    { name: "a hung port times out and is skipped", ports: { 43800: "hang", 43801: "agent" }, want: 43801 },
    { name: "another service is skipped", ports: { 43800: "other", 43801: "agent" }, want: 43801 },
    { name: "the lowest answering port wins", ports: { 43800: { delay: 30, then: "agent" }, 43801: "agent" }, want: 43800 },
    { name: "last port of the range", ports: { 43809: "agent", 43810: "agent" }, want: 43809 },
    { name: "nothing", ports: {}, code: "agent_not_found" },
    { name: "port outside the range is not probed", ports: { 43810: "agent" }, code: "agent_not_found" },
    { name: "every agent refuses (403)", ports: { 43800: "refuse", 43801: "refuse" }, code: "not_allowed" },
    { name: "every agent refuses (browser)", ports: { 43800: "cors-refuse" }, code: "not_allowed" },
    { name: "all hang", ports: { 43800: "hang", 43801: "hang" }, code: "agent_not_found" },
    { name: "other protocol", ports: { 43800: { info: { name: "cardagent", version: "9", protocol: 2 } } }, code: "unsupported_protocol" },
    { name: "other protocol skipped for a good one", ports: { 43800: { info: { name: "cardagent", version: "9", protocol: 2 } }, 43801: "agent" }, want: 43801 },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const fake = fakeAgent(c.ports);
      const start = Date.now();
      if (c.code) {
        await rejectsWithCode(discover(opts(fake)), c.code);
      } else {
        const r = await discover(opts(fake));
        assert.equal(r.port, c.want);
        assert.deepEqual(r.info, INFO);
      }
      assert.ok(Date.now() - start < 1000, "discovery took too long");
      const probed = new Set(fake.fetchCalls.map((f) => Number(new URL(f.url).port)));
      for (const p of probed) assert.ok(p >= 43800 && p <= 43809, `probed port ${p}`);
      for (const f of fake.fetchCalls) {
        assert.match(f.url, /^http:\/\/127\.0\.0\.1:438\d\d\/cardagent\/v1\/info$/);
        assert.equal(f.init.credentials, "omit");
        assert.ok(f.init.signal, "each probe has an abort signal");
      }
    });
  }
});

test("discovery options: port range, ports list, host", async () => {
  let fake = fakeAgent({ 50001: "agent" });
  assert.equal((await discover(opts(fake, { port: 50000, portCount: 3 }))).port, 50001);
  const corsProbes = fake.fetchCalls.filter((f) => f.init.mode === "cors");
  // In order, stopping at the agent: 50002 is never asked.
  assert.deepEqual(corsProbes.map((f) => new URL(f.url).port), ["50000", "50001"]);

  fake = fakeAgent({ 40000: "agent" });
  assert.equal((await discover(opts(fake, { ports: [41000, 40000] }))).port, 40000);

  fake = fakeAgent({ 43800: "agent" });
  await discover(opts(fake, { host: "localhost", ports: [43800] }));
  assert.equal(fake.fetchCalls[0].url, "http://localhost:43800/cardagent/v1/info");

  assert.throws(() => new CardAgent(opts(fake, { ports: [0, 70000] })), (e) => e.code === "bad_request");
});

test("probing stops at the first agent; no second probe in the normal case", async (t) => {
  await t.test("agent on the first port: one request", async () => {
    const fake = fakeAgent({ 43800: "agent", 43801: "agent" });
    const a = await connect(opts(fake));
    a.close();
    assert.deepEqual(fake.fetchCalls.map((f) => [new URL(f.url).port, f.init.mode]), [["43800", "cors"]]);
  });
  await t.test("closed ports before the agent: one CORS request each, in order", async () => {
    const fake = fakeAgent({ 43802: "agent" });
    const a = await connect(opts(fake));
    a.close();
    assert.deepEqual(fake.fetchCalls.map((f) => [new URL(f.url).port, f.init.mode]), [["43800", "cors"], ["43801", "cors"], ["43802", "cors"]]);
  });
  await t.test("no agent: the no-cors check only after the scan failed", async () => {
    const fake = fakeAgent({ 43801: "cors-refuse" });
    await rejectsWithCode(discover(opts(fake, { ports: [43800, 43801, 43802] })), "not_allowed");
    const modes = fake.fetchCalls.map((f) => f.init.mode);
    assert.deepEqual(modes.slice(0, 3), ["cors", "cors", "cors"]);
    assert.ok(modes.slice(3).every((m) => m === "no-cors"), `modes ${modes}`);
  });
});

test("an agent that fails the handshake is not this page's: the next port is tried", async (t) => {
  const page = "https://signin.example";
  await t.test("hello names another origin", async () => {
    const fake = fakeAgent({ 43800: "agent", 43801: "agent" }, (req, ws, def) => {
      const r = def(req);
      if (req.type === "hello" && ws.url.includes(":43800/")) return { ...r, origin: "https://other.example" };
      return r;
    });
    const a = await connect(opts(fake, { origin: page }));
    try {
      assert.equal(a.port, 43801);
      assert.ok(fake.sockets[0].closedWith, "the first agent's socket was closed");
    } finally {
      a.close();
    }
  });
  await t.test("WebSocket refused by the first agent", async () => {
    const fake = fakeAgent({ 43800: "agent", 43801: "agent" });
    const fakeWS = fake.WebSocket;
    fake.WebSocket = class extends fakeWS {
      constructor(url) {
        super(url.replace(":43800/", ":43899/")); // info answers, the upgrade is refused
      }
    };
    const a = await connect(opts(fake, { origin: page }));
    try {
      assert.equal(a.port, 43801);
    } finally {
      a.close();
    }
  });
  await t.test("hello from something that is not cardagent", async () => {
    const fake = fakeAgent({ 43800: "agent", 43801: "agent" }, (req, ws, def) => {
      const r = def(req);
      if (req.type === "hello" && ws.url.includes(":43800/")) return { ...r, name: "other" };
      return r;
    });
    const a = await connect(opts(fake, { origin: page }));
    a.close();
    assert.equal(a.port, 43801);
  });
  await t.test("every agent fails: the last handshake's error", async () => {
    const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => (req.type === "hello" ? { ...def(req), origin: "https://other.example" } : def(req)));
    await rejectsWithCode(connect(opts(fake, { origin: page, ports: [43800, 43801] })), "not_allowed");
  });
});

test("authenticate and certificates name the card only when told", async () => {
  const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) =>
    req.card === "unknown" ? { error: { code: "card_not_found", message: "the card the request names is not inserted" } } : def(req),
  );
  const a = await connect(opts(fake));
  try {
    assert.deepEqual(await a.authenticate(CHALLENGE), TOKEN);
    assert.deepEqual(await a.authenticate(CHALLENGE, { card: "3f8a2e0c51b94d7e8a1c6b2d9e4f7a10", format: "web-eid:1.0" }), TOKEN);
    await a.certificates({ card: "3f8a2e0c51b94d7e8a1c6b2d9e4f7a10" });
    await a.certificates();
    await rejectsWithCode(a.authenticate(CHALLENGE, { card: "unknown" }), "card_not_found");
    for (const bad of ["", 42, "a".repeat(129), "a\nb"]) {
      await rejectsWithCode(a.authenticate(CHALLENGE, { card: bad }), "bad_request");
      await rejectsWithCode(a.certificates({ card: bad }), "bad_request");
    }
    const auth = fake.requests.filter((r) => r.type === "authenticate");
    assert.equal(auth.length, 3, "a bad card id is refused before anything is sent");
    assert.equal("card" in auth[0], false);
    assert.equal(auth[1].card, "3f8a2e0c51b94d7e8a1c6b2d9e4f7a10");
    assert.equal(auth[1].format, "web-eid:1.0");
    const certs = fake.requests.filter((r) => r.type === "certificates");
    assert.equal(certs.length, 2);
    assert.equal(certs[0].card, "3f8a2e0c51b94d7e8a1c6b2d9e4f7a10");
    assert.equal("card" in certs[1], false);
  } finally {
    a.close();
  }
});

test("authenticate asks for the Web eID format only when told", async () => {
  const WEBEID = { unverifiedCertificate: "MIIB", algorithm: "RS256", signature: "c2ln", format: "web-eid:1.0", appVersion: "https://x/1" };
  const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => (req.type === "authenticate" && req.format === "web-eid:1.0" ? { token: WEBEID } : def(req)));
  const a = await connect(opts(fake));
  try {
    assert.deepEqual(await a.authenticate(CHALLENGE), TOKEN);
    assert.deepEqual(await a.authenticate(CHALLENGE, { format: "web-eid:1.0" }), WEBEID);
    await rejectsWithCode(a.authenticate(CHALLENGE, { format: "jwt" }), "bad_request");
    const sent = fake.requests.filter((r) => r.type === "authenticate");
    assert.equal(sent.length, 2);
    assert.equal("format" in sent[0], false);
    assert.equal(sent[1].format, "web-eid:1.0");
  } finally {
    a.close();
  }
});

test("Local Network Access: a distinct code when the browser keeps the page from loopback", async (t) => {
  const perms = (state) => ({ queries: 0, async query(d) { this.queries++; assert.equal(d.name, "local-network-access"); return { state }; } });
  await t.test("denied", async () => {
    const fake = fakeAgent({});
    const err = await rejectsWithCode(discover(opts(fake, { permissions: perms("denied") })), "local_network_denied");
    assert.equal(err.details.localNetworkAccess, "denied");
    assert.ok(fake.fetchCalls.every((f) => f.init.mode === "cors"), "no no-cors probe");
  });
  await t.test("prompt (a local page reads it too): not told apart", async () => {
    await rejectsWithCode(discover(opts(fakeAgent({}), { permissions: perms("prompt") })), "agent_not_found");
    await rejectsWithCode(discover(opts(fakeAgent({ 43800: "cors-refuse" }), { permissions: perms("prompt") })), "not_allowed");
  });
  await t.test("granted: nothing there is agent_not_found", async () => {
    await rejectsWithCode(discover(opts(fakeAgent({}), { permissions: perms("granted") })), "agent_not_found");
  });
  await t.test("a browser without the permission", async () => {
    const p = { async query() { throw new TypeError("bad permission name"); } };
    await rejectsWithCode(discover(opts(fakeAgent({}), { permissions: p })), "agent_not_found");
  });
  await t.test("not asked when an agent answers", async () => {
    const p = perms("denied");
    const fake = fakeAgent({ 43800: "agent" });
    assert.equal((await discover(opts(fake, { permissions: p }))).port, 43800);
    assert.equal(p.queries, 0);
  });
  await t.test("a refusal (403) is not_allowed whatever the permission", async () => {
    await rejectsWithCode(discover(opts(fakeAgent({ 43800: "refuse" }), { permissions: perms("prompt") })), "not_allowed");
  });
});

test("a hung probe's timeout is honoured", async () => {
  const fake = fakeAgent({ 43800: "hang" });
  const start = Date.now();
  await rejectsWithCode(discover(opts(fake, { ports: [43800], probeTimeout: 80 })), "agent_not_found");
  const took = Date.now() - start;
  assert.ok(took >= 70 && took < 1000, `took ${took} ms, want about 80`);
});

test("connect: WebSocket on the discovered port, hello, then requests", async () => {
  const fake = fakeAgent({ 43800: "refuse", 43801: "agent" });
  const agent = await connect(opts(fake));
  try {
    assert.equal(agent.port, 43801);
    assert.equal(agent.connected, true);
    assert.equal(fake.sockets.length, 1);
    assert.equal(fake.sockets[0].url, "ws://127.0.0.1:43801/cardagent/v1/ws");
    assert.deepEqual(fake.requests[0], { id: fake.requests[0].id, type: "hello", protocol: PROTOCOL });
    assert.equal(agent.hello.origin, "https://signin.example");
    assert.deepEqual(agent.info, INFO);

    const st = await agent.status();
    assert.equal(st.service, "up");
    assert.equal(st.id, undefined, "the reply's id is not part of the result");
    assert.equal(st.readers[0].name, "Virtual PCD 00 00");

    const certs = await agent.certificates();
    assert.equal(certs.cardType, "NHS PIV");
    assert.equal(certs.type, undefined, "the reply's type is not part of the result");

    const tok = await agent.authenticate(CHALLENGE);
    assert.deepEqual(tok, TOKEN);
    const auth = fake.requests.find((r) => r.type === "authenticate");
    assert.deepEqual(Object.keys(auth).sort(), ["challenge", "id", "type"], "authenticate sends the challenge only: no pin, no origin");
    assert.equal(auth.challenge, CHALLENGE);

    const ids = fake.requests.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, "request ids are unique");
  } finally {
    agent.close();
  }
});

test("new CardAgent then connect(), and a default-export connect", async () => {
  const fake = fakeAgent({ 43800: "agent" });
  const a = new CardAgent(opts(fake));
  assert.equal(a.connected, false);
  assert.equal(await a.connect(), a);
  assert.equal(await a.connect(), a, "connect on a connected client is a no-op");
  assert.equal(fake.sockets.length, 1);
  a.close();
  const b = await defaultExport.connect(opts(fake));
  assert.equal(b.connected, true);
  b.close();
});

test("requests connect lazily", async () => {
  const fake = fakeAgent({ 43800: "agent" });
  const a = new CardAgent(opts(fake));
  try {
    const [s1, s2] = await Promise.all([a.status(), a.status()]);
    assert.equal(s1.service, "up");
    assert.equal(s2.service, "up");
    assert.equal(fake.sockets.length, 1, "concurrent first calls share one connection");
  } finally {
    a.close();
  }
});

test("replies are matched to requests by id, in any order", async () => {
  const held = [];
  const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => {
    if (req.type === "hello") return def(req);
    held.push({ req, ws });
    if (held.length === 3) {
      // Answer in reverse order, with an unknown id and an event in between.
      ws.push({ id: 999999, type: "status", service: "down" });
      for (const { req: r } of held.slice().reverse()) {
        ws.reply(r, r.type === "authenticate" ? { token: { ...TOKEN, signature: `sig-${r.challenge}` } } : { service: `up-${r.id}`, readers: [] });
      }
    }
    return undefined;
  });
  const a = await connect(opts(fake));
  try {
    const [st, t1, t2] = await Promise.all([a.status(), a.authenticate("chal-one"), a.authenticate("chal-two")]);
    assert.equal(t1.signature, "sig-chal-one");
    assert.equal(t2.signature, "sig-chal-two");
    assert.equal(st.service, `up-${held[0].req.id}`);
  } finally {
    a.close();
  }
});

test("errors map to CardAgentError with the protocol's code", async (t) => {
  const cases = [
    { error: { code: "wrong_pin", message: "wrong PIN", tries_left: 2 }, code: "wrong_pin", triesLeft: 2 },
    { error: { code: "wrong_pin", message: "wrong PIN", tries_left: 0 }, code: "wrong_pin", triesLeft: 0 },
    { error: { code: "wrong_pin", message: "wrong PIN" }, code: "wrong_pin", triesLeft: undefined },
    { error: { code: "user_cancelled", message: "PIN entry was cancelled" }, code: "user_cancelled" },
    { error: { code: "pin_blocked", message: "blocked" }, code: "pin_blocked" },
    { error: { code: "no_card", message: "no smart card is inserted" }, code: "no_card" },
    { error: { code: "card_removed", message: "the card was removed" }, code: "card_removed" },
    { error: { code: "busy", message: "busy" }, code: "busy" },
    { error: { code: "bad_request", message: "field \"pin\" refused" }, code: "bad_request" },
    { error: { code: "timeout", message: "PIN entry timed out" }, code: "timeout" },
    { error: { code: "not_allowed", message: "not allowed" }, code: "not_allowed" },
    { error: { code: "rate_limited", message: "too many" }, code: "rate_limited" },
    { error: { code: "some_future_code", message: "new" }, code: "some_future_code" },
    { error: { message: "no code" }, code: "internal_error" },
    { error: {}, code: "internal_error" },
  ];
  for (const c of cases) {
    await t.test(`${c.error.code ?? "none"} ${c.error.tries_left ?? ""}`, async () => {
      const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => (req.type === "hello" ? def(req) : { error: c.error }));
      const a = await connect(opts(fake));
      try {
        const err = await rejectsWithCode(a.authenticate(CHALLENGE), c.code);
        assert.equal(err.triesLeft, c.triesLeft);
        if (c.triesLeft === undefined) assert.equal("triesLeft" in err, false);
        if (c.error.message) assert.equal(err.message, c.error.message);
        assert.equal(a.connected, true, "an error reply leaves the connection open");
      } finally {
        a.close();
      }
    });
  }
  assert.equal(errorFromReply({ code: "busy" }).message, "busy");
});

test("events: on(), addEventListener and the generic event", async () => {
  const fake = fakeAgent({ 43800: "agent" });
  const a = await connect(opts(fake));
  try {
    const got = [];
    const off = a.on("card_inserted", (detail) => got.push(["on", detail]));
    a.addEventListener("card_inserted", (e) => got.push(["listener", e.detail]));
    a.on("event", (d) => got.push(["event", d.event]));
    a.on("card_removed", (d) => got.push(["removed", d.reader]));
    const card = { state: "ready", kind: "piv", holder: { name: "Test User" } };
    const ws = fake.sockets[0];
    ws.push({ type: "event", event: "card_inserted", reader: "R0", card, time: "2025-01-01T00:00:00Z" });
    ws.push({ type: "event", event: "card_removed", reader: "R0", time: "2025-01-01T00:00:01Z" });
    ws.push("not json"); // ignored
    ws.push({ type: "event", event: "reader_added", reader: "R1" });
    await sleep(5);
    assert.deepEqual(got, [
      ["on", { event: "card_inserted", reader: "R0", card, time: "2025-01-01T00:00:00Z" }],
      ["listener", { event: "card_inserted", reader: "R0", card, time: "2025-01-01T00:00:00Z" }],
      ["event", "card_inserted"],
      ["removed", "R0"],
      ["event", "card_removed"],
      ["event", "reader_added"],
    ]);
    off();
    ws.push({ type: "event", event: "card_inserted", reader: "R0" });
    await sleep(5);
    assert.equal(got.filter(([k]) => k === "on").length, 1, "off() removed the listener");
    assert.equal(got.filter(([k]) => k === "listener").length, 2);
  } finally {
    a.close();
  }
});

test("timeouts", async (t) => {
  await t.test("request timeout, late reply ignored", async () => {
    let late;
    const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => {
      if (req.type === "hello") return def(req);
      if (req.type === "status" && !late) {
        late = () => ws.reply(req, { service: "late" });
        return undefined; // never answered in time
      }
      return def(req);
    });
    const a = await connect(opts(fake, { requestTimeout: 40 }));
    try {
      const start = Date.now();
      await rejectsWithCode(a.status(), "timeout");
      assert.ok(Date.now() - start >= 35);
      late();
      await sleep(5);
      const st = await a.status();
      assert.equal(st.service, "up", "the late reply did not answer the next request");
      assert.equal(a.connected, true);
    } finally {
      a.close();
    }
  });
  await t.test("authenticate's own timeout option", async () => {
    const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => (req.type === "hello" ? def(req) : undefined));
    const a = await connect(opts(fake, { authenticateTimeout: 10000 }));
    try {
      const start = Date.now();
      await rejectsWithCode(a.authenticate(CHALLENGE, { timeout: 30 }), "timeout");
      assert.ok(Date.now() - start < 1000);
    } finally {
      a.close();
    }
  });
  await t.test("hello unanswered", async () => {
    const fake = fakeAgent({ 43800: "agent" }, () => undefined);
    await rejectsWithCode(connect(opts(fake, { connectTimeout: 40 })), "timeout");
    assert.ok(fake.sockets[0].closedWith, "the socket was closed");
  });
  await t.test("abort signal", async () => {
    const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => (req.type === "hello" ? def(req) : undefined));
    const a = await connect(opts(fake));
    try {
      const ctl = new AbortController();
      const p = a.authenticate(CHALLENGE, { signal: ctl.signal });
      ctl.abort();
      await rejectsWithCode(p, "aborted");
      await rejectsWithCode(a.status({ signal: ctl.signal }), "aborted");
    } finally {
      a.close();
    }
  });
});

test("connect failures", async (t) => {
  await t.test("agent speaks another protocol in hello", async () => {
    const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => ({ ...def(req), protocol: 2 }));
    await rejectsWithCode(connect(opts(fake)), "unsupported_protocol");
    assert.ok(fake.sockets[0].closedWith);
  });
  await t.test("WebSocket handshake refused", async () => {
    const fake = fakeAgent({ 43800: { info: INFO } });
    const fakeWS = fake.WebSocket;
    // info answers but the upgrade is refused (403): error then close 1006.
    fake.WebSocket = class extends fakeWS {
      constructor(url) {
        super(url.replace("43800", "43899"));
      }
    };
    await rejectsWithCode(connect(opts(fake, { ports: [43800] })), "not_allowed");
  });
  await t.test("no agent", async () => {
    const fake = fakeAgent({});
    await rejectsWithCode(connect(opts(fake)), "agent_not_found");
    assert.equal(fake.sockets.length, 0);
  });
  await t.test("bad challenge is refused before sending", async () => {
    const fake = fakeAgent({ 43800: "agent" });
    const a = await connect(opts(fake));
    try {
      for (const bad of [undefined, "", 42, { challenge: CHALLENGE }]) {
        await rejectsWithCode(a.authenticate(bad), "bad_request");
      }
      assert.equal(fake.requests.filter((r) => r.type === "authenticate").length, 0);
    } finally {
      a.close();
    }
  });
});

test("a dropped connection fails pending requests and reconnects", async () => {
  const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => (req.type === "authenticate" ? undefined : def(req)));
  const a = await connect(opts(fake));
  try {
    const events = [];
    a.on("disconnected", (d) => events.push(["disconnected", d.code, d.reconnecting]));
    a.on("connected", (d) => events.push(["connected", d.port]));
    const pending = a.authenticate(CHALLENGE);
    await sleep(5);
    const reconnected = waitEvent(a, "connected");
    fake.sockets[0].drop(1001, "agent stopping");
    await rejectsWithCode(pending, "disconnected");
    await reconnected;
    assert.equal(fake.sockets.length, 2, "a new socket was opened");
    assert.deepEqual(events, [["disconnected", 1001, true], ["connected", 43800]]);
    assert.equal((await a.status()).service, "up", "requests work again");
    assert.equal(fake.requests.filter((r) => r.type === "hello").length, 2, "hello again after reconnecting");
  } finally {
    a.close();
  }
});

test("reconnect keeps trying with backoff until the agent is back", async () => {
  const ports = { 43800: "agent" };
  const fake = fakeAgent(ports);
  const a = await connect(opts(fake, { ports: [43800] }));
  try {
    ports[43800] = "closed";
    fake.sockets[0].drop(1006, "");
    await sleep(60); // several failed attempts (10, 20, 40 ms)
    const probesWhileDown = fake.fetchCalls.length - 1;
    assert.ok(probesWhileDown >= 2, `want retries while the agent is down, got ${probesWhileDown}`);
    assert.equal(a.connected, false);
    ports[43800] = "agent";
    await waitEvent(a, "connected");
    assert.equal(a.connected, true);
  } finally {
    a.close();
  }
});

test("a request while disconnected reconnects at once", async () => {
  const fake = fakeAgent({ 43800: "agent" });
  const a = await connect(opts(fake, { reconnectDelay: 5000, maxReconnectDelay: 5000 }));
  try {
    fake.sockets[0].drop(1006, "");
    const start = Date.now();
    assert.equal((await a.status()).service, "up");
    assert.ok(Date.now() - start < 1000, "did not wait for the backoff timer");
  } finally {
    a.close();
  }
});

test("close() is final", async () => {
  const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => (req.type === "authenticate" ? undefined : def(req)));
  const a = await connect(opts(fake));
  const closed = waitEvent(a, "close");
  let disconnected = 0;
  a.on("disconnected", () => disconnected++);
  const pending = a.authenticate(CHALLENGE);
  a.close();
  await rejectsWithCode(pending, "disconnected");
  await closed;
  assert.equal(a.connected, false);
  assert.ok(fake.sockets[0].closedWith, "the socket was closed");
  await rejectsWithCode(a.status(), "disconnected");
  await sleep(30);
  assert.equal(fake.sockets.length, 1, "no reconnect after close()");
  assert.equal(disconnected, 0);
  a.close(); // twice is fine
});

test("reconnect: false ends with a close event", async () => {
  const fake = fakeAgent({ 43800: "agent" });
  const a = await connect(opts(fake, { reconnect: false }));
  const closed = waitEvent(a, "close");
  fake.sockets[0].drop(1009, "message too big");
  const e = await closed;
  assert.equal(e.detail.code, 1009);
  await sleep(30);
  assert.equal(fake.sockets.length, 1);
  await rejectsWithCode(a.status(), "disconnected");
});

test("no API sends a PIN, data or hash", () => {
  const methods = Object.getOwnPropertyNames(CardAgent.prototype);
  for (const m of methods) assert.doesNotMatch(m, /pin|sign(?!_)|hash|raw/i, `method ${m}`);
  assert.equal(ErrorCodes.WRONG_PIN, "wrong_pin");
});

test("a result's own type field is kept when it is not the request's type", async () => {
  const fake = fakeAgent({ 43800: "agent" }, (req, ws, def) => {
    if (req.type !== "certificates") return def(req);
    setTimeout(() => ws.push({ id: req.id, reader: "R0", type: "NHS PIV" }), 0);
    return undefined;
  });
  const a = await connect(opts(fake));
  try {
    assert.deepEqual(await a.certificates(), { reader: "R0", type: "NHS PIV" });
  } finally {
    a.close();
  }
});
