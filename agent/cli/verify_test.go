package cli_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/cli"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// joseSign signs digest as a JOSE ES256/ES384 signature: raw r||s, each
// half left-padded to the curve's size (independent of token.ECDSARaw).
func joseSign(t testing.TB, key crypto.Signer, digest []byte) []byte {
	t.Helper()
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("%T is not an ECDSA key", key)
	}
	r, s, err := ecdsa.Sign(rand.Reader, k, digest)
	if err != nil {
		t.Fatal(err)
	}
	n := (k.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*n)
	r.FillBytes(out[:n])
	s.FillBytes(out[n:])
	return out
}

// signToken makes a token as the agent would, and writes it to a file.
func signToken(t *testing.T, dir string, cert *x509.Certificate, key crypto.Signer, origin, challenge string) string {
	t.Helper()
	digest, err := token.Digest(token.ES256, origin, challenge)
	if err != nil {
		t.Fatal(err)
	}
	sig := joseSign(t, key, digest)
	data, err := json.Marshal(token.Token{
		Format:      token.Format,
		Algorithm:   token.ES256,
		Certificate: base64.RawURLEncoding.EncodeToString(cert.Raw),
		Origin:      origin,
		Signature:   base64.RawURLEncoding.EncodeToString(sig),
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(dir, "token-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func TestVerifyCommand(t *testing.T) {
	const origin, challenge = "https://localhost:8443", "Vq2yqJ0c1pKpQ6qA4rI1pXnWbJb3pV0aXy3q9fQe1sE"
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	card, err := pki.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := pki.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: -1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The layout `cardagent-vcard insert --certs-out DIR` writes.
	if err := pki.WritePEM(dir); err != nil {
		t.Fatal(err)
	}
	roots, chain := filepath.Join(dir, testpki.RootFile), filepath.Join(dir, testpki.ChainFile)
	otherRoot := filepath.Join(dir, "other-root.pem")
	if err := os.WriteFile(otherRoot, testpki.CertPEM(selfSignedRoot(t)), 0o644); err != nil {
		t.Fatal(err)
	}

	good := signToken(t, dir, card.AuthCert, card.AuthKey, origin, challenge)
	otherOrigin := signToken(t, dir, card.AuthCert, card.AuthKey, "https://localhost:9443", challenge)
	expiredTok := signToken(t, dir, expired.AuthCert, expired.AuthKey, origin, challenge)
	signingTok := signToken(t, dir, card.SignCert, card.SignKey, origin, challenge)
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"verify", "--origin", origin, "--challenge", challenge, "--roots", roots, "--intermediates", chain}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"valid", with("--token", good), cli.ExitOK, "valid: signed by Cardholder TEST (user ID 999000000001)", ""},
		{"valid json", with("--token", good, "--json"), cli.ExitOK, `"valid": true`, ""},
		{"other origin", with("--token", otherOrigin), cli.ExitFailure, "", "token rejected: origin_mismatch"},
		{"signing certificate", with("--token", signingTok), cli.ExitFailure, "", "token rejected: bad_key_usage"},
		{"valid, authentication CA given", with("--token", good, "--auth-cas", filepath.Join(dir, testpki.AuthCAFile)), cli.ExitOK, "valid: signed by", ""},
		{"issuer not an authentication CA", with("--token", good, "--auth-cas", filepath.Join(dir, testpki.SignCAFile)), cli.ExitFailure, "", "token rejected: untrusted_chain"},
		{"revocation best effort, responder unreachable", with("--token", good), cli.ExitOK, "revocation   unavailable, policy best-effort: OCSP http://ocsp.nhs-test.invalid/", ""},
		{"revocation best effort, JSON", with("--token", good, "--json"), cli.ExitOK, `"policy": "best-effort"`, ""},
		{"revocation off", with("--token", good, "--revocation", "off"), cli.ExitOK, "revocation   not_checked, policy off", ""},
		{"revocation required, responder unreachable", with("--token", good, "--revocation", "required"), cli.ExitFailure, "", "token rejected: revocation_unknown"},
		{"revocation policy unknown", with("--token", good, "--revocation", "sometimes"), cli.ExitUsage, "", "want off, best-effort or required"},
		{"presented for another origin", []string{"verify", "--origin", "https://localhost:9443", "--challenge", challenge, "--roots", roots, "--intermediates", chain, "--token", good},
			cli.ExitFailure, "", "token rejected: origin_mismatch"},
		{"other challenge", []string{"verify", "--origin", origin, "--challenge", "another", "--roots", roots, "--intermediates", chain, "--token", good},
			cli.ExitFailure, "", "token rejected: bad_signature"},
		{"rejected json", with("--token", otherOrigin, "--json"), cli.ExitFailure, `"reason": "origin_mismatch"`, "origin_mismatch"},
		{"expired certificate", with("--token", expiredTok), cli.ExitFailure, "", "token rejected: certificate_expired"},
		{"no intermediates", []string{"verify", "--origin", origin, "--challenge", challenge, "--roots", roots, "--token", good},
			cli.ExitFailure, "", "token rejected: untrusted_chain"},
		{"wrong root", []string{"verify", "--origin", origin, "--challenge", challenge, "--roots", otherRoot, "--token", good},
			cli.ExitFailure, "", "token rejected: untrusted_chain"},
		{"not json", with("--token", garbage), cli.ExitFailure, "", "token rejected: bad_format"},
		{"no token file", with("--token", filepath.Join(dir, "missing.json")), cli.ExitFailure, "", "reading token"},
		{"no roots file", []string{"verify", "--origin", origin, "--challenge", challenge, "--roots", filepath.Join(dir, "none.pem"), "--token", good},
			cli.ExitFailure, "", "reading certificates"},
		{"roots file without certificates", []string{"verify", "--origin", origin, "--challenge", challenge, "--roots", garbage, "--token", good},
			cli.ExitFailure, "", "no PEM certificate"},
		{"no origin", []string{"verify", "--challenge", challenge, "--roots", roots}, cli.ExitUsage, "", "verify needs --origin"},
		{"no challenge", []string{"verify", "--origin", origin, "--roots", roots}, cli.ExitUsage, "", "verify needs --challenge"},
		{"no roots", []string{"verify", "--origin", origin, "--challenge", challenge}, cli.ExitUsage, "", "verify needs --roots"},
		{"origin with slash", []string{"verify", "--origin", origin + "/", "--challenge", challenge, "--roots", roots}, cli.ExitUsage, "", "without path or trailing slash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb strings.Builder
			code := cli.Main(context.Background(), tt.args, &cli.Env{Stdout: &out, Stderr: &errb})
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout containing %q, stderr containing %q",
					code, out.String(), errb.String(), tt.code, tt.stdout, tt.stderr)
			}
		})
	}

	t.Run("web-eid token", func(t *testing.T) {
		// Web eID's construction, written out here: SHA-256 of the two
		// SHA-256 hashes, standard base64, raw r||s.
		o, n := sha256.Sum256([]byte(origin)), sha256.Sum256([]byte(challenge))
		digest := sha256.Sum256(append(o[:], n[:]...))
		data, err := json.Marshal(map[string]string{
			"unverifiedCertificate": base64.StdEncoding.EncodeToString(card.AuthCert.Raw),
			"algorithm":             "ES256",
			"signature":             base64.StdEncoding.EncodeToString(joseSign(t, card.AuthKey, digest[:])),
			"format":                "web-eid:1.0",
			"appVersion":            "https://example.invalid/app/1.0",
		})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "webeid.json")
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb strings.Builder
		if code := cli.Main(context.Background(), with("--token", f, "--json"), &cli.Env{Stdout: &out, Stderr: &errb}); code != 0 || !strings.Contains(out.String(), `"valid": true`) {
			t.Errorf("exit %d: %s %s", code, out.String(), errb.String())
		}
		out.Reset()
		errb.Reset()
		other := []string{"verify", "--origin", "https://localhost:9443", "--challenge", challenge, "--roots", roots, "--intermediates", chain, "--token", f}
		if code := cli.Main(context.Background(), other, &cli.Env{Stdout: &out, Stderr: &errb}); code == 0 || !strings.Contains(errb.String(), "bad_signature") {
			t.Errorf("another origin: exit %d: %s", code, errb.String())
		}
	})

	t.Run("stdin", func(t *testing.T) {
		f, err := os.Open(good)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stdin := os.Stdin
		os.Stdin = f
		defer func() { os.Stdin = stdin }()
		var out, errb strings.Builder
		if code := cli.Main(context.Background(), with("--token", "-", "--json"), &cli.Env{Stdout: &out, Stderr: &errb}); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var res struct {
			Valid       bool
			Holder      struct{ Name, UUID string }
			Certificate struct{ Key, Usage string }
			Origin      string
		}
		if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
			t.Fatal(err)
		}
		if !res.Valid || res.Holder.Name != "Cardholder TEST" || res.Holder.UUID != "999000000001" || res.Origin != origin {
			t.Errorf("result %+v", res)
		}
		if res.Certificate.Key != "9a" || res.Certificate.Usage != "authentication" {
			t.Errorf("certificate key %q usage %q, want 9a, authentication: %s", res.Certificate.Key, res.Certificate.Usage, out.String())
		}
	})
}

// selfSignedRoot is a root with the test root's name but another key.
func selfSignedRoot(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := testpki.Key(testpki.P256, 700)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "NHS TEST Root Authority G2", OrganizationalUnit: []string{"CA"}, Organization: []string{"nhs"}, Country: []string{"GB"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
