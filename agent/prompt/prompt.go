// Package prompt asks the user for a PIN on the agent's behalf.
//
// A Prompter is the seam between the agent and whatever asks: the desktop's
// own dialog, which the agent process shows itself (Dialog), or a pinentry
// program speaking the Assuan protocol (GnuPG's convention). Neither the web
// page nor the tray process ever sees the PIN.
package prompt

import (
	"context"
	"errors"
	"time"
)

// ErrCancelled is returned when the user cancels the prompt, or it is closed
// because the request went away (browser disconnected, card removed).
var ErrCancelled = errors.New("PIN entry cancelled")

// ErrTimeout is returned when the user did not answer in time.
var ErrTimeout = errors.New("PIN entry timed out")

// ErrUnavailable is returned when no prompt can be shown (no display, the
// pinentry program is missing or crashed).
var ErrUnavailable = errors.New("no PIN prompt available")

// Request is what a prompt shows. Every field is safe to display; none is secret.
type Request struct {
	// Origin is the web origin that asked (from the validated handshake), e.g. "https://signin.example.nhs.uk".
	Origin string
	// Holder is the certificate holder's name; CardType says which card ("NHS series 9/10 (PIV)").
	Holder   string
	CardType string
	// Reader is the card's reader, set when several cards are inserted so
	// the prompt says which one it is about ("" shows no reader line).
	Reader string
	// TriesLeft is the number of PIN tries left, or -1 when unknown.
	TriesLeft int
	// Purpose is what the PIN is for, in words: "sign in", "change PIN", ...
	Purpose string
	// Retry is the error message to show after a wrong PIN or a format error ("" for none).
	Retry string
	// Timeout closes the prompt with ErrTimeout; zero means the prompter's default.
	Timeout time.Duration
	// Secret is what is asked: the card's PIN (the zero value), the PUK, or
	// a new PIN (changing or unblocking the PIN). It sets the field's label
	// and the first line of Description.
	Secret Secret
}

// Secret names what a prompt asks for.
type Secret string

// Secrets a prompt can ask for.
const (
	SecretPIN         Secret = ""              // the card's current PIN
	SecretPUK         Secret = "puk"           // the PUK (unblocking code)
	SecretNewPIN      Secret = "new_pin"       // a new PIN
	SecretNewPINAgain Secret = "new_pin_again" // the new PIN once more, to confirm it
)

// Label is the entry field's label: "PIN:", "PUK:", "New PIN:", "New PIN again:".
func (s Secret) Label() string {
	switch s {
	case SecretPUK:
		return "PUK:"
	case SecretNewPIN:
		return "New PIN:"
	case SecretNewPINAgain:
		return "New PIN again:"
	}
	return "PIN:"
}

// Prompter asks the user for a PIN. It returns the PIN as a fresh []byte that
// the caller zeroes after use. Cancelling ctx closes the prompt and returns
// ErrCancelled. Implementations must never log the PIN.
type Prompter interface {
	PIN(ctx context.Context, req Request) ([]byte, error)
}

// Zero overwrites b with zeroes; call it on every PIN buffer after use.
func Zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
