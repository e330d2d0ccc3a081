// Unit tests of the sign-in page's wording (static/messages.js):
//   node --test demo/messages_test.mjs
// demo's Go tests run this too when node is installed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeError, describeStatus, errorCode, expiryWarning, triesLeft } from "./static/messages.js";

test("error codes come from code, error or the error's name", () => {
  assert.equal(errorCode({ code: "busy" }), "busy");
  assert.equal(errorCode({ error: "bad_signature" }), "bad_signature");
  assert.equal(errorCode(Object.assign(new Error("x"), { name: "TimeoutError" })), "timeout");
  assert.equal(errorCode(new Error("x")), "unknown");
  assert.equal(errorCode(null), "unknown");
});

test("tries left in any of the client's spellings", () => {
  assert.equal(triesLeft({ triesLeft: 2 }), 2);
  assert.equal(triesLeft({ tries_left: 1 }), 1);
  assert.equal(triesLeft({ details: { tries_left: 0 } }), 0);
  assert.equal(triesLeft({ tries_left: -1 }), undefined);
  assert.equal(triesLeft({}), undefined);
});

test("wrong PIN shows the tries left", () => {
  const cases = [
    [{ code: "wrong_pin", triesLeft: 2 }, /Wrong PIN: 2 tries left before your card is locked/],
    [{ code: "wrong_pin", tries_left: 1 }, /Wrong PIN: 1 try left before/],
    [{ code: "wrong_pin", triesLeft: 0 }, /locked after too many wrong PINs/],
    [{ code: "wrong_pin" }, /^Wrong PIN\. Press/],
  ];
  for (const [err, want] of cases) {
    const d = describeError(err);
    assert.equal(d.code, "wrong_pin");
    assert.match(d.text, want);
  }
  assert.equal(describeError({ code: "wrong_pin", triesLeft: 2 }).triesLeft, 2);
});

test("every agent outcome has words", () => {
  const cases = {
    user_cancelled: /cancelled the PIN entry/,
    pin_blocked: /locked/,
    no_card: /Insert your card/,
    card_removed: /removed/,
    busy: /busy/,
    timeout: /not answered in time/,
    not_allowed: /not allowed/,
    agent_not_found: /not running/,
    client_missing: /JS client/,
  };
  for (const [code, want] of Object.entries(cases)) {
    assert.match(describeError({ code }).text, want, code);
  }
});

test("site errors keep the server's words; unknown codes are named", () => {
  const d = describeError(Object.assign(new Error("The card signed for a different web site than this one."), { code: "origin_mismatch", server: true }));
  assert.equal(d.code, "origin_mismatch");
  assert.equal(d.text, "The card signed for a different web site than this one.");
  assert.match(describeError(Object.assign(new Error("boom"), { code: "strange" })).text, /\(strange\): boom/);
});

const card = (over = {}) => ({
  type: "NHS series 9/10 (PIV)",
  supported: true,
  holder: { name: "Test DEVELOPER", uuid: "999000000001" },
  pin: { tries_left: 3, blocked: false },
  certificates: [
    { key: "9a", usage: "authentication", days_left: 400 },
    { key: "9c", usage: "signature", days_left: 10 },
  ],
  ...over,
});

test("status: no reader, no card, a card", () => {
  assert.equal(describeStatus({ readers: [] }).state, "no_reader");
  assert.equal(describeStatus(undefined).state, "no_reader");
  assert.equal(describeStatus({ readers: [{ name: "R", card: null }] }).state, "no_card");
  const d = describeStatus({ readers: [{ name: "Virtual PCD 00 00", card: card() }] });
  assert.equal(d.state, "card");
  assert.equal(d.holder, "Test DEVELOPER");
  assert.equal(d.triesLeft, 3);
  assert.equal(d.blocked, false);
  assert.equal(d.daysLeft, 400, "the authentication certificate counts, not the signing one");
  assert.deepEqual(d.warnings, []);
  assert.ok(d.lines.some((l) => l.includes("PIN: 3 tries left")));
  assert.ok(d.lines[0].includes("Virtual PCD 00 00"));
});

test("status: flat cards list", () => {
  const d = describeStatus({ cards: [card({ reader: "R1" })] });
  assert.equal(d.state, "card");
  assert.equal(describeStatus({ cards: [] }).state, "no_card");
});

test("status: blocked PIN and expiry warnings", () => {
  const blocked = describeStatus({ readers: [{ name: "R", card: card({ pin: { tries_left: 0, blocked: true } }) }] });
  assert.equal(blocked.blocked, true);
  assert.match(blocked.warnings.join(" "), /locked/);
  const soon = describeStatus({ readers: [{ name: "R", card: card({ certificates: [{ usage: "authentication", days_left: 60 }] }) }] });
  assert.match(soon.warnings.join(" "), /expires in 60 days/);
  const unsupported = describeStatus({ readers: [{ name: "R", card: card({ supported: false, hint: "Series 4-6 cards are retired." }) }] });
  assert.match(unsupported.warnings.join(" "), /retired/);
});

test("expiry warning thresholds", () => {
  assert.equal(expiryWarning(91), "");
  assert.match(expiryWarning(90), /expires in 90 days/);
  assert.match(expiryWarning(1), /expires in 1 day\./);
  assert.match(expiryWarning(0), /expires today/);
  assert.match(expiryWarning(-1), /has expired/);
  assert.match(expiryWarning(10, "https://renew.example"), /Renew it at https:\/\/renew\.example/);
  assert.equal(expiryWarning(undefined), "");
});

test("status as the agent sends it (agent.Status)", () => {
  const status = {
    service: "up",
    expiry_warning_days: 30,
    readers: [
      { name: "Virtual PCD 00 00", card: card({ state: "ready", certificates: [{ key: "9a", usage: "authentication", days_left: 60, expiry: "ok" }] }) },
      { name: "Virtual PCD 00 01", card: { state: "reading", atr: "3B", kind: "piv", type: "NHS series 9/10 (PIV)", certificates: [] } },
    ],
  };
  const d = describeStatus(status);
  assert.equal(d.state, "card");
  assert.equal(d.daysLeft, 60);
  assert.deepEqual(d.warnings, [], "60 days is outside the agent's 30-day window");
  assert.ok(d.lines.some((l) => l.startsWith("Reading the card")));
  assert.equal(describeStatus({ ...status, expiry_warning_days: 90 }).warnings.length, 1);
  assert.equal(describeStatus({ service: "down", readers: [] }).state, "no_service");
  const mute = describeStatus({ readers: [{ name: "R", card: { state: "mute", hint: "The card does not answer.", certificates: [] } }] });
  assert.match(mute.warnings.join(" "), /does not answer/);
});

test("agent codes from agent/cardservice_errors.go have words", () => {
  for (const code of ["pin_format", "internal_error", "no_certificate", "rate_limited", "service_unavailable", "prompt_unavailable", "unsupported_card", "card_error", "bad_request"]) {
    assert.doesNotMatch(describeError({ code }).text, /Sign-in failed \(/, code);
  }
});
