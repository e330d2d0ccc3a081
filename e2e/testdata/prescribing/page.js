// A prescribing page that signs the way NHS's prescription-signing browser
// library drives Credential Management, so the tests exercise the agent as
// real pages do:
//   1. the Port Service: GET http://localhost:P/PRS/GetPortNumber on every
//      port at once, with credentials; the first answer that parses wins
//      (Promise.any), a fault inside it is thrown;
//   2. a new SignalR connection to http://localhost:<portNumber> for every
//      call, hub "signingHub", long polling, never stopped;
//   3. invoke("requestToSign", <base64 of the JSON request>).
// The SignalR client is chosen by the page's query: client=v020 or v021
// (signalr-no-jquery) or jquery (Microsoft's signalr 2.4.3 with jQuery).
// ports= lists the Port Service ports to try (the tests' private ones).
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const ports = (params.get("ports") || "43487,44213,45031,46478,48853").split(",").map(Number);
  const client = params.get("client") || "v021";

  function locateService() {
    return Promise.any(ports.map((p) =>
      fetch("http://localhost:" + p + "/PRS/GetPortNumber", { method: "GET", cache: "no-cache", credentials: "include" })
        .then((rsp) => rsp.json())));
  }

  function connect(port) {
    const url = "http://localhost:" + port;
    if (client === "jquery") {
      const conn = window.jQuery.hubConnection(url);
      const hub = conn.createHubProxy("signingHub");
      return new Promise((resolve, reject) =>
        conn.start({ transport: "longPolling" }).done(() => resolve(hub)).fail(reject));
    }
    const lib = client === "v020" ? window.signalrV020 : window.signalrV021;
    const conn = lib.hubConnection(url, { logging: false });
    const hub = conn.createHubProxy("signingHub");
    // As NHS's library: the promise settles only on the start callback.
    return new Promise((resolve) =>
      conn.start({ transport: "longPolling", contentType: "application/jwt" }, () => resolve(hub)));
  }

  // signRaw sends arg (already the base64 request) and returns the hub's reply.
  async function signRaw(arg) {
    const rsp = await locateService();
    if (rsp.faultException !== undefined && rsp.faultException !== null) {
      throw new TypeError(rsp.faultException.code + ": " + rsp.faultException.message);
    }
    const hub = await connect(rsp.portData.portNumber);
    return await hub.invoke("requestToSign", arg);
  }

  // request builds the argument as NHS's library does: base64 of the JSON.
  function request(algorithm, payloads) {
    const json = JSON.stringify({ algorithm: algorithm, requestType: 1, version: 1, flags: 0, payloads: payloads });
    return btoa(unescape(encodeURIComponent(json)));
  }

  // outcome turns a promise into {ok, reply} or {ok:false, error} for the test.
  function outcome(p) {
    return p.then((reply) => ({ ok: true, reply: reply }),
      (e) => ({ ok: false, error: String(e && (e.message || e)) + (e && e.errors ? " [" + e.errors.map(String).join("; ") + "]" : "") }));
  }

  window.test = {
    sign: (algorithm, payloads) => outcome(signRaw(request(algorithm, payloads))),
    signRaw: (arg) => outcome(signRaw(arg)),
    locate: () => outcome(locateService()),
  };
})();
