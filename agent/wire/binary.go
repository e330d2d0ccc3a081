package wire

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrEncoding is a binary field that is not base64url without padding.
var ErrEncoding = errors.New("not base64url without padding")

// EncodeBinary encodes b as every binary field of the protocol is: base64url
// without padding.
func EncodeBinary(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// DecodeBinary decodes a base64url string without padding. Unlike Go's
// decoder, which skips CR and LF, it refuses any character outside the
// base64url alphabet (A-Z a-z 0-9 - _), and non-zero trailing bits.
func DecodeBinary(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: character %q at %d", ErrEncoding, c, i)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEncoding, err)
	}
	return b, nil
}

// Binary is bytes that encode to JSON as base64url without padding (Go's
// []byte would give standard base64 with padding).
type Binary []byte

// MarshalJSON implements json.Marshaler.
func (b Binary) MarshalJSON() ([]byte, error) { return json.Marshal(EncodeBinary(b)) }

// UnmarshalJSON implements json.Unmarshaler.
func (b *Binary) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := DecodeBinary(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
