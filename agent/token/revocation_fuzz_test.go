package token

import (
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// FuzzOCSPAnswer feeds OCSP answers to the parse and nonce reading the
// revocation check does on what a responder sends: no input may panic, and
// a nonce is only ever read from an answer that parsed.
func FuzzOCSPAnswer(f *testing.F) {
	p, err := testpki.New()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	for _, st := range []int{ocsp.Good, ocsp.Revoked, ocsp.Unknown} {
		der, err := ocsp.CreateResponse(p.AuthCA, p.AuthCA, ocsp.Response{Status: st, SerialNumber: big.NewInt(7),
			ThisUpdate: now, NextUpdate: now.Add(time.Hour), RevokedAt: now}, p.AuthCAKey)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der)
	}
	f.Add(ocsp.MalformedRequestErrorResponse)
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := ocsp.ParseResponse(data, nil)
		if err != nil {
			return
		}
		_, _ = responseNonce(resp)
		_ = resp.CheckSignatureFrom(p.AuthCA)
	})
}

// TestOCSPRequestNonce: the request carries a fresh 32-byte nonce in an
// extension the standard parser tolerates.
func TestOCSPRequestNonce(t *testing.T) {
	p, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.IssueCard(testpki.CardSpec{DaysLeft: 10})
	if err != nil {
		t.Fatal(err)
	}
	req1, n1, err := ocspRequestWithNonce(c.AuthCert, p.AuthCA)
	if err != nil {
		t.Fatal(err)
	}
	_, n2, _ := ocspRequestWithNonce(c.AuthCert, p.AuthCA)
	if len(n1) != 32 || string(n1) == string(n2) {
		t.Fatalf("nonces %x %x", n1, n2)
	}
	parsed, err := ocsp.ParseRequest(req1)
	if err != nil || parsed.SerialNumber.Cmp(c.AuthCert.SerialNumber) != 0 {
		t.Fatalf("request %v: %v", parsed, err)
	}
}
