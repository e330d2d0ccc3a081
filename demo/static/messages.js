// Words for what the agent and this site report. Pure functions, no DOM:
// demo/messages_test.mjs tests them with node's test runner.

// Certificates with this many days left or fewer get a renewal warning,
// unless the agent's status says otherwise (expiry_warning_days).
export const RENEW_DAYS = 90;

// errorCode returns the stable code of an error from the JS client (the
// agent's protocol codes), from this site's API, or from the page itself.
export function errorCode(err) {
  if (!err) return "unknown";
  if (typeof err.code === "string" && err.code) return err.code;
  if (typeof err.error === "string" && err.error) return err.error;
  if (err.name === "AbortError" || err.name === "TimeoutError") return "timeout";
  return "unknown";
}

// triesLeft returns the PIN tries left an error reports, or undefined.
export function triesLeft(err) {
  const candidates = [err?.triesLeft, err?.tries_left, err?.details?.tries_left, err?.details?.triesLeft,
    err?.data?.tries_left, err?.data?.triesLeft];
  return candidates.find((v) => Number.isInteger(v) && v >= 0);
}

function tries(n) {
  return n === 1 ? "1 try left" : `${n} tries left`;
}

const AGENT_NOT_RUNNING = "cardagent is not running on this computer (or is not installed). Start it and press \u201cSign in\u201d again.";

const MESSAGES = {
  user_cancelled: "You cancelled the PIN entry. Press \u201cSign in\u201d to try again.",
  cancelled: "You cancelled the PIN entry. Press \u201cSign in\u201d to try again.",
  pin_blocked: "Your card is locked after too many wrong PINs. Ask your Registration Authority (RA) or smartcard administrator to unlock it.",
  no_card: "No smartcard found. Insert your card and press \u201cSign in\u201d.",
  no_reader: "No smartcard reader found. Connect your reader and try again.",
  card_removed: "Your card was removed before sign-in finished. Insert it and press \u201cSign in\u201d again.",
  busy: "Your card is busy with another sign-in (another tab or program). Finish that one, then try again.",
  timeout: "The PIN prompt was not answered in time. Press \u201cSign in\u201d to try again.",
  not_allowed: "This site is not allowed to use your smartcard: it is not on cardagent's list of allowed sites. Contact your IT service desk.",
  origin_not_allowed: "This site is not allowed to use your smartcard: it is not on cardagent's list of allowed sites. Contact your IT service desk.",
  agent_not_found: AGENT_NOT_RUNNING,
  not_found: AGENT_NOT_RUNNING,
  not_running: AGENT_NOT_RUNNING,
  unreachable: AGENT_NOT_RUNNING,
  disconnected: "The connection to cardagent was lost. Press \u201cSign in\u201d to try again.",
  service_unavailable: "The computer's smartcard service is not running. Restart the computer or contact IT.",
  no_service: "The computer's smartcard service is not running. Restart the computer or contact IT.",
  unsupported_card: "cardagent does not support this card.",
  certificate_expired: "Your card's certificate has expired. Ask your Registration Authority to renew it.",
  no_certificate: "Your card has no sign-in certificate. Ask your Registration Authority.",
  prompt_unavailable: "cardagent could not show its PIN prompt. Check that cardagent is running in your desktop session.",
  rate_limited: "Too many sign-in attempts. Wait a minute and try again.",
  bad_request: "The page and cardagent did not understand each other. Update cardagent.",
  unsupported_protocol: "This cardagent is too old or too new for this page. Update cardagent.",
  card_error: "The card did not answer properly. Take it out, insert it again and retry.",
  card_not_found: "The card this page asked for is not inserted. Insert it, or press \u201cSign in\u201d to choose another card.",
  card_ambiguous: "Several smartcards are inserted: take out the ones you do not want to use and press \u201cSign in\u201d again.",
  pin_format: "The PIN you typed is not one this card can take (no try was used). Press \u201cSign in\u201d and try again.",
  internal_error: "cardagent had an internal error. Try again; if it keeps happening, contact IT.",
  internal: "cardagent had an internal error. Try again; if it keeps happening, contact IT.",
  client_missing: "The cardagent JS client could not be loaded by this page.",
  site_unreachable: "This web site could not be reached. Check the network and try again.",
};

// describeError says an error in words: {code, text, triesLeft}.
// Errors from this site's API carry their own words (err.message with
// err.server set); agent errors are worded here.
export function describeError(err) {
  const code = errorCode(err);
  const left = triesLeft(err);
  let text;
  if (code === "wrong_pin") {
    if (left === 0) {
      text = MESSAGES.pin_blocked;
    } else if (left === undefined) {
      text = "Wrong PIN. Press \u201cSign in\u201d to try again.";
    } else {
      text = `Wrong PIN: ${tries(left)} before your card is locked. Press \u201cSign in\u201d to try again.`;
    }
  } else if (err?.server && err.message) {
    text = err.message;
  } else if (MESSAGES[code]) {
    text = MESSAGES[code];
  } else {
    const detail = typeof err?.message === "string" && err.message ? `: ${err.message}` : "";
    text = `Sign-in failed (${code})${detail}.`;
  }
  return { code, text, triesLeft: left };
}

// authDaysLeft returns the days left of a card's authentication certificate
// (or the soonest to expire), or undefined.
function authDaysLeft(card) {
  const certs = Array.isArray(card?.certificates) ? card.certificates : [];
  const auth = certs.find((c) => c?.usage === "authentication" || c?.key === "9a");
  const pick = auth ? [auth] : certs;
  const days = pick.map((c) => c?.days_left).filter(Number.isInteger);
  if (days.length) return Math.min(...days);
  return Number.isInteger(card?.days_left) ? card.days_left : undefined;
}

// cardsOf lists the cards a status reports as [{reader, card}]. It accepts
// the shape of `cardagent cards --json` (readers[].card) and a flat cards[].
function cardsOf(status) {
  if (Array.isArray(status?.cards)) {
    return status.cards.map((card) => ({ reader: card?.reader ?? "", card }));
  }
  const readers = Array.isArray(status?.readers) ? status.readers : [];
  return readers.filter((r) => r?.card).map((r) => ({ reader: r.name ?? "", card: r.card }));
}

// describeStatus turns the agent's status (docs/protocol.md: service,
// expiry_warning_days, readers[].card) into what the page shows:
// {state, lines, warnings, triesLeft, blocked, daysLeft, holder}, with state
// one of "no_service", "no_reader", "no_card", "card".
export function describeStatus(status) {
  const readers = Array.isArray(status?.readers) ? status.readers : [];
  const cards = cardsOf(status);
  const warnDays = Number.isInteger(status?.expiry_warning_days) ? status.expiry_warning_days : RENEW_DAYS;
  const out = { state: "card", lines: [], warnings: [], triesLeft: undefined, blocked: false, daysLeft: undefined, holder: undefined };
  if (status?.service === "down" || status?.service === "stopped") {
    out.state = "no_service";
    out.lines.push(MESSAGES.service_unavailable);
    return out;
  }
  if (!cards.length) {
    out.state = readers.length || Array.isArray(status?.cards) ? "no_card" : "no_reader";
    out.lines.push(out.state === "no_card" ? "No card inserted: insert your smartcard." : "No smartcard reader connected.");
    return out;
  }
  for (const { reader, card } of cards) {
    const where = reader ? ` in \u201c${reader}\u201d` : "";
    if (card.state === "reading") {
      out.lines.push(`Reading the card${where}\u2026`);
      continue;
    }
    const who = card.holder?.name ?? "unknown holder";
    const type = card.type ?? card.kind ?? "smartcard";
    out.lines.push(`${who}, ${type}${where}`);
    if (card.supported === false || ["unsupported", "mute", "error"].includes(card.state)) {
      out.warnings.push(card.hint ?? (card.state === "unsupported" ? MESSAGES.unsupported_card : MESSAGES.card_error));
      continue;
    }
    out.holder ??= card.holder?.name;
    const pin = card.pin ?? {};
    const left = [pin.tries_left, pin.triesLeft, card.tries_left].find(Number.isInteger);
    const blocked = pin.blocked === true || card.blocked === true || left === 0;
    if (blocked) {
      out.blocked = true;
      out.warnings.push(MESSAGES.pin_blocked);
    } else if (left !== undefined && left >= 0) {
      out.triesLeft = out.triesLeft === undefined ? left : Math.min(out.triesLeft, left);
      out.lines.push(`PIN: ${tries(left)}`);
    }
    const days = authDaysLeft(card);
    if (days !== undefined) {
      out.daysLeft = out.daysLeft === undefined ? days : Math.min(out.daysLeft, days);
      const w = expiryWarning(days, status?.renewal_url ?? status?.renewalURL, warnDays);
      if (w) out.warnings.push(w);
    }
  }
  return out;
}

// expiryWarning words a certificate's days left, or returns "" when it is
// more than warnDays away.
export function expiryWarning(daysLeft, renewalURL, warnDays = RENEW_DAYS) {
  if (!Number.isInteger(daysLeft) || daysLeft > warnDays) return "";
  const renew = renewalURL ? ` Renew it at ${renewalURL}.` : " Ask your Registration Authority to renew it.";
  if (daysLeft < 0) return "Your card's certificate has expired." + renew;
  if (daysLeft === 0) return "Your card's certificate expires today." + renew;
  return `Your card's certificate expires in ${daysLeft === 1 ? "1 day" : `${daysLeft} days`}.` + renew;
}
