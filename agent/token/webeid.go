package token

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
)

// Web eID authentication tokens (format "web-eid:1.0"), for relying parties
// that already verify them with Web eID's libraries. The construction is Web
// eID's (its authentication token format specification, and its reference
// application):
//
//	digest    = H( H(origin) || H(nonce) )    H = SHA-256 for RS256/PS256/ES256, SHA-384 for ES384
//	signature = the card's signature of digest (RS256: PKCS#1 v1.5 with H's DigestInfo;
//	            ES256/ES384: raw r||s)
//
// origin is the page's origin as in Token, nonce the relying party's
// challenge nonce as the text it issued (its UTF-8 bytes, not decoded).
// unverifiedCertificate and signature are standard base64 with padding, as
// Web eID has them: the one exception to this protocol's base64url.

// WebEIDFormat is Web eID's token format tag.
const WebEIDFormat = "web-eid:1.0"

// WebEIDToken is Web eID's authentication token, field for field.
type WebEIDToken struct {
	UnverifiedCertificate string `json:"unverifiedCertificate"`
	Algorithm             string `json:"algorithm"`
	Signature             string `json:"signature"`
	Format                string `json:"format"`
	AppVersion            string `json:"appVersion"`
}

// WebEIDAppVersion is the appVersion URL for an agent version (informative:
// Web eID validators do not check it).
func WebEIDAppVersion(version string) string {
	return "https://github.com/cardagent/cardagent/releases/" + version
}

// NewWebEIDToken builds the token for a signature (raw r||s for ECDSA) by
// the key of the DER certificate cert.
func NewWebEIDToken(alg string, cert, sig []byte, version string) *WebEIDToken {
	return &WebEIDToken{
		UnverifiedCertificate: base64.StdEncoding.EncodeToString(cert),
		Algorithm:             alg,
		Signature:             base64.StdEncoding.EncodeToString(sig),
		Format:                WebEIDFormat,
		AppVersion:            WebEIDAppVersion(version),
	}
}

// WebEIDDigest is the digest the card signs for a Web eID token.
func WebEIDDigest(alg, origin, nonce string) ([]byte, error) {
	switch alg {
	case RS256, PS256, ES256:
		o, n := sha256.Sum256([]byte(origin)), sha256.Sum256([]byte(nonce))
		d := sha256.Sum256(append(o[:], n[:]...))
		return d[:], nil
	case ES384:
		o, n := sha512.Sum384([]byte(origin)), sha512.Sum384([]byte(nonce))
		d := sha512.Sum384(append(o[:], n[:]...))
		return d[:], nil
	}
	return nil, fmt.Errorf("unknown token algorithm %q", alg)
}
