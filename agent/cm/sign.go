package cm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/signalr"
	"github.com/cardagent/cardagent/agent/wire"
)

// Reply is requestToSign's result, fields in Credential Management's order.
// Failures are replies too (never hub errors): status_code is 0 only on
// success, and then certificate and signatures are set.
type Reply struct {
	// Certificate is the signing certificate, base64 (standard, padded) of its DER, no PEM armour.
	Certificate string `json:"certificate"`
	// Signatures has one entry per payload, in the request's order; null on failure.
	Signatures []Signature `json:"signatures"`
	// FailedSignatures is [] on success and null on failure (a request is
	// signed whole or not at all).
	FailedSignatures []Signature `json:"failed_signatures"`
	StatusCode       uint32      `json:"status_code"`
	StatusString     string      `json:"status_string"`
	Message          string      `json:"message"`
	// Timestamp is UTC in .NET's round-trip form, 7 fractional digits.
	Timestamp string `json:"timestamp"`
}

// Signature is one payload's signature: base64 (standard, padded) of the raw RSA signature.
type Signature struct {
	ID        string `json:"id"`
	Signature string `json:"signature"`
}

// Status codes. The two 0x5349xxxx codes are Credential Management's own;
// the 0x4341xxxx codes are cardagent's (docs/credential-management.md).
const (
	StatusOK              uint32 = 0
	StatusBadRequest      uint32 = 0x53494703 // the argument is not a readable signing request
	StatusNoCertificate   uint32 = 0x53494705 // no card, or no signing certificate on it
	StatusCancelled       uint32 = 0x43410001 // the user cancelled the PIN prompt
	StatusWrongPIN        uint32 = 0x43410002 // the card refused the PIN; the message gives the tries left
	StatusPINBlocked      uint32 = 0x43410003 // the card's PIN is blocked
	StatusCardRemoved     uint32 = 0x43410004 // the card was removed
	StatusBusy            uint32 = 0x43410005 // another card operation is in progress
	StatusRateLimited     uint32 = 0x43410006 // too many PIN prompts for this origin
	StatusNoPrompt        uint32 = 0x43410007 // no PIN prompt can be shown on this desktop
	StatusTooLarge        uint32 = 0x43410008 // too many payloads, or a payload too large
	StatusAlgorithm       uint32 = 0x43410009 // the algorithm is not RS1 or RS256
	StatusTimeout         uint32 = 0x4341000A // the PIN prompt or the request timed out
	StatusPINFormat       uint32 = 0x4341000B // the PIN typed cannot be a PIN of this card (no try spent)
	StatusUnsupportedCard uint32 = 0x4341000C // the card or its signing key cannot be used
	StatusServiceDown     uint32 = 0x4341000D // the smart-card service is not running
	StatusCardError       uint32 = 0x4341000E // the card or reader failed
	StatusInternal        uint32 = 0x4341000F // anything else
	statusStringOK               = "SUCCESS"
	statusStringError            = "ERROR"
	messageNoCertificate         = "Unable to locate a Smartcard on the local system that contains an appropriate X.509 Digital Certificate that can be used to perform a signing operation. Error Code: (0x53494705) No X.509 Signing certificate found"
	messageBadRequest            = "Failed to process inbound JSON request. Check logs for futher information. Error Code: (0x53494703) An Internal error occurred"
)

// statusOf maps a card service error code to a status code and its short text.
var statusOf = map[wire.Code]struct {
	code uint32
	text string
}{
	wire.CodeNoCard:             {StatusNoCertificate, ""},
	wire.CodeNoCertificate:      {StatusNoCertificate, ""},
	wire.CodeBadRequest:         {StatusBadRequest, ""},
	wire.CodeUserCancelled:      {StatusCancelled, "The PIN prompt was cancelled; the card was not used"},
	wire.CodeWrongPIN:           {StatusWrongPIN, "Wrong PIN"},
	wire.CodePINBlocked:         {StatusPINBlocked, "The card's PIN is blocked; it must be unblocked (PUK or Registration Authority)"},
	wire.CodeCardRemoved:        {StatusCardRemoved, "The card was removed"},
	wire.CodeBusy:               {StatusBusy, "Another card operation is in progress; try again"},
	wire.CodeRateLimited:        {StatusRateLimited, "Too many PIN requests from this site; wait a minute and try again"},
	wire.CodePromptUnavailable:  {StatusNoPrompt, "No PIN prompt can be shown on this desktop"},
	wire.CodeCardAmbiguous:      {StatusNoPrompt, "Several cards are inserted and no prompt here can offer the choice; take out the cards not in use"},
	wire.CodeTimeout:            {StatusTimeout, "The PIN prompt timed out; the card was not used"},
	wire.CodePINFormat:          {StatusPINFormat, "The PIN typed has a format the card cannot take; no try was spent"},
	wire.CodeUnsupportedCard:    {StatusUnsupportedCard, "This card's signing key cannot be used"},
	wire.CodeServiceUnavailable: {StatusServiceDown, "The smart-card service is not running"},
	wire.CodeCardError:          {StatusCardError, "The card did not complete the operation"},
	wire.CodeInternalError:      {StatusInternal, "Internal error"},
}

// errorMessage is the reply's message for a status: Credential Management's
// words for its own codes; for cardagent's, the text and the code in CM's style.
func errorMessage(code uint32, text string, triesLeft int) string {
	switch code {
	case StatusNoCertificate:
		return messageNoCertificate
	case StatusBadRequest:
		return messageBadRequest
	}
	msg := text + "."
	if code == StatusWrongPIN && triesLeft >= 0 {
		msg = "Wrong PIN. " + prompt.TriesLeft(triesLeft) // "2 tries left before the card is blocked."
	}
	return fmt.Sprintf("%s Error Code: (0x%08X)", msg, code)
}

// signingHub is the SignalR hub "signingHub" with its one method.
type signingHub struct {
	log      *zap.Logger
	backend  Backend
	prompter prompt.Prompter
	opts     Options

	mu      sync.Mutex
	limiter *agent.PromptLimiter
}

func newSigningHub(log *zap.Logger, b Backend, p prompt.Prompter, opts Options) *signingHub {
	return &signingHub{log: log, backend: b, prompter: p, opts: opts, limiter: agent.NewPromptLimiter(opts.PromptsPerMinute, nil)}
}

// Invoke runs signingHub.requestToSign (method names compare without case,
// as the stock server's do).
func (h *signingHub) Invoke(ctx context.Context, inv signalr.Invocation) (any, error) {
	if !strings.EqualFold(inv.Method, methodRequestToSign) || len(inv.Args) != 1 {
		return nil, signalr.ErrUnknownMethod
	}
	var arg string
	if err := json.Unmarshal(inv.Args[0], &arg); err != nil {
		return h.failure(StatusBadRequest, "", wire.TriesUnknown), nil
	}
	return h.requestToSign(ctx, inv.Origin, arg), nil
}

func (h *signingHub) requestToSign(ctx context.Context, origin, arg string) *Reply {
	req, err := ParseRequest(arg, Limits{MaxPayloads: h.opts.MaxPayloads, MaxPayloadBytes: h.opts.MaxPayloadBytes})
	if err != nil {
		code := StatusBadRequest
		switch {
		case errors.Is(err, errTooLarge):
			code = StatusTooLarge
		case errors.Is(err, errAlgorithm):
			code = StatusAlgorithm
		}
		h.log.Info("signing request refused", zap.String("origin", origin), zap.String("reason", err.Error()))
		text := ""
		if code == StatusTooLarge {
			text = fmt.Sprintf("At most %d payloads of at most %d bytes each can be signed in one request", h.opts.MaxPayloads, h.opts.MaxPayloadBytes)
		} else if code == StatusAlgorithm {
			text = "The algorithm must be RS1 or RS256"
		}
		return h.failure(code, text, wire.TriesUnknown)
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.RequestTimeout)
	defer cancel()
	docs := make([][]byte, len(req.Payloads))
	for i, p := range req.Payloads {
		docs[i] = p.Data
	}
	p := agent.RateLimited(h.prompter, func() bool { return h.limiter.Allow(origin) })
	res, err := h.backend.SignDocuments(ctx, agent.SignRequest{Origin: origin, Hash: req.Hash, Documents: docs, Noun: "prescription"}, p)
	if err != nil {
		e := agent.Classify(err)
		st, ok := statusOf[e.Code]
		if !ok {
			st = statusOf[wire.CodeInternalError]
		}
		return h.failure(st.code, st.text, e.TriesLeft)
	}
	sigs := make([]Signature, len(res.Signatures))
	for i, sig := range res.Signatures {
		sigs[i] = Signature{ID: req.Payloads[i].ID, Signature: base64.StdEncoding.EncodeToString(sig)}
	}
	return &Reply{
		Certificate:      base64.StdEncoding.EncodeToString(res.Certificate.Raw),
		Signatures:       sigs,
		FailedSignatures: []Signature{},
		StatusCode:       StatusOK,
		StatusString:     statusStringOK,
		Message:          fmt.Sprintf("Signed %d of %d", len(sigs), len(sigs)),
		Timestamp:        netTimestamp(h.opts.Now()),
	}
}

func (h *signingHub) failure(code uint32, text string, triesLeft int) *Reply {
	return &Reply{
		StatusCode:   code,
		StatusString: statusStringError,
		Message:      errorMessage(code, text, triesLeft),
		Timestamp:    netTimestamp(h.opts.Now()),
	}
}

// netTimestamp formats t as .NET's round-trip UTC form: 2023-12-19T09:08:37.6560010Z.
func netTimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}
