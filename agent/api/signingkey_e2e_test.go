package api

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/drivers"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// TestSigningKeyCannotSignIn: the card's signing key (9C, certificate from
// Signing G2 with nonRepudiation), read and used through pcscd and the PIV
// driver, signs exactly what a sign-in token needs; the verifier refuses
// it, while the same made with the authentication key (9A) verifies.
func TestSigningKeyCannotSignIn(t *testing.T) {
	p := pcsctest.Require(t)
	card, pki := e2eCard(t)
	p.Insert(t, 0, card, vcard.Options{})
	p.WaitCard(t, 0, true)
	ctx := context.Background()
	sess, err := pcsc.Open(ctx, nil, pcsctest.ReaderNames[0])
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := drivers.Open(ctx, zap.NewNop(), sess, drivers.Options{})
	if err != nil {
		sess.Close()
		t.Fatal(err)
	}
	defer c.Close()
	certs, err := c.Certificates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[pcsc.KeyRef]*x509.Certificate{}
	for _, cc := range certs {
		byKey[cc.Key] = cc.Cert
	}
	v := newVerifier(t, pki)
	v.AuthenticationCAs = []*x509.Certificate{pki.AuthCA}
	for _, tc := range []struct {
		key  pcsc.KeyRef
		want token.Reason
	}{{pcsc.KeyAuthentication, ""}, {pcsc.KeySignature, token.ReasonBadKeyUsage}} {
		cert := byKey[tc.key]
		if cert == nil {
			t.Fatalf("no certificate for key %s on the card (%d certificates)", tc.key, len(certs))
		}
		ch, err := v.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		digest, err := token.Digest(token.RS256, goodOrigin, ch)
		if err != nil {
			t.Fatal(err)
		}
		key, err := c.PrivateKey(tc.key, func() ([]byte, error) { return []byte(markerPIN), nil })
		if err != nil {
			t.Fatal(err)
		}
		sig, err := key.Sign(rand.Reader, digest, crypto.SHA256)
		if err != nil {
			t.Fatalf("signing with %s: %v", tc.key, err)
		}
		tok := &token.Token{Format: token.Format, Algorithm: token.RS256, Origin: goodOrigin,
			Certificate: token.EncodeBinary(cert.Raw), Signature: token.EncodeBinary(sig)}
		_, err = v.Verify(tok, goodOrigin, ch)
		if got := token.ReasonOf(err); got != tc.want || (tc.want == "" && err != nil) {
			t.Errorf("token signed with key %s: %v, want reason %q", tc.key, err, tc.want)
		}
	}
}
