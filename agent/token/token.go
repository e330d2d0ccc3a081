// Package token defines cardagent's authentication token and verifies it.
//
// The token is what the card signs for a sign-in page; Verifier is how a
// relying party checks it.
//
// The card signs a digest over the origin of the page and the challenge the
// relying party issued, so a phishing site cannot relay a challenge (its
// origin differs) and a token cannot be replayed (the challenge is single-use):
//
//	tbs    = "cardagent-auth-v1" || 0x00 || SHA-256(origin) || SHA-256(challenge)
//	digest = H(tbs), with H the algorithm's hash (SHA-256 for RS256/PS256/ES256, SHA-384 for ES384)
//
// origin is the ASCII serialisation of the page's origin exactly as the
// browser sent it in the WebSocket handshake ("https://signin.example.nhs.uk",
// no trailing slash, port only when not the default); challenge is the
// base64url string the relying party issued, as ASCII bytes (its text, not
// the bytes it decodes to).
//
// Every binary field of the token (certificate, chain, signature) is
// base64url without padding (RFC 4648 section 5, as JOSE uses it); ES256 and
// ES384 signatures are JOSE's raw r||s, each half left-padded to the
// curve's size (64 and 96 bytes).
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 for ES384
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"

	"github.com/cardagent/cardagent/agent/wire"
)

// Format is the token's format and version tag.
const Format = "cardagent-auth-token/1"

// Domain separates these signatures from any other use of the card's key.
const Domain = "cardagent-auth-v1"

// Algorithms (JOSE names).
const (
	RS256 = "RS256" // RSA PKCS#1 v1.5 with SHA-256 (every NHS card, series 8 included)
	PS256 = "PS256" // RSA-PSS with SHA-256, salt length 32
	ES256 = "ES256" // ECDSA P-256 with SHA-256, signature raw r||s (64 bytes)
	ES384 = "ES384" // ECDSA P-384 with SHA-384, signature raw r||s (96 bytes)
)

// Token is what the agent returns for `authenticate` (JSON over the WebSocket).
type Token struct {
	Format string `json:"format"`
	// Algorithm is one of RS256, PS256, ES256, ES384.
	Algorithm string `json:"algorithm"`
	// Certificate is the authentication certificate (DER, base64url without padding).
	Certificate string `json:"certificate"`
	// Chain holds intermediate certificates (DER, base64url without padding)
	// that may help the relying party build the path; it may be empty, and
	// the relying party supplies its own intermediates (the verifier never
	// trusts a certificate for being here).
	Chain []string `json:"chain,omitempty"`
	// Origin is the origin the agent bound the signature to (informational: the
	// verifier uses the origin it expects, never this field).
	Origin string `json:"origin"`
	// Signature is the signature (base64url without padding): PKCS#1 v1.5
	// or PSS bytes for RS256/PS256, raw r||s for ES256/ES384.
	Signature string `json:"signature"`
}

// The protocol's one encoding of binary fields, base64url without padding,
// is decided in agent/wire (which the tray and other clients link without
// this package); these names are kept for relying parties.

// ErrEncoding is a binary field that is not base64url without padding.
var ErrEncoding = wire.ErrEncoding

// EncodeBinary is wire.EncodeBinary.
func EncodeBinary(b []byte) string { return wire.EncodeBinary(b) }

// DecodeBinary is wire.DecodeBinary.
func DecodeBinary(s string) ([]byte, error) { return wire.DecodeBinary(s) }

// Binary is wire.Binary: bytes that encode to JSON as base64url without
// padding.
type Binary = wire.Binary

// ecdsaSize is the byte length of r and s for a curve.
func ecdsaSize(pub *ecdsa.PublicKey) int { return (pub.Curve.Params().BitSize + 7) / 8 }

// ECDSARaw turns an ASN.1 DER ECDSA signature (what card drivers return)
// into JOSE's raw r||s for pub's curve.
func ECDSARaw(pub *ecdsa.PublicKey, der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, errors.New("malformed ECDSA signature")
	}
	n := ecdsaSize(pub)
	if sig.R.BitLen() > 8*n || sig.S.BitLen() > 8*n {
		return nil, errors.New("ECDSA signature too long for the curve")
	}
	out := make([]byte, 2*n)
	sig.R.FillBytes(out[:n])
	sig.S.FillBytes(out[n:])
	return out, nil
}

// Hash returns the hash an algorithm uses.
func Hash(alg string) (crypto.Hash, error) {
	switch alg {
	case RS256, PS256, ES256:
		return crypto.SHA256, nil
	case ES384:
		return crypto.SHA384, nil
	}
	return 0, fmt.Errorf("unknown token algorithm %q", alg)
}

// ToBeSigned builds the bytes whose hash the card signs.
func ToBeSigned(origin, challenge string) []byte {
	o := sha256.Sum256([]byte(origin))
	c := sha256.Sum256([]byte(challenge))
	tbs := make([]byte, 0, len(Domain)+1+64)
	tbs = append(tbs, Domain...)
	tbs = append(tbs, 0)
	tbs = append(tbs, o[:]...)
	return append(tbs, c[:]...)
}

// Digest is the digest the card signs for alg.
func Digest(alg, origin, challenge string) ([]byte, error) {
	h, err := Hash(alg)
	if err != nil {
		return nil, err
	}
	hh := h.New()
	hh.Write(ToBeSigned(origin, challenge))
	return hh.Sum(nil), nil
}
