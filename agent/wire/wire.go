// Package wire holds the types the agent shares with other processes: the
// status and events its API and tray channel carry, and the API's error
// codes.
//
// It imports no card code, so a program that only reads the agent's state
// (the tray, a test client) links neither PC/SC nor a card driver. The JSON
// shapes here are the protocol's (docs/protocol.md): fields are only ever
// added.
package wire

import (
	"time"

	"github.com/cardagent/cardagent/agent/certinfo"
)

// ServiceState is the PC/SC service's state as the service last saw it.
type ServiceState string

const (
	ServiceUp      ServiceState = "up"
	ServiceDown    ServiceState = "down"
	ServiceStopped ServiceState = "stopped" // the card service itself is not serving
)

// EventKind names an event, as the protocol does.
type EventKind string

const (
	// EventCardReading is sent as soon as PC/SC reports a card in a reader,
	// before any card I/O (Event.Card.State is "reading", with the ATR): a
	// tray or page can say "reading the card" at once, which matters with a
	// real series 8 card whose reading takes a second. It is followed by
	// EventCardInserted once the card is read, or by EventCardRemoved when
	// the card is pulled first.
	EventCardReading EventKind = "card_reading"
	// EventCardInserted is sent once the agent has read the card (type,
	// holder, certificates, PIN state) or found it unusable; Event.Card holds
	// its state. A card that does not answer PC/SC at all (mute) gets it
	// without a card_reading first.
	EventCardInserted EventKind = "card_inserted"
	// EventCardChanged is sent when what the agent knows of a read card
	// changed without a new insertion: the PIN's tries left or blocked
	// state after a sign-in or a PIN change. Event.Card holds the new state.
	EventCardChanged   EventKind = "card_changed"
	EventCardRemoved   EventKind = "card_removed"
	EventReaderAdded   EventKind = "reader_added"
	EventReaderRemoved EventKind = "reader_removed"
	EventServiceDown   EventKind = "service_down"
	EventServiceUp     EventKind = "service_up"
	// EventActivity: a signing for a prescribing page started or ended
	// (Activity). For the agent's own tray only: the API never sends it to
	// pages, so one page never learns of another origin's signing.
	EventActivity EventKind = "activity"
	// EventSessionEnded: a card that completed a sign-in was removed and did
	// not come back within the grace period, and IT's removal policy is
	// "notify" or "lock". Event.Session names the card, so a relying party
	// can sign its user out. Sent to every page; never with policy "none".
	EventSessionEnded EventKind = "session_ended"
)

// SessionEnd is what a session_ended event says. It names the card no more
// than status did while the card was in (its id and holder), and never the
// origin that signed in: every page gets it.
type SessionEnd struct {
	// CardID is the removed card's id (CardState.ID).
	CardID string `json:"card_id"`
	// Holder is the card's holder, as status reported it (absent when the
	// card's certificates name none).
	Holder *certinfo.Holder `json:"holder,omitempty"`
	// Action is the removal policy in force: "notify", or "lock" when the
	// agent also locks the desktop session.
	Action string `json:"action"`
}

// Event is a change pushed to subscribers.
type Event struct {
	Kind   EventKind  `json:"event"`
	Reader string     `json:"reader,omitempty"`
	Card   *CardState `json:"card,omitempty"`
	// Session is set for EventSessionEnded only.
	Session *SessionEnd `json:"session,omitempty"`
	Time    time.Time   `json:"time"`
}

// Status is the state of readers and cards, from the service's cache (no card I/O).
type Status struct {
	Service           ServiceState `json:"service"`
	ExpiryWarningDays int          `json:"expiry_warning_days"`
	// RenewalURL is where the active environment renews certificates
	// (absent when IT configured none), so a page can link to it.
	RenewalURL string         `json:"renewal_url,omitempty"`
	Readers    []ReaderStatus `json:"readers"`
}

// ReaderStatus is one reader and its card (nil when empty).
type ReaderStatus struct {
	Name string     `json:"name"`
	Card *CardState `json:"card"`
}

// Card states.
const (
	CardReading     = "reading"     // inserted, being read
	CardReady       = "ready"       // read; usable for sign-in
	CardMute        = "mute"        // does not answer
	CardUnsupported = "unsupported" // not a card cardagent serves
	CardFailed      = "error"       // could not be read
)

// CardState describes an inserted card.
type CardState struct {
	State string `json:"state"`
	// ID is the card's stable identity, as `cardagent cards` reports it (the
	// PIV CHUID GUID, the series 8 serial number, or a hash of a
	// certificate); absent until the card is read, and for a card no driver
	// opened.
	ID  string `json:"id,omitempty"`
	ATR string `json:"atr"`
	// Kind is "piv", "series8", "retired" or "unknown"; Type says it in words.
	Kind         string              `json:"kind"`
	Type         string              `json:"type"`
	Holder       *certinfo.Holder    `json:"holder,omitempty"`
	PIN          *PINReport          `json:"pin,omitempty"`
	Certificates []CertificateStatus `json:"certificates"`
	// Hint says what to do about an unusable card.
	Hint string `json:"hint,omitempty"`
}

// Certificate expiry states.
const (
	ExpiryOK       = "ok"
	ExpiryExpiring = "expiring" // within the warning window
	ExpiryExpired  = "expired"
)

// CertificateStatus is a certificate summary with its expiry state.
type CertificateStatus struct {
	certinfo.Summary
	Expiry string `json:"expiry"`
}

// CardCertificates is what the `certificates` request returns: the
// certificates of the card Authenticate would use.
type CardCertificates struct {
	Reader string `json:"reader"`
	// CardID is the card's id (CardState.ID), which a page may pass as
	// "card" to authenticate to sign in with this very card.
	CardID       string              `json:"card_id,omitempty"`
	CardType     string              `json:"card_type"`
	Holder       *certinfo.Holder    `json:"holder,omitempty"`
	Certificates []CertificateStatus `json:"certificates"`
	// Authentication is the DER of the authentication certificate, base64url
	// without padding (the protocol's one encoding of binary fields).
	Authentication Binary `json:"authentication_certificate"`
}

// TriesUnknown is a tries-left count the card did not give.
const TriesUnknown = -1

// PINReport is the user PIN's state, read without spending a try.
type PINReport struct {
	TriesLeft int  `json:"tries_left"` // TriesUnknown when the card does not say
	Blocked   bool `json:"blocked"`
}
