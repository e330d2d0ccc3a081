package demo_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/demo"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// TestPrescriptions: payloads are EPS-style SignedInfo; signatures made as
// the agent makes them verify once, with the signing certificate only.
func TestPrescriptions(t *testing.T) {
	f := newFixture(t)
	s, logs := newSite(t, f, nil)
	creds, err := f.pki.IssueCard(testpki.CardSpec{KeyType: testpki.RSA2048, Surname: "PRESCRIBER", Forename: "PAT", DaysLeft: 365})
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"RS1", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			var prep demo.PrepareResponse
			if res := call(t, s, "POST", "/api/prescriptions", "application/json", siteOrigin, demo.PrepareRequest{Count: 3, Algorithm: alg}, &prep); res.StatusCode != 200 || len(prep.Payloads) != 3 {
				t.Fatalf("prepare: %d %+v", res.StatusCode, prep)
			}
			h := map[string]crypto.Hash{"RS1": crypto.SHA1, "RS256": crypto.SHA256}[alg]
			signWith := func(key crypto.Signer) []map[string]string {
				var sigs []map[string]string
				for _, p := range prep.Payloads {
					si, err := base64.StdEncoding.DecodeString(p.Payload)
					if err != nil || !strings.HasPrefix(string(si), `<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#">`) {
						t.Fatalf("payload %q: %v", si, err)
					}
					d := h.New()
					d.Write(si)
					sig, err := key.Sign(rand.Reader, d.Sum(nil), h)
					if err != nil {
						t.Fatal(err)
					}
					sigs = append(sigs, map[string]string{"id": p.ID, "signature": base64.StdEncoding.EncodeToString(sig)})
				}
				return sigs
			}
			body := func(cert []byte, sigs []map[string]string) map[string]any {
				return map[string]any{"algorithm": alg, "certificate": base64.StdEncoding.EncodeToString(cert), "signatures": sigs}
			}
			var out map[string]any
			// The authentication certificate is refused, whatever the signature.
			call(t, s, "POST", "/api/prescriptions/verify", "application/json", siteOrigin, body(creds.AuthCert.Raw, signWith(creds.AuthKey)), &out)
			if out["error"] != "certificate" {
				t.Errorf("authentication certificate: %v", out)
			}
			// A signature by another key is refused.
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			out = nil
			call(t, s, "POST", "/api/prescriptions/verify", "application/json", siteOrigin, body(creds.SignCert.Raw, signWith(other)), &out)
			if out["error"] != "signature" {
				t.Errorf("wrong key: %v", out)
			}
			good := body(creds.SignCert.Raw, signWith(creds.SignKey))
			var ok demo.SignedResponse
			if res := call(t, s, "POST", "/api/prescriptions/verify", "application/json", siteOrigin, good, &ok); res.StatusCode != 200 || ok.Verified != 3 || ok.Holder == "" {
				t.Fatalf("verify: %d %+v", res.StatusCode, ok)
			}
			// Each payload is consumed by its verification.
			out = nil
			call(t, s, "POST", "/api/prescriptions/verify", "application/json", siteOrigin, good, &out)
			if out["error"] != "unknown_payload" {
				t.Errorf("replayed: %v", out)
			}
		})
	}
	if logs.FilterMessage("prescriptions signed").Len() != 2 {
		t.Errorf("want two \"prescriptions signed\" log lines")
	}
	var out map[string]any
	if res := call(t, s, "POST", "/api/prescriptions", "application/json", siteOrigin, demo.PrepareRequest{Count: 21, Algorithm: "RS256"}, &out); res.StatusCode != 400 {
		t.Errorf("21 prescriptions: %d", res.StatusCode)
	}
}
