package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
)

// Protocol is the version of the WebSocket protocol (docs/protocol.md).
const Protocol = 1

// Request types.
const (
	reqHello        = "hello"
	reqStatus       = "status"
	reqCertificates = "certificates"
	reqAuthenticate = "authenticate"
	// typeNone is the type of the reply to a request without a usable type.
	typeNone = "error"
)

// Features lists what every agent offers, for `hello`.
var Features = []string{"status", "certificates", "authenticate", "events", "web-eid:1.0", "card"}

// FeatureSessionEnded is added to Features when IT set a removal policy
// (Options.SessionEnded): the page is sent session_ended.
const FeatureSessionEnded = "session_ended"

// features is what hello lists for these options.
func (o Options) features() []string {
	if o.SessionEnded {
		return append(slices.Clone(Features), FeatureSessionEnded)
	}
	return Features
}

// allowedFields are the fields each request type may carry; any other is refused.
var allowedFields = map[string]map[string]bool{
	reqHello:        {"id": true, "type": true, "protocol": true},
	reqStatus:       {"id": true, "type": true},
	reqCertificates: {"id": true, "type": true, "card": true},
	reqAuthenticate: {"id": true, "type": true, "challenge": true, "format": true, "card": true},
}

// refusedFields are refused with a reason of their own: the PIN never travels
// over the socket, there is no raw-signing API, and the origin comes only
// from the validated handshake.
var refusedFields = map[string]string{
	"pin":    "the PIN is never sent over the socket: the agent asks for it itself",
	"data":   "the agent signs only its own origin-bound digest: there is no raw-signing API",
	"hash":   "the agent signs only its own origin-bound digest: there is no raw-signing API",
	"digest": "the agent signs only its own origin-bound digest: there is no raw-signing API",
	"origin": "the origin is taken from the connection, never from a message",
}

const maxIDLen = 64

// request is one decoded request.
type request struct {
	ID        json.RawMessage
	Type      string
	Challenge string
	Protocol  int
	// Format is the token format authenticate returns: token.Format
	// (default) or token.WebEIDFormat.
	Format string
	// Card is the id (status card.id) of the card a page names; "" for none.
	Card string
}

// errMalformed marks a message that cannot be answered (not JSON, not an
// object, no usable id): it closes the connection.
var errMalformed = errors.New("malformed message")

// errNotJSON is an errMalformed for bytes that are not UTF-8 JSON (close code 1007).
var errNotJSON = fmt.Errorf("%w: not JSON", errMalformed)

// parseRequest decodes a request strictly: one JSON object, every key once,
// an id that is a string or a number, a known type, and only that type's
// fields. It returns errMalformed (wrapped) for a message that cannot be
// answered, or the request with an *agent.Error (bad_request) for one that
// can be answered with an error.
func parseRequest(data []byte) (request, error) {
	var req request
	if !utf8.Valid(data) || !json.Valid(data) {
		return req, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return req, fmt.Errorf("%w: not a JSON object", errMalformed)
	}
	fields := map[string]json.RawMessage{}
	var order []string
	dup := ""
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return req, fmt.Errorf("%w: %v", errMalformed, err)
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return req, fmt.Errorf("%w: %v", errMalformed, err)
		}
		if _, ok := fields[k]; ok {
			if dup == "" {
				dup = k
			}
			continue // the first value counts (the type echoed in the refusal)
		}
		fields[k] = v
		order = append(order, k)
	}
	id, ok := fields["id"]
	if !ok || len(id) > maxIDLen || !(id[0] == '"' || id[0] == '-' || (id[0] >= '0' && id[0] <= '9')) {
		return req, fmt.Errorf("%w: no id (a string or a number of at most %d characters)", errMalformed, maxIDLen)
	}
	req.ID = id
	// Every reply, a refusal included, carries the request's type: the
	// (first) "type" field when it is a string, known or not, and "error"
	// when there is none.
	typeOK := json.Unmarshal(fields["type"], &req.Type) == nil && req.Type != ""
	if !typeOK {
		req.Type = typeNone
	}
	bad := func(format string, a ...any) (request, error) {
		return req, agent.NewError(wire.CodeBadRequest, fmt.Sprintf(format, a...), nil)
	}
	if dup != "" {
		return bad("field %q given twice", dup)
	}
	for _, k := range order {
		if why, ok := refusedFields[k]; ok {
			return bad("field %q refused: %s", k, why)
		}
	}
	if !typeOK {
		return bad("field \"type\" must be a non-empty string")
	}
	allowed, ok := allowedFields[req.Type]
	if !ok {
		return bad("unknown request type")
	}
	for _, k := range order {
		if !allowed[k] {
			return bad("unknown field %q for %q", k, req.Type)
		}
	}
	if v, ok := fields["challenge"]; ok {
		if err := json.Unmarshal(v, &req.Challenge); err != nil {
			return bad("field \"challenge\" must be a string")
		}
	}
	if req.Type == reqAuthenticate && req.Challenge == "" {
		return bad("authenticate needs a challenge")
	}
	if v, ok := fields["format"]; ok {
		if err := json.Unmarshal(v, &req.Format); err != nil || (req.Format != token.Format && req.Format != token.WebEIDFormat) {
			return bad("field \"format\" must be %q or %q", token.Format, token.WebEIDFormat)
		}
	}
	if v, ok := fields["card"]; ok {
		if err := parseCardField(v, &req.Card); err != nil {
			return bad("%s", err.Error())
		}
	}
	if v, ok := fields["protocol"]; ok {
		if err := json.Unmarshal(v, &req.Protocol); err != nil {
			return bad("field \"protocol\" must be an integer")
		}
	}
	return req, nil
}

// Replies. Every reply carries the request's id and type.
type header struct {
	ID   json.RawMessage `json:"id"`
	Type string          `json:"type"`
}

type helloReply struct {
	header
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Protocol int      `json:"protocol"`
	Features []string `json:"features"`
	Origin   string   `json:"origin"`
	// RequestTimeoutSeconds bounds a request, PIN prompt included;
	// PromptTimeoutSeconds is how long the prompt stays open (absent when
	// the prompter's own default applies).
	RequestTimeoutSeconds int `json:"request_timeout_seconds"`
	PromptTimeoutSeconds  int `json:"prompt_timeout_seconds,omitempty"`
}

type statusReply struct {
	header
	wire.Status
}

type certificatesReply struct {
	header
	*wire.CardCertificates
}

type authenticateReply struct {
	header
	Token any `json:"token"` // *token.Token or *token.WebEIDToken
}

// webEIDBackend is a Backend that also makes Web eID tokens (the card
// service does).
type webEIDBackend interface {
	AuthenticateWebEIDCard(ctx context.Context, origin, nonce, card string, p prompt.Prompter) (*token.WebEIDToken, error)
}

type wireError struct {
	Code      wire.Code `json:"code"`
	Message   string    `json:"message"`
	TriesLeft *int      `json:"tries_left,omitempty"`
}

type errorReply struct {
	header
	Error wireError `json:"error"`
}

// errorReplyFor is the one way a request's failure becomes its reply.
func errorReplyFor(h header, err error) errorReply { return errorReply{h, errorFor(err)} }

// eventMessage is a pushed event: {"type":"event","event":"card_inserted",...}.
type eventMessage struct {
	Type string `json:"type"`
	wire.Event
}

// errorFor turns any error into its wire form (code and safe message only).
func errorFor(err error) wireError {
	e := agent.Classify(err)
	w := wireError{Code: e.Code, Message: e.Message}
	if e.Code == wire.CodeWrongPIN && e.TriesLeft >= 0 {
		n := e.TriesLeft
		w.TriesLeft = &n
	}
	return w
}

// Info is what GET /cardagent/v1/info returns.
type Info struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
}
