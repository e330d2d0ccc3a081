// Package token defines cardagent's authentication token: what the card
// signs for a sign-in page, and how a relying party verifies it.
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
// base64url string the relying party issued, as ASCII bytes.
package token

import (
	"crypto"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 for ES384
	"fmt"
)

// Format is the token's format and version tag.
const Format = "cardagent-auth-token/1"

// Domain separates these signatures from any other use of the card's key.
const Domain = "cardagent-auth-v1"

// Algorithms (JOSE names).
const (
	RS256 = "RS256" // RSA PKCS#1 v1.5 with SHA-256 (every NHS card, series 8 included)
	PS256 = "PS256" // RSA-PSS with SHA-256, salt length 32
	ES256 = "ES256" // ECDSA P-256 with SHA-256, signature ASN.1 DER
	ES384 = "ES384" // ECDSA P-384 with SHA-384, signature ASN.1 DER
)

// Token is what the agent returns for `authenticate` (JSON over the WebSocket).
type Token struct {
	Format string `json:"format"`
	// Algorithm is one of RS256, PS256, ES256, ES384.
	Algorithm string `json:"algorithm"`
	// Certificate is the authentication certificate (base64 standard encoding of DER).
	Certificate string `json:"certificate"`
	// Chain holds intermediate certificates found on the card (base64 DER), may be empty.
	Chain []string `json:"chain,omitempty"`
	// Origin is the origin the agent bound the signature to (informational: the
	// verifier uses the origin it expects, never this field).
	Origin string `json:"origin"`
	// Signature is base64url (no padding) of the signature.
	Signature string `json:"signature"`
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
