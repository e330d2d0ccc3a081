//go:build cgo

package p11

import (
	"testing"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/cardtest"
)

// TestConformanceSoftHSM runs the shared suite's signing cases against a
// fresh SoftHSM2 token per case: RSA-2048 authentication key (9a) and ECDSA
// P-256 signing key (9c, CKA_ALWAYS_AUTHENTICATE).
func TestConformanceSoftHSM(t *testing.T) {
	requireSoftHSM(t)
	algs := append([]cardtest.Alg{cardtest.RSAPKCS1SHA1, cardtest.RSAPSSSHA256Auto, cardtest.RSAPSSSHA512},
		cardtest.RSAAlgorithms()...)
	algs = append(algs, cardtest.OnKey(pcsc.KeySignature, cardtest.ECDSASHA256, cardtest.ECDSASHA384, cardtest.ECDSASHA512)...)
	cardtest.Run(t, cardtest.Fixture{
		Name:       "softhsm2",
		SignOnly:   true,
		Algorithms: algs,
		New: func(t *testing.T, log *zap.Logger) *cardtest.Env {
			tok := newSoftHSM(t)
			c, err := Open(t.Context(), Config{Module: tok.Module, TokenLabel: hsmLabel},
				pcsc.CardInfo{Kind: pcsc.KindSeries8}, log)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return &cardtest.Env{
				Card: c,
				PIN:  []byte(hsmPIN),
				PUK:  []byte(hsmSOPIN),
				Reopen: func(t *testing.T) pcsc.Card {
					c2, err := Open(t.Context(), Config{Module: tok.Module}, pcsc.CardInfo{Kind: pcsc.KindSeries8}, log)
					if err != nil {
						t.Fatalf("reopening: %v", err)
					}
					t.Cleanup(func() { c2.Close() })
					return c2
				},
			}
		},
	})
}
