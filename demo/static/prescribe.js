// The demo's prescription-signing page. It speaks NHS Credential Management's
// public local interface directly (no library): the NHS Port Service on
// loopback (every port at once, the first answer wins), then one classic
// SignalR 2 long-polling connection to the signing hub, a single
// requestToSign call, and an abort that ends the connection.
// docs/credential-management.md documents the wire format.
//
// Hooks for tests: <body data-state> is "ready", "working", "signed" or
// "error"; #message[data-code] is the reply's status_code (or a site error).
// ?ports=p1,p2 replaces the Port Service ports (tests use private ones).

const PORTS = (new URLSearchParams(location.search).get("ports") || "43487,44213,45031,46478,48853")
  .split(",").map(Number).filter((p) => p > 0 && p < 65536);

const $ = (id) => document.getElementById(id);

function say(state, text, code = "") {
  document.body.dataset.state = state;
  $("message").textContent = text;
  $("message").dataset.code = String(code);
}

async function locateService() {
  const answers = PORTS.map((p) =>
    fetch(`http://localhost:${p}/PRS/GetPortNumber`, { cache: "no-cache", credentials: "include" }).then((r) => r.json()));
  const rsp = await Promise.any(answers).catch(() => {
    throw new Error("No signing service answered (is cardagent running, and does it allow this site?)");
  });
  if (rsp.faultException) throw new Error(`${rsp.faultException.code}: ${rsp.faultException.message}`);
  return rsp.portData.portNumber;
}

const FORM = { "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8" };

async function json(url, init = {}) {
  const r = await fetch(url, { credentials: "include", cache: "no-cache", ...init });
  if (!r.ok) throw new Error(`signing service: HTTP ${r.status}`);
  return r.json();
}

// requestToSign over one SignalR connection; returns the hub's reply.
async function requestToSign(port, arg) {
  const base = `http://localhost:${port}/signalr`;
  const hubs = encodeURIComponent(JSON.stringify([{ name: "signinghub" }]));
  const neg = await json(`${base}/negotiate?clientProtocol=2.1&connectionData=${hubs}`);
  const q = `?transport=longPolling&clientProtocol=2.1&connectionToken=${encodeURIComponent(neg.ConnectionToken)}&connectionData=${hubs}`;
  await json(`${base}/connect${q}`, { method: "POST", headers: FORM, body: "" });
  await json(`${base}/start${q}`);
  try {
    const call = JSON.stringify({ H: "signinghub", M: "requestToSign", A: [arg], I: 0 });
    const res = await json(`${base}/send${q}`, { method: "POST", headers: FORM, body: "data=" + encodeURIComponent(call) });
    if (res.E) throw new Error(res.E);
    return res.R;
  } finally {
    fetch(`${base}/abort${q}`, { method: "POST", credentials: "include", headers: FORM, body: "" }).catch(() => {});
  }
}

async function site(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const v = await r.json();
  if (!r.ok || v.error) throw Object.assign(new Error(v.message || `HTTP ${r.status}`), { code: v.error || r.status });
  return v;
}

async function sign() {
  $("result").hidden = true;
  say("working", "Preparing prescriptions…");
  try {
    const algorithm = $("algorithm").value;
    const prepared = await site("/api/prescriptions", { count: Number($("count").value), algorithm });
    const request = { algorithm, requestType: 1, version: 1, flags: 0, payloads: prepared.payloads };
    say("working", "Looking for the signing service…");
    const port = await locateService();
    say("working", "Enter your PIN in cardagent's window…");
    const reply = await requestToSign(port, btoa(JSON.stringify(request)));
    if (reply.status_code !== 0 || !reply.certificate || !reply.signatures?.length) {
      say("error", reply.message || "The signing service refused.", reply.status_code);
      return;
    }
    const checked = await site("/api/prescriptions/verify", { algorithm, certificate: reply.certificate, signatures: reply.signatures });
    $("verified").textContent = `${checked.verified} prescription${checked.verified === 1 ? "" : "s"}`;
    $("holder").textContent = checked.holder;
    $("result").hidden = false;
    say("signed", "Signed and verified.", 0);
  } catch (e) {
    say("error", e.message, e.code || "error");
  }
}

$("sign").addEventListener("click", sign);
$("sign").disabled = false;
say("ready", "");
