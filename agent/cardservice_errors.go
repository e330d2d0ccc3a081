package agent

import (
	"context"
	"errors"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// Error is a failure with a stable code and a message safe to show to a web
// page. The cause (Err) is for logs only and never goes on the wire.
type Error struct {
	Code    wire.Code
	Message string
	// TriesLeft is the PIN tries left for CodeWrongPIN (wire.TriesUnknown
	// when the card does not say, and for every other code).
	TriesLeft int
	Err       error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBusy) (and the other sentinels below) match
// any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Err == nil && t.Code == e.Code
}

// NewError returns an *Error with code and message (wire.Message(code) when
// message is ""), err as its cause for the logs, and the PIN tries left
// unknown: only the card's refusal of a PIN (Classify) knows them.
func NewError(code wire.Code, message string, err error) *Error {
	if message == "" {
		message = wire.Message(code)
	}
	return &Error{Code: code, Message: message, TriesLeft: wire.TriesUnknown, Err: err}
}

// Sentinel errors of the card service, matchable with errors.Is.
var (
	ErrBusy              = NewError(wire.CodeBusy, "another card operation is in progress", nil)
	ErrRateLimited       = NewError(wire.CodeRateLimited, "too many PIN requests from this site; wait a minute and try again", nil)
	ErrBadChallenge      = NewError(wire.CodeBadRequest, "challenge must be base64url (no padding) of at least 32 bytes, at most 256 characters", nil)
	ErrNoCertificate     = NewError(wire.CodeNoCertificate, "the card has no authentication certificate", nil)
	ErrPromptUnavailable = NewError(wire.CodePromptUnavailable, "no PIN prompt is available on this desktop", nil)
)

// Classify maps any error of the card service, the PC/SC layer or the prompt
// to an *Error with a stable code. nil gives nil.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	mk := func(c wire.Code) *Error { return NewError(c, "", err) }
	var auth *pcsc.AuthError
	switch {
	case errors.As(err, &auth) && !auth.PUK:
		if auth.Retries == 0 {
			return mk(wire.CodePINBlocked)
		}
		e := mk(wire.CodeWrongPIN)
		e.TriesLeft = auth.Retries
		return e
	case errors.Is(err, pcsc.ErrPINBlocked):
		return mk(wire.CodePINBlocked)
	case errors.Is(err, pcsc.ErrCardRemoved), errors.Is(err, pcsc.ErrCardReset):
		return mk(wire.CodeCardRemoved)
	case errors.Is(err, pcsc.ErrNoCard), errors.Is(err, pcsc.ErrNoReader):
		return mk(wire.CodeNoCard)
	case errors.Is(err, pcsc.ErrServiceUnavailable):
		return mk(wire.CodeServiceUnavailable)
	case errors.Is(err, pcsc.ErrPINFormat):
		return mk(wire.CodePINFormat)
	case errors.Is(err, pcsc.ErrUnsupportedCard), errors.Is(err, pcsc.ErrUnsupportedAlgorithm):
		return mk(wire.CodeUnsupportedCard)
	case errors.Is(err, prompt.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return mk(wire.CodeTimeout)
	case errors.Is(err, prompt.ErrUnavailable):
		return mk(wire.CodePromptUnavailable)
	case errors.Is(err, prompt.ErrCancelled), errors.Is(err, pcsc.ErrCancelled), errors.Is(err, context.Canceled):
		return mk(wire.CodeUserCancelled)
	case errors.Is(err, pcsc.ErrCardUnresponsive), errors.Is(err, pcsc.ErrSharingViolation), errors.Is(err, pcsc.ErrNotFound):
		return mk(wire.CodeCardError)
	}
	var se *pcsc.StatusError
	if errors.As(err, &se) {
		return mk(wire.CodeCardError)
	}
	return mk(wire.CodeInternalError)
}
