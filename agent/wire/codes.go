package wire

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
	// CodeCardNotFound: the request named a card (by its status id) that is
	// not inserted.
	CodeCardNotFound Code = "card_not_found"
	// CodeCardAmbiguous: several usable cards are inserted and the request
	// named none where the agent cannot ask the user which (certificates).
	CodeCardAmbiguous Code = "card_ambiguous"
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
	CodeCardNotFound:       "the card the request names is not inserted",
	CodeCardAmbiguous:      "several cards are inserted: name one with the \"card\" field",
}

// Message returns the safe default message for code.
func Message(code Code) string {
	if m, ok := messages[code]; ok {
		return m
	}
	return string(code)
}
