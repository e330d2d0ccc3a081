// Which card signed in: the card in the agent's status whose authentication
// certificate is the one the site verified (matched by its SHA-256), so the
// page can say "Signed in with the card in reader X" when several cards are
// inserted. Pure functions: demo/signedcard_test.mjs tests them.

// signedInCard returns {id, type, reader, holder} of the card in status
// (docs/protocol.md: readers[].card) holding the certificate whose SHA-256
// (hex) is sha256, or undefined when none does (the card was pulled).
export function signedInCard(status, sha256) {
  if (typeof sha256 !== "string" || sha256 === "") return undefined;
  const want = sha256.toLowerCase();
  const readers = Array.isArray(status?.readers) ? status.readers : [];
  for (const r of readers) {
    const card = r?.card;
    const certs = Array.isArray(card?.certificates) ? card.certificates : [];
    if (certs.some((c) => typeof c?.sha256 === "string" && c.sha256.toLowerCase() === want)) {
      return { id: card.id ?? "", type: card.type ?? card.kind ?? "smartcard", reader: r.name ?? "", holder: card.holder?.name ?? "" };
    }
  }
  return undefined;
}

// describeSignedInCard words it: "NHS series 9/10 (PIV) in “Virtual PCD 00 01”, card 3f8a2e0c…".
export function describeSignedInCard(card) {
  if (!card) return "\u2014";
  const where = card.reader ? ` in \u201c${card.reader}\u201d` : "";
  const id = card.id ? `, card ${card.id.length > 12 ? card.id.slice(0, 12) + "\u2026" : card.id}` : "";
  return `${card.type}${where}${id}`;
}
