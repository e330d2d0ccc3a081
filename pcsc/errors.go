// Package pcsc is cardagent's smart-card layer.
//
// It has PC/SC access over github.com/ebfe/scard, reader and card
// monitoring, card identification, APDU exchange, and the Card interface
// that card drivers implement.
//
// Nothing outside pcsc/ sees an APDU: the agent works with Card and with
// crypto.Signer keys.
package pcsc

import (
	"errors"
	"fmt"
)

// Errors every part of the smart-card layer returns, matchable with errors.Is.
var (
	// ErrServiceUnavailable: the PC/SC service (pcscd, Windows' SCardSvr) is not running or went away.
	ErrServiceUnavailable = errors.New("no smart-card service running")
	// ErrNoReader: no smart-card reader is connected.
	ErrNoReader = errors.New("no smart-card reader")
	// ErrNoCard: the reader holds no card.
	ErrNoCard = errors.New("no card in the reader")
	// ErrCardRemoved: the card was removed during (or before) the operation.
	ErrCardRemoved = errors.New("card removed")
	// ErrCardReset: another program reset the card; the operation was not completed.
	ErrCardReset = errors.New("card was reset by another program")
	// ErrCardUnresponsive: the card does not answer (mute, or a broken contact).
	ErrCardUnresponsive = errors.New("card does not respond")
	// ErrNoAnswer: the card did not answer a command within the APDU
	// timeout (pcsc.Conn); nothing more is sent to it until it is taken
	// out. It matches ErrCardUnresponsive too.
	ErrNoAnswer = fmt.Errorf("%w: no answer to a command", ErrCardUnresponsive)
	// ErrSharingViolation: another program holds the card exclusively.
	ErrSharingViolation = errors.New("card is in use by another program")
	// ErrUnsupportedCard: the card is not one cardagent has a driver for.
	ErrUnsupportedCard = errors.New("unsupported card")
	// ErrNotFound: the requested object (certificate, key, file) is not on the card.
	ErrNotFound = errors.New("object not found on card")
	// ErrPINBlocked: the PIN is blocked (no tries left); the PUK or an RA must unblock it.
	ErrPINBlocked = errors.New("PIN is blocked")
	// ErrPUKBlocked: the PUK (unblock code) is blocked too; only a card reissue helps.
	ErrPUKBlocked = errors.New("PUK is blocked")
	// ErrPINFormat: the PIN (or PUK) has a length or characters the card cannot take. No try was spent.
	ErrPINFormat = errors.New("PIN format not accepted")
	// ErrUnsupportedAlgorithm: the key cannot sign with the requested algorithm or padding.
	ErrUnsupportedAlgorithm = errors.New("algorithm not supported by this key")
	// ErrCancelled: the operation was cancelled (context, or the user cancelled the PIN prompt).
	ErrCancelled = errors.New("operation cancelled")
)

// AuthError is a wrong PIN or PUK: the card rejected it and has Retries tries left.
// It never carries the PIN itself. Retries is -1 when the tries left are unknown
// (a PKCS#11 module only reports low/final-try/locked flags). Retries == 0 means the reference is now blocked;
// in that case errors.Is(err, ErrPINBlocked) (or ErrPUKBlocked for a PUK) is true too.
type AuthError struct {
	Retries int
	PUK     bool // the rejected secret was the PUK, not the PIN
}

func (e *AuthError) Error() string {
	what := "PIN"
	if e.PUK {
		what = "PUK"
	}
	if e.Retries < 0 { // the card (or PKCS#11 module) does not say
		return "wrong " + what
	}
	if e.Retries == 1 {
		return fmt.Sprintf("wrong %s, 1 try left", what)
	}
	return fmt.Sprintf("wrong %s, %d tries left", what, e.Retries)
}

// Is makes a wrong PIN with no retries left match ErrPINBlocked (ErrPUKBlocked for the PUK).
func (e *AuthError) Is(target error) bool {
	if e.Retries != 0 {
		return false
	}
	if e.PUK {
		return target == ErrPUKBlocked
	}
	return target == ErrPINBlocked
}

// StatusError is a card's status word that the driver did not expect.
type StatusError struct {
	SW uint16
}

func (e *StatusError) Error() string { return fmt.Sprintf("card returned status %04X", e.SW) }

// Is maps well-known status words onto the package's sentinel errors.
func (e *StatusError) Is(target error) bool {
	switch e.SW {
	case 0x6A82, 0x6A88: // file or application not found, referenced data not found
		return target == ErrNotFound
	case 0x6983: // authentication method blocked
		return target == ErrPINBlocked
	}
	return false
}
