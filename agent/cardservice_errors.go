package agent

import (
	"context"
	"errors"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/pcsc"
)

// Code is a stable error code of the sign-in API (docs/protocol.md). Codes are
// only ever added; a page may rely on every one listed here.
type Code string

const (
	CodeUserCancelled      Code = "user_cancelled"      // the user cancelled the PIN prompt
	CodeTimeout            Code = "timeout"             // the PIN prompt or the request timed out
	CodePINBlocked         Code = "pin_blocked"         // the card's PIN is blocked
	CodeWrongPIN           Code = "wrong_pin"           // the card refused the PIN; TriesLeft says how many are left
	CodePINFormat          Code = "pin_format"          // the PIN entered has a format the card cannot take (no try spent)
	CodeNoCard             Code = "no_card"             // no card (or no reader) present
	CodeCardRemoved        Code = "card_removed"        // the card was removed during the operation
	CodeBusy               Code = "busy"                // another operation is in progress on the card
	CodeRateLimited        Code = "rate_limited"        // too many PIN prompts for this origin; try later
	CodeNotAllowed         Code = "not_allowed"         // the request is not permitted
	CodeBadRequest         Code = "bad_request"         // the request is malformed or names a refused field
	CodeUnsupportedCard    Code = "unsupported_card"    // the card (or its key) is not one cardagent can use
	CodeNoCertificate      Code = "no_certificate"      // the card has no authentication certificate
	CodePromptUnavailable  Code = "prompt_unavailable"  // no PIN prompt can be shown on this desktop
	CodeServiceUnavailable Code = "service_unavailable" // the smart-card service (pcscd, SCardSvr) is not running
	CodeCardError          Code = "card_error"          // the card or reader failed
	CodeInternalError      Code = "internal_error"      // anything else
)

// Error is a failure with a stable code and a message safe to show to a web
// page. The cause (Err) is for logs only and never goes on the wire.
type Error struct {
	Code    Code
	Message string
	// TriesLeft is the PIN tries left for CodeWrongPIN (-1 when the card does not say).
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

// Sentinel errors of the card service, matchable with errors.Is.
var (
	ErrBusy              = &Error{Code: CodeBusy, Message: "another card operation is in progress", TriesLeft: -1}
	ErrRateLimited       = &Error{Code: CodeRateLimited, Message: "too many PIN requests from this site; wait a minute and try again", TriesLeft: -1}
	ErrBadChallenge      = &Error{Code: CodeBadRequest, Message: "challenge must be base64url (no padding) of at least 32 bytes, at most 256 characters", TriesLeft: -1}
	ErrNoCertificate     = &Error{Code: CodeNoCertificate, Message: "the card has no authentication certificate", TriesLeft: -1}
	ErrPromptUnavailable = &Error{Code: CodePromptUnavailable, Message: "no PIN prompt is available on this desktop", TriesLeft: -1}
)

// messages are the safe messages for codes whose cause is a lower layer's error.
var messages = map[Code]string{
	CodeUserCancelled:      "PIN entry was cancelled",
	CodeTimeout:            "PIN entry timed out",
	CodePINBlocked:         "the card's PIN is blocked; it must be unblocked (PUK or Registration Authority)",
	CodeWrongPIN:           "wrong PIN",
	CodePINFormat:          "the PIN entered has a format the card cannot take",
	CodeNoCard:             "no smart card is inserted",
	CodeCardRemoved:        "the card was removed",
	CodeUnsupportedCard:    "this card is not supported",
	CodePromptUnavailable:  "no PIN prompt is available on this desktop",
	CodeServiceUnavailable: "the smart-card service is not running",
	CodeCardError:          "the card did not complete the operation",
	CodeInternalError:      "internal error",
	CodeBadRequest:         "bad request",
	CodeNotAllowed:         "not allowed",
	CodeBusy:               "another card operation is in progress",
	CodeRateLimited:        "too many requests",
}

// Message returns the safe default message for code.
func Message(code Code) string {
	if m, ok := messages[code]; ok {
		return m
	}
	return string(code)
}

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
	mk := func(c Code) *Error { return &Error{Code: c, Message: Message(c), TriesLeft: -1, Err: err} }
	var auth *pcsc.AuthError
	switch {
	case errors.As(err, &auth) && !auth.PUK:
		if auth.Retries == 0 {
			return mk(CodePINBlocked)
		}
		e := mk(CodeWrongPIN)
		e.TriesLeft = auth.Retries
		return e
	case errors.Is(err, pcsc.ErrPINBlocked):
		return mk(CodePINBlocked)
	case errors.Is(err, pcsc.ErrCardRemoved), errors.Is(err, pcsc.ErrCardReset):
		return mk(CodeCardRemoved)
	case errors.Is(err, pcsc.ErrNoCard), errors.Is(err, pcsc.ErrNoReader):
		return mk(CodeNoCard)
	case errors.Is(err, pcsc.ErrServiceUnavailable):
		return mk(CodeServiceUnavailable)
	case errors.Is(err, pcsc.ErrPINFormat):
		return mk(CodePINFormat)
	case errors.Is(err, pcsc.ErrUnsupportedCard), errors.Is(err, pcsc.ErrUnsupportedAlgorithm):
		return mk(CodeUnsupportedCard)
	case errors.Is(err, prompt.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return mk(CodeTimeout)
	case errors.Is(err, prompt.ErrUnavailable):
		return mk(CodePromptUnavailable)
	case errors.Is(err, prompt.ErrCancelled), errors.Is(err, pcsc.ErrCancelled), errors.Is(err, context.Canceled):
		return mk(CodeUserCancelled)
	case errors.Is(err, pcsc.ErrCardUnresponsive), errors.Is(err, pcsc.ErrSharingViolation), errors.Is(err, pcsc.ErrNotFound):
		return mk(CodeCardError)
	}
	var se *pcsc.StatusError
	if errors.As(err, &se) {
		return mk(CodeCardError)
	}
	return mk(CodeInternalError)
}
