package cm

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Request is a parsed requestToSign argument.
type Request struct {
	// Algorithm is "RS1" (RSASSA-PKCS1-v1_5 with SHA-1) or "RS256" (with SHA-256).
	Algorithm string
	Hash      crypto.Hash
	// Payloads are the items to sign, in order: each signature covers the
	// base64-decoded payload bytes.
	Payloads []Payload
}

// Payload is one item: the caller's id and the bytes to sign.
type Payload struct {
	ID   string
	Data []byte
}

// wireRequest is the JSON inside the argument:
// {"algorithm":"RS1","requestType":1,"version":1,"flags":0,"payloads":[{"id":"…","payload":"…"}]}.
// requestType, version and flags are accepted and not interpreted (their
// meaning is not public).
type wireRequest struct {
	Algorithm *string       `json:"algorithm"`
	Payloads  []wirePayload `json:"payloads"`
}

type wirePayload struct {
	ID      *string `json:"id"`
	Payload *string `json:"payload"`
}

// Limits bound a request; they are checked before any prompt.
type Limits struct {
	MaxPayloads     int
	MaxPayloadBytes int
}

// maxIDChars bounds a payload id.
const maxIDChars = 128

// Request errors: errUnreadable is Credential Management's "failed to
// process inbound JSON request"; the others have cardagent's own codes.
var (
	errUnreadable = errors.New("the request is not base64 of a JSON signing request")
	errTooLarge   = errors.New("the request has too many payloads, or a payload is too large")
	errAlgorithm  = errors.New("the algorithm is not RS1 or RS256")
)

// ParseRequest parses requestToSign's argument: base64 (standard alphabet,
// padded) of the JSON request, or the older form, a JWT (three base64url
// segments) whose claims hold the same "algorithm" and "payloads". The JWT's
// signature is not checked: the agent cannot know its key, and the PIN
// prompt, not the token, is what authorises the signing.
func ParseRequest(arg string, lim Limits) (*Request, error) {
	maxArg := lim.MaxPayloads*(lim.MaxPayloadBytes*4/3+maxIDChars+64)*4/3 + 1024
	if len(arg) > maxArg {
		return nil, errTooLarge
	}
	var js []byte
	if parts := strings.Split(arg, "."); len(parts) == 3 {
		b, err := decodeStrict(base64.RawURLEncoding, strings.TrimRight(parts[1], "="), urlAlphabet)
		if err != nil {
			return nil, fmt.Errorf("%w: JWT claims: %v", errUnreadable, err)
		}
		js = b
	} else {
		b, err := decodeStrict(base64.StdEncoding, arg, stdAlphabet)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errUnreadable, err)
		}
		js = b
	}
	if !utf8.Valid(js) {
		return nil, fmt.Errorf("%w: not UTF-8", errUnreadable)
	}
	var w wireRequest
	dec := json.NewDecoder(bytes.NewReader(js))
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %v", errUnreadable, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", errUnreadable)
	}
	if w.Algorithm == nil || w.Payloads == nil {
		return nil, fmt.Errorf("%w: no algorithm or payloads", errUnreadable)
	}
	req := &Request{Algorithm: *w.Algorithm}
	switch *w.Algorithm {
	case "RS1":
		req.Hash = crypto.SHA1
	case "RS256":
		req.Hash = crypto.SHA256
	default:
		return nil, errAlgorithm
	}
	if len(w.Payloads) == 0 {
		return nil, fmt.Errorf("%w: no payloads", errUnreadable)
	}
	if len(w.Payloads) > lim.MaxPayloads {
		return nil, errTooLarge
	}
	seen := map[string]bool{}
	for i, p := range w.Payloads {
		if p.ID == nil || p.Payload == nil {
			return nil, fmt.Errorf("%w: payload %d has no id or payload", errUnreadable, i)
		}
		if *p.ID == "" || utf8.RuneCountInString(*p.ID) > maxIDChars || seen[*p.ID] {
			return nil, fmt.Errorf("%w: payload %d: empty, over-long or repeated id", errUnreadable, i)
		}
		seen[*p.ID] = true
		if base64.StdEncoding.DecodedLen(len(*p.Payload)) > lim.MaxPayloadBytes+2 {
			return nil, errTooLarge
		}
		data, err := decodeStrict(base64.StdEncoding, *p.Payload, stdAlphabet)
		if err != nil {
			return nil, fmt.Errorf("%w: payload %d: %v", errUnreadable, i, err)
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("%w: payload %d is empty", errUnreadable, i)
		}
		if len(data) > lim.MaxPayloadBytes {
			return nil, errTooLarge
		}
		req.Payloads = append(req.Payloads, Payload{ID: *p.ID, Data: data})
	}
	return req, nil
}

const (
	stdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
	urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// decodeStrict decodes s, refusing any character outside alphabet first
// (Go's decoder silently skips CR and LF).
func decodeStrict(enc *base64.Encoding, s, alphabet string) ([]byte, error) {
	if i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(alphabet, r) }); i >= 0 {
		return nil, fmt.Errorf("character %d is not base64", i)
	}
	return enc.Strict().DecodeString(s)
}
