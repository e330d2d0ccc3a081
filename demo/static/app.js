// The demo sign-in page. It never asks for the PIN: cardagent prompts for it
// in its own window. Flow: POST /api/challenge -> agent.authenticate(challenge)
// -> POST /api/verify {token, challenge} -> "Signed in as ...".
//
// Hooks for browser tests: <body data-state> is "loading", "ready",
// "working", "signed-in" or "error"; #message[data-code] holds the last
// error code (agent protocol code or verifier reason); #holder the name;
// #agent-status[data-agent] is "connected", "missing" or "unknown";
// #card-status[data-tries-left], [data-blocked], [data-days-left];
// #signed-card[data-card-id], [data-reader]: the card that signed in.
// When the agent says the card that signed in was removed (session_ended,
// IT's removal policy "notify" or "lock"), the page signs out: #message
// [data-code] is then "session_ended".
import { describeError, describeStatus, expiryWarning } from "./messages.js";
import { describeSignedInCard, signedInCard } from "./signedcard.js";

const $ = (id) => document.getElementById(id);

// ?ports=p1,p2 replaces the agent's default port range (tests use private
// ports, never the range a developer's own agent listens on).
const PORTS = new URLSearchParams(location.search).get("ports")?.split(",").map(Number);
const connectOptions = PORTS ? { ports: PORTS } : undefined;

let clientModule = null; // the imported /cardagent.js
let agent = null; // connected client
let refreshTimer = 0;
let signedInUUID = null; // the holder signed in, for session_ended

function setState(state) {
  document.body.dataset.state = state;
  $("signin").disabled = state === "working";
}

function say(text, kind = "info", code = "") {
  const m = $("message");
  m.textContent = text;
  m.dataset.kind = kind;
  m.dataset.code = code;
}

function warn(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

// loadClient imports the JS client once.
async function loadClient() {
  if (clientModule) return clientModule;
  try {
    clientModule = await import("/cardagent.js");
  } catch (e) {
    throw Object.assign(new Error(e?.message ?? String(e)), { code: "client_missing" });
  }
  return clientModule;
}

// connectAgent opens a connection with whatever the client module exports:
// connect(), a default export with connect(), or a CardAgent class.
async function connectAgent(mod) {
  const api = typeof mod.connect === "function" ? mod : (mod.default ?? mod);
  if (typeof api.connect === "function") return await api.connect(connectOptions);
  const Cls = api.CardAgent ?? api.Client ?? (typeof api === "function" ? api : undefined);
  if (typeof Cls?.connect === "function") return await Cls.connect(connectOptions);
  if (typeof Cls === "function") {
    const c = new Cls();
    if (typeof c.connect === "function") {
      const r = await c.connect(connectOptions);
      return r && typeof r.authenticate === "function" ? r : c;
    }
    return c;
  }
  throw Object.assign(new Error("the cardagent JS client exports no connect()"), { code: "client_missing" });
}

// subscribe refreshes the card panel on the agent's reader and card events,
// and forgets the connection when it closes.
function subscribe(client) {
  const onChange = () => scheduleRefresh();
  const onClose = () => {
    if (agent === client) agent = null;
    showAgent("missing", "The connection to cardagent was lost.");
  };
  // web/cardagent-client reconnects by itself after "disconnected" and says
  // "connected" when it is back; "close" is final.
  const onLost = () => showAgent("missing", "The connection to cardagent was lost; reconnecting\u2026");
  // Protocol event names (docs/protocol.md), and generic ones a client may use.
  const changes = ["card_reading", "card_inserted", "card_changed", "card_removed", "reader_added", "reader_removed", "service_down", "service_up",
    "event", "change", "status", "connected"];
  const closes = ["close", "disconnect"];
  const onEnded = (detail) => sessionEnded(detail?.detail ?? detail);
  if (typeof client.on === "function") {
    client.on("session_ended", onEnded);
    for (const n of changes) client.on(n, onChange);
    for (const n of closes) client.on(n, onClose);
    client.on("disconnected", onLost);
  } else if (typeof client.addEventListener === "function") {
    client.addEventListener("session_ended", onEnded);
    for (const n of changes) client.addEventListener(n, onChange);
    for (const n of closes) client.addEventListener(n, onClose);
    client.addEventListener("disconnected", onLost);
  }
}

async function getAgent() {
  if (agent) return agent;
  const client = await connectAgent(await loadClient());
  agent = client;
  subscribe(client);
  return client;
}

function showAgent(state, text) {
  const a = $("agent-status");
  a.dataset.agent = state;
  a.textContent = text;
}

function showCard(status) {
  const d = describeStatus(status);
  const box = $("card-status");
  box.replaceChildren(...d.lines.map((l) => {
    const p = document.createElement("p");
    p.className = "card-line";
    p.textContent = l;
    return p;
  }));
  box.dataset.state = d.state;
  box.dataset.triesLeft = d.triesLeft ?? "";
  box.dataset.blocked = String(d.blocked);
  box.dataset.daysLeft = d.daysLeft ?? "";
  box.hidden = false;
  warn($("status-warning"), d.warnings.join(" "));
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshStatus, 100);
}

// refreshStatus shows what the agent reports about readers and cards.
async function refreshStatus() {
  let client;
  try {
    client = await getAgent();
  } catch (e) {
    const d = describeError(e);
    showAgent("missing", d.text);
    return;
  }
  showAgent("connected", "cardagent is running.");
  if (typeof client.status !== "function") return;
  try {
    showCard(await client.status());
  } catch (e) {
    warn($("status-warning"), describeError(e).text);
  }
}

async function postJSON(url, body) {
  let res;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (e) {
    throw Object.assign(new Error(e?.message ?? String(e)), { code: "site_unreachable" });
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw Object.assign(new Error(data.message ?? `HTTP ${res.status}`), { code: data.error ?? "site_error", server: true });
  }
  return data;
}

// sessionEnded signs out when the card that signed this user in was removed
// (docs/protocol.md, session_ended): the event names the card's holder; a
// page signed in as someone else stays signed in.
function sessionEnded(ev) {
  if (document.body.dataset.state !== "signed-in") return;
  const uuid = ev?.session?.holder?.uuid;
  if (uuid && signedInUUID && uuid !== signedInUUID) return;
  signOut();
  say("Your smartcard was removed, so you have been signed out.", "info", "session_ended");
}

function showResult(r) {
  $("holder").textContent = r.holder?.name ?? "";
  $("uuid").textContent = r.holder?.uuid ?? "\u2014";
  $("subject").textContent = r.certificate?.subject ?? "";
  $("issuer").textContent = r.certificate?.issuer ?? "";
  const days = r.certificate?.days_left;
  const date = (r.certificate?.not_after ?? "").slice(0, 10);
  $("expiry").textContent = Number.isInteger(days) ? `${date} (${days} days left)` : date;
  $("algorithm").textContent = r.algorithm ?? "";
  signedInUUID = r.holder?.uuid ?? null;
  warn($("expiry-warning"), expiryWarning(days));
  $("result").hidden = false;
  $("signin-panel").hidden = true;
}

// showSignedCard says which card signed in (type, reader, id), found in
// the agent's status by the verified certificate; "—" when it is gone.
async function showSignedCard(client, result) {
  let card;
  try {
    card = signedInCard(await client.status(), result.certificate?.sha256);
  } catch {
    card = undefined;
  }
  const el = $("signed-card");
  el.textContent = describeSignedInCard(card);
  el.dataset.cardId = card?.id ?? "";
  el.dataset.reader = card?.reader ?? "";
}

async function signIn() {
  setState("working");
  say("Starting sign-in\u2026");
  try {
    const ch = await postJSON("/api/challenge", {});
    if (ch.origin && ch.origin !== location.origin) {
      warn($("origin-warning"), `This demo is set up for ${ch.origin} but you opened ${location.origin}: ` +
        `the card signs for the address you opened, so the site would refuse it. Open ${ch.origin}/ instead.`);
    }
    const client = await getAgent();
    say("Enter your PIN in the cardagent window.");
    const answer = await client.authenticate(ch.challenge);
    const tok = answer && answer.format === undefined && answer.token ? answer.token : answer;
    say("Checking your card's signature\u2026");
    const result = await postJSON("/api/verify", { token: tok, challenge: ch.challenge });
    showResult(result);
    await showSignedCard(client, result);
    say("");
    setState("signed-in");
  } catch (e) {
    const d = describeError(e);
    if (d.code === "disconnected" || d.code === "agent_not_found" || d.code === "not_found") {
      agent?.close?.(); // a client that reconnects by itself must not outlive the page's reference
      agent = null;
    }
    say(d.text, "error", d.code);
    setState("error");
  }
  scheduleRefresh();
}

function signOut() {
  signedInUUID = null;
  $("result").hidden = true;
  $("signin-panel").hidden = false;
  say("You signed out.");
  setState("ready");
}

$("signin").addEventListener("click", signIn);
$("signout").addEventListener("click", signOut);
setState("ready");
refreshStatus();
