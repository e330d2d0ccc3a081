// Verifies prescription signatures the way the EPS API does: the
// certificate (base64 DER from the reply) as PEM, then
// crypto.createVerify("RSA-SHA1" | "RSA-SHA256").update(SignedInfo)
// .verify(certificate, SignatureValue, "base64").
// Input (stdin): {"algorithm":"RS1"|"RS256","certificate":"…","items":[{"payload":"<base64>","signature":"<base64>"}]}
// Output: one line per item, "ok" or "bad".
import crypto from "node:crypto";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
const pem = "-----BEGIN CERTIFICATE-----\n" + req.certificate.match(/.{1,64}/g).join("\n") + "\n-----END CERTIFICATE-----\n";
const alg = { RS1: "RSA-SHA1", RS256: "RSA-SHA256" }[req.algorithm];
if (!alg) throw new Error("unknown algorithm " + req.algorithm);
for (const item of req.items) {
  const signedInfo = Buffer.from(item.payload, "base64");
  const ok = crypto.createVerify(alg).update(signedInfo).verify(pem, item.signature, "base64");
  console.log(ok ? "ok" : "bad");
}
