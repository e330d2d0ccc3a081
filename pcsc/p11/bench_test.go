//go:build cgo && linux

package p11

import (
	"crypto"
	"crypto/rand"
	"testing"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// benchSign measures one "verify + sign": session, C_Login, C_SignInit, C_Sign, C_Logout.
func benchSign(b *testing.B, c *Card, ref pcsc.KeyRef, pin string, apdus func() int) {
	b.Helper()
	k := mustSigner(b, c, ref, staticPIN(pin))
	digest := make([]byte, 32)
	rand.Read(digest)
	if _, err := k.Sign(rand.Reader, digest, crypto.SHA256); err != nil { // warm up
		b.Fatal(err)
	}
	before := 0
	if apdus != nil {
		before = apdus()
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := k.Sign(rand.Reader, digest, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if apdus != nil {
		b.ReportMetric(float64(apdus()-before)/float64(b.N), "APDUs/op")
	}
}

// BenchmarkVerifySignSoftHSM: 9a is RSA-2048 PKCS#1 v1.5; 9c is ECDSA P-256
// with CKA_ALWAYS_AUTHENTICATE (two logins per signature).
func BenchmarkVerifySignSoftHSM(b *testing.B) {
	for _, ref := range []pcsc.KeyRef{pcsc.KeyAuthentication, pcsc.KeySignature} {
		b.Run(string(ref), func(b *testing.B) {
			tok := newSoftHSM(b)
			c, err := Open(b.Context(), Config{Module: tok.Module}, pcsc.CardInfo{}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			benchSign(b, c, ref, hsmPIN, nil)
		})
	}
}

// BenchmarkVerifySignOpenSC: OpenSC's module over the virtual PIV card
// through the private pcscd (9a, PIN once per signature).
func BenchmarkVerifySignOpenSC(b *testing.B) {
	for _, kt := range []testpki.KeyType{testpki.RSA2048, testpki.P256} {
		b.Run(string(kt), func(b *testing.B) {
			o := newOpenSCCard(b, kt, zap.NewNop())
			defer o.card.Close()
			benchSign(b, o.card, pcsc.KeyAuthentication, vpiv.DefaultPIN, o.vcard.APDUCount)
		})
	}
}
