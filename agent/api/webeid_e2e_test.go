package api

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// verifyWebEID checks a Web eID authentication token as Web eID's format
// specification describes it, independently of this repository's token
// package: the five fields, the certificate (standard base64 DER) chaining
// to roots for client authentication, and the signature (standard base64)
// over hash(hash(origin) || hash(nonce)) with the algorithm's hash; ECDSA
// signatures are raw r||s.
func verifyWebEID(raw []byte, origin, nonce string, roots, inter *x509.CertPool) (*x509.Certificate, error) {
	var tok struct {
		UnverifiedCertificate string `json:"unverifiedCertificate"`
		Algorithm             string `json:"algorithm"`
		Signature             string `json:"signature"`
		Format                string `json:"format"`
		AppVersion            string `json:"appVersion"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tok); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if tok.Format != "web-eid:1.0" || tok.AppVersion == "" || tok.UnverifiedCertificate == "" || tok.Signature == "" {
		return nil, fmt.Errorf("token fields: %+v", tok)
	}
	der, err := base64.StdEncoding.DecodeString(tok.UnverifiedCertificate)
	if err != nil {
		return nil, fmt.Errorf("unverifiedCertificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(tok.Signature)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var h func() hash.Hash
	var ch crypto.Hash
	switch tok.Algorithm {
	case "RS256", "ES256", "PS256":
		h, ch = sha256.New, crypto.SHA256
	case "ES384":
		h, ch = sha512.New384, crypto.SHA384
	default:
		return nil, fmt.Errorf("algorithm %q", tok.Algorithm)
	}
	sum := func(b []byte) []byte { x := h(); x.Write(b); return x.Sum(nil) }
	digest := sum(append(sum([]byte(origin)), sum([]byte(nonce))...))
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if tok.Algorithm == "PS256" {
			return cert, rsa.VerifyPSS(pub, ch, digest, sig, nil)
		}
		return cert, rsa.VerifyPKCS1v15(pub, ch, digest, sig)
	case *ecdsa.PublicKey:
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n || !ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
			return nil, errors.New("ECDSA signature does not verify")
		}
		return cert, nil
	}
	return nil, fmt.Errorf("key %T", cert.PublicKey)
}

// webEIDNonce is a challenge nonce as Web eID's server libraries issue it:
// 32 random bytes in standard base64 (44 characters, padded).
func webEIDNonce(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestEndToEndWebEID: authenticate with "format": "web-eid:1.0" returns Web
// eID's token for RSA and ECDSA cards, which the independent verifier
// accepts for the handshake's origin and the nonce, and refuses for another
// origin or nonce. Bad nonces are refused before any prompt.
func TestEndToEndWebEID(t *testing.T) {
	p := pcsctest.Require(t)
	pki, err := e2ePKI()
	if err != nil {
		t.Fatal(err)
	}
	sw := prompttest.NewSwitch(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(vpiv.DefaultPIN), nil }))
	a := startAgent(t, sw, Options{})
	c := a.client(t, goodOrigin)
	for _, kt := range []testpki.KeyType{testpki.RSA2048, testpki.P256, testpki.P384} {
		t.Run(string(kt), func(t *testing.T) {
			card, err := vpiv.NewNHS(pki, testpki.CardSpec{UUID: "555253521112", Surname: "WEB", Forename: "EID", DaysLeft: 400, KeyType: kt})
			if err != nil {
				t.Fatal(err)
			}
			slot := p.Insert(t, 0, card, vcard.Options{})
			a.waitCard(t, wire.CardReady)
			defer func() {
				slot.Remove()
				a.waitCard(t, "")
			}()
			nonce := webEIDNonce(t)
			c.send(t, map[string]any{"id": "w", "type": "authenticate", "challenge": nonce, "format": "web-eid:1.0"})
			m := c.reply(t, "w")
			raw, _ := json.Marshal(m["token"])
			cert, err := verifyWebEID(raw, goodOrigin, nonce, pki.Roots(), pki.Intermediates())
			if err != nil {
				t.Fatalf("Web eID token %s does not verify: %v (reply %v)", raw, err, m)
			}
			if cert.Subject.CommonName != "555253521112_WEB_EID" {
				t.Errorf("certificate %s", cert.Subject)
			}
			// cardagent's own verifier (cardagent verify) accepts it too.
			store := token.NewMemoryStore()
			if err := store.Add(nonce, time.Minute); err != nil {
				t.Fatal(err)
			}
			wt, err := token.ParseWebEIDToken(raw)
			if err != nil {
				t.Fatal(err)
			}
			v := &token.Verifier{Roots: pki.Roots(), Intermediates: pki.Intermediates(), Challenges: store}
			if res, err := v.VerifyWebEID(wt, goodOrigin, nonce); err != nil || res.Holder.UUID != "555253521112" {
				t.Errorf("token.Verifier.VerifyWebEID: %v", err)
			}
			if _, err := verifyWebEID(raw, "https://evil.example", nonce, pki.Roots(), pki.Intermediates()); err == nil {
				t.Error("verifies for another origin")
			}
			if _, err := verifyWebEID(raw, goodOrigin, webEIDNonce(t), pki.Roots(), pki.Intermediates()); err == nil {
				t.Error("verifies for another nonce")
			}
		})
	}
	calls := sw.Calls()
	for _, bad := range []any{"short", strings.Repeat("A", 129), webEIDNonce(t)[:20] + "\r\n" + webEIDNonce(t)[:24], 7} {
		c.send(t, map[string]any{"id": "bad", "type": "authenticate", "challenge": bad, "format": "web-eid:1.0"})
		if m := c.reply(t, "bad"); errCode(m) != "bad_request" {
			t.Errorf("nonce %q: %v", bad, m)
		}
	}
	c.send(t, map[string]any{"id": "fmt", "type": "authenticate", "challenge": testChallenge, "format": "jwt"})
	if m := c.reply(t, "fmt"); errCode(m) != "bad_request" || m["type"] != "authenticate" {
		t.Errorf("unknown format: %v", m)
	}
	if sw.Calls() != calls {
		t.Error("prompted for a refused request")
	}
}
