package pcsc

import (
	"context"
	"crypto"
	"crypto/x509"
	"io"
)

// Kind is what identification found on a card.
type Kind string

const (
	KindPIV     Kind = "piv"     // NHS series 9/10 (Idemia PIV) or any NIST SP 800-73 card
	KindSeries8 Kind = "series8" // NHS series 8 (Oberthur AuthentIC / AWP applet)
	KindRetired Kind = "retired" // NHS series 4-6 (Gemalto / JCOP41): recognised, no longer supported
	KindUnknown Kind = "unknown"
)

// CardInfo identifies a card. It is read once per insertion.
type CardInfo struct {
	Kind   Kind
	Reader string
	ATR    []byte
	// Driver names the driver that serves the card ("piv", "series8", "pkcs11").
	Driver string
	// ID is a stable identity for caching: the PIV CHUID GUID (hex), a series 8
	// serial, or the authentication certificate's SHA-256 when the card has neither.
	ID string
	// IDSource says where ID came from ("chuid-guid", "chuid-fascn", "cplc", "certificate").
	IDSource string
	// Applet names the application that answered (for example the AID), for diagnostics.
	Applet string
}

// KeyRef names a private key on the card. For PIV it is the slot ("9a", "9c",
// "9d", "9e", "82".."95"); for series 8 the container/key file; drivers document theirs.
type KeyRef string

// Well-known key references every driver maps onto its own layout.
const (
	KeyAuthentication KeyRef = "9a" // the authentication key, used for sign-in
	KeySignature      KeyRef = "9c" // the digital signature key (non-repudiation)
)

// Certificate is a certificate read from the card with the key it belongs to.
type Certificate struct {
	Key  KeyRef
	Cert *x509.Certificate
	// Label is the card's own label for the object, when it has one.
	Label string
}

// PINStatus is the state of the card's user PIN, read without spending a try.
type PINStatus struct {
	// Retries is the number of tries left, or -1 when the card does not say.
	Retries int
	// Blocked is true when no try is left.
	Blocked bool
	// Verified is true when the PIN is currently verified in the card's security state.
	Verified bool
	// MinLen and MaxLen are the PIN lengths the card accepts (0 when unknown).
	MinLen, MaxLen int
}

// PINFunc supplies the PIN for one operation. It is called at most once per
// operation, before the card is locked, so a prompt never holds the card.
// The driver zeroes the returned bytes after use.
type PINFunc func() ([]byte, error)

// Signer is a key on a card. SignContext runs the whole signing (PIN,
// VERIFY, the signature) in one card transaction bounded by ctx: a caller
// that gives up (the page went away, the request timed out) stops waiting
// for the card. Sign is SignContext with context.Background(), for code
// that only knows crypto.Signer.
type Signer interface {
	crypto.Signer
	SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// Card is what the agent uses for any card, whatever its driver. Every method
// is one PC/SC transaction (exclusive access only for that long). Methods are
// safe for concurrent use; operations on one card are serialised.
type Card interface {
	// Info returns the card's identity, read when the card was opened.
	Info() CardInfo
	// Certificates returns the certificates on the card. They are read once per
	// card and cached; later calls make no card round trip.
	Certificates(ctx context.Context) ([]Certificate, error)
	// PINStatus reads the user PIN's state without spending a try.
	PINStatus(ctx context.Context) (PINStatus, error)
	// PrivateKey returns the key for ref as a Signer. Each signature asks
	// pin for the PIN once, verifies it and signs in one transaction, and resets
	// the card's PIN-verified state afterwards. A wrong PIN is returned as
	// *AuthError and is never retried. A signature that does not verify with
	// the certificate's key is an error, never returned.
	PrivateKey(ref KeyRef, pin PINFunc) (Signer, error)
	// ChangePIN changes the user PIN. A wrong old PIN is an *AuthError.
	ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error
	// UnblockPIN sets a new PIN using the PUK and resets the PIN's retry counter.
	UnblockPIN(ctx context.Context, puk, newPIN []byte) error
	// Close releases the card connection.
	Close() error
}

// Session runs functions inside exclusive PC/SC transactions on one connected card.
type Session interface {
	// Transact begins a transaction, calls fn with a Transmitter valid only
	// during the call, and ends the transaction leaving the card powered.
	Transact(ctx context.Context, fn func(t Transmitter) error) error
	// Reader is the reader's name; ATR the card's answer to reset.
	Reader() string
	ATR() []byte
	// Close disconnects from the card.
	Close() error
}
