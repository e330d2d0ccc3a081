// Unit tests of static/signedcard.js: node --test demo/signedcard_test.mjs
// (demo's Go tests run this too when node is installed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeSignedInCard, signedInCard } from "./static/signedcard.js";

const status = {
  service: "up",
  readers: [
    { name: "Virtual PCD 00 00", card: { id: "aaaa", type: "NHS series 9/10 (PIV)", holder: { name: "Userq RANDOM" },
      certificates: [{ usage: "authentication", sha256: "11" }, { usage: "signature", sha256: "12" }] } },
    { name: "Virtual PCD 00 01", card: { id: "3f8a2e0c51b94d7e8a1c6b2d9e4f7a10", type: "NHS series 9/10 (PIV)", holder: { name: "Holder SECOND" },
      certificates: [{ usage: "authentication", sha256: "21" }] } },
    { name: "Empty reader", card: null },
  ],
};

test("the card holding the verified certificate", () => {
  assert.deepEqual(signedInCard(status, "21"), { id: "3f8a2e0c51b94d7e8a1c6b2d9e4f7a10", type: "NHS series 9/10 (PIV)", reader: "Virtual PCD 00 01", holder: "Holder SECOND" });
  assert.equal(signedInCard(status, "11").reader, "Virtual PCD 00 00");
  assert.equal(signedInCard(status, "AB"), undefined);
  assert.equal(signedInCard(status, ""), undefined);
  assert.equal(signedInCard({}, "11"), undefined);
  assert.equal(signedInCard(null, "11"), undefined);
});

test("its description", () => {
  assert.equal(describeSignedInCard(signedInCard(status, "21")), "NHS series 9/10 (PIV) in \u201cVirtual PCD 00 01\u201d, card 3f8a2e0c51b9\u2026");
  assert.equal(describeSignedInCard(signedInCard(status, "11")), "NHS series 9/10 (PIV) in \u201cVirtual PCD 00 00\u201d, card aaaa");
  assert.equal(describeSignedInCard(undefined), "\u2014");
});
