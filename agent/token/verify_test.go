package token_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

const (
	origin      = "https://signin.example.nhs.uk"
	otherOrigin = "https://signin.example.nhs.uk.evil"
)

// fixture is the test PKI and one card per key type, made once per test binary.
type fixture struct {
	pki   *testpki.PKI
	cards map[testpki.KeyType]*testpki.CardCreds
}

var getFixture = sync.OnceValues(func() (*fixture, error) {
	p, err := testpki.New()
	if err != nil {
		return nil, err
	}
	f := &fixture{pki: p, cards: map[testpki.KeyType]*testpki.CardCreds{}}
	for _, kt := range testpki.KeyTypes {
		c, err := p.IssueCard(testpki.CardSpec{KeyType: kt, DaysLeft: 400})
		if err != nil {
			return nil, err
		}
		f.cards[kt] = c
	}
	return f, nil
})

func fix(t testing.TB) *fixture {
	t.Helper()
	f, err := getFixture()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sign makes a token the way the agent does: the card key signs Digest(alg, origin, challenge).
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

func sign(t testing.TB, cert *x509.Certificate, key crypto.Signer, alg, origin, challenge string) *token.Token {
	t.Helper()
	digest, err := token.Digest(alg, origin, challenge)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := token.Hash(alg)
	var opts crypto.SignerOpts = h
	if alg == token.PS256 {
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	var sig []byte
	if alg == token.ES256 || alg == token.ES384 {
		sig = joseSign(t, key, digest)
	} else if sig, err = key.Sign(rand.Reader, digest, opts); err != nil {
		t.Fatal(err)
	}
	return &token.Token{
		Format:      token.Format,
		Algorithm:   alg,
		Certificate: base64.RawURLEncoding.EncodeToString(cert.Raw),
		Origin:      origin,
		Signature:   base64.RawURLEncoding.EncodeToString(sig),
	}
}

func newVerifier(f *fixture) *token.Verifier {
	return &token.Verifier{Roots: f.pki.Roots(), Intermediates: f.pki.Intermediates(), Challenges: token.NewMemoryStore()}
}

// issueCert issues a certificate from the test authentication CA for key,
// after edit changes the template.
func issueCert(t testing.TB, f *fixture, key crypto.Signer, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "999000000009_CUSTOM_CERT", OrganizationalUnit: []string{"People"}, Organization: []string{"nhs"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.pki.AuthCA, key.Public(), f.pki.AuthCAKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyGood(t *testing.T) {
	f := fix(t)
	tests := []struct {
		alg string
		kt  testpki.KeyType
	}{
		{token.RS256, testpki.RSA2048},
		{token.PS256, testpki.RSA2048},
		{token.RS256, testpki.RSA1024},
		{token.ES256, testpki.P256},
		{token.ES384, testpki.P384},
	}
	for _, tt := range tests {
		t.Run(tt.alg+"/"+string(tt.kt), func(t *testing.T) {
			v := newVerifier(f)
			card := f.cards[tt.kt]
			ch, err := v.NewChallenge()
			if err != nil {
				t.Fatal(err)
			}
			tok := sign(t, card.AuthCert, card.AuthKey, tt.alg, origin, ch)
			res, err := v.Verify(tok, origin, ch)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Holder.Name != "Cardholder TEST" || res.Holder.UUID != "999000000001" {
				t.Errorf("holder %+v", res.Holder)
			}
			if !res.Certificate.Equal(card.AuthCert) || res.Algorithm != tt.alg || res.Origin != origin {
				t.Errorf("result %+v", res)
			}
			if len(res.Chain) != 3 || !res.Chain[2].Equal(f.pki.Root) || !res.Chain[1].Equal(f.pki.AuthCA) {
				t.Errorf("chain has %d certificates, want leaf, Authentication G2, root", len(res.Chain))
			}
			// The same token again is a replay.
			if _, err := v.Verify(tok, origin, ch); !errors.Is(err, token.ErrChallengeReused) {
				t.Errorf("replay: %v, want challenge_reused", err)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	f := fix(t)
	rsaCard, ecCard := f.cards[testpki.RSA2048], f.cards[testpki.P256]
	otherKey, err := testpki.Key(testpki.P256, 600)
	if err != nil {
		t.Fatal(err)
	}
	otherRoot := selfSigned(t, otherKey)
	expiredCreds, err := f.pki.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: -1})
	if err != nil {
		t.Fatal(err)
	}

	type env struct {
		v   *token.Verifier
		ch  string // issued challenge
		tok *token.Token
	}
	good := func(t *testing.T, e *env) *token.Token {
		return sign(t, ecCard.AuthCert, ecCard.AuthKey, token.ES256, origin, e.ch)
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, e *env) // builds e.tok (default: a good ES256 token), may change e.v
		// present overrides the challenge and origin given to Verify.
		challenge, origin string
		want              token.Reason
	}{
		{name: "nil token", setup: func(t *testing.T, e *env) { e.tok = nil }, want: token.ReasonBadFormat},
		{name: "format tag", setup: func(t *testing.T, e *env) { e.tok.Format = "cardagent-auth-token/2" }, want: token.ReasonBadFormat},
		{name: "no format", setup: func(t *testing.T, e *env) { e.tok.Format = "" }, want: token.ReasonBadFormat},
		{name: "signature padded", setup: func(t *testing.T, e *env) { e.tok.Signature += "=" }, want: token.ReasonBadFormat},
		{name: "signature std base64", setup: func(t *testing.T, e *env) {
			e.tok.Signature = strings.NewReplacer("-", "+", "_", "/").Replace(e.tok.Signature) + "+/"
		}, want: token.ReasonBadFormat},
		{name: "no signature", setup: func(t *testing.T, e *env) { e.tok.Signature = "" }, want: token.ReasonBadFormat},
		// Go's base64 decoder skips CR and LF: the verifier must not.
		{name: "signature with CR LF", setup: func(t *testing.T, e *env) {
			e.tok.Signature = e.tok.Signature[:8] + "\r\n" + e.tok.Signature[8:]
		}, want: token.ReasonBadFormat},
		{name: "certificate with a line break", setup: func(t *testing.T, e *env) {
			e.tok.Certificate = e.tok.Certificate[:64] + "\n" + e.tok.Certificate[64:]
		}, want: token.ReasonBadFormat},
		{name: "certificate in standard base64 with padding", setup: func(t *testing.T, e *env) {
			enc := base64.StdEncoding.EncodeToString(ecCard.AuthCert.Raw)
			if !strings.ContainsAny(enc, "+/=") {
				enc += "=" // a certificate whose encodings agree: padding is still refused
			}
			e.tok.Certificate = enc
		}, want: token.ReasonBadFormat},
		{name: "ES256 signature as ASN.1 DER", setup: func(t *testing.T, e *env) {
			d, err := token.Digest(token.ES256, origin, e.ch)
			if err != nil {
				t.Fatal(err)
			}
			der, err := ecCard.AuthKey.Sign(rand.Reader, d, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			e.tok.Signature = base64.RawURLEncoding.EncodeToString(der)
		}, want: token.ReasonBadSignature},
		{name: "certificate not base64", setup: func(t *testing.T, e *env) { e.tok.Certificate = "%%%" }, want: token.ReasonBadFormat},
		{name: "no certificate", setup: func(t *testing.T, e *env) { e.tok.Certificate = "" }, want: token.ReasonBadFormat},
		{name: "chain too long", setup: func(t *testing.T, e *env) { e.tok.Chain = make([]string, 9) }, want: token.ReasonBadFormat},
		{name: "algorithm none", setup: func(t *testing.T, e *env) { e.tok.Algorithm = "none" }, want: token.ReasonUnknownAlgorithm},
		{name: "algorithm HS256", setup: func(t *testing.T, e *env) { e.tok.Algorithm = "HS256" }, want: token.ReasonUnknownAlgorithm},
		{name: "algorithm lower case", setup: func(t *testing.T, e *env) { e.tok.Algorithm = "es256" }, want: token.ReasonUnknownAlgorithm},
		{name: "certificate garbage", setup: func(t *testing.T, e *env) {
			e.tok.Certificate = base64.RawURLEncoding.EncodeToString([]byte("not a certificate"))
		}, want: token.ReasonBadCertificate},
		{name: "chain garbage", setup: func(t *testing.T, e *env) {
			e.tok.Chain = []string{base64.RawURLEncoding.EncodeToString([]byte{0x30, 0x03, 0x02, 0x01, 0x01})}
		}, want: token.ReasonBadCertificate},
		{name: "ES256 with RSA key", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, rsaCard.AuthCert, rsaCard.AuthKey, token.RS256, origin, e.ch)
			e.tok.Algorithm = token.ES256
		}, want: token.ReasonAlgorithmMismatch},
		{name: "RS256 with P-256 key", setup: func(t *testing.T, e *env) { e.tok.Algorithm = token.RS256 }, want: token.ReasonAlgorithmMismatch},
		{name: "ES384 with P-256 key", setup: func(t *testing.T, e *env) { e.tok.Algorithm = token.ES384 }, want: token.ReasonAlgorithmMismatch},
		{name: "challenge never issued", challenge: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", want: token.ReasonUnknownChallenge},
		{name: "empty challenge", challenge: "-", want: token.ReasonUnknownChallenge},
		{name: "challenge used", setup: func(t *testing.T, e *env) {
			if err := e.v.Challenges.Consume(e.ch); err != nil {
				t.Fatal(err)
			}
		}, want: token.ReasonChallengeReused},
		{name: "challenge expired", setup: func(t *testing.T, e *env) {
			s := token.NewMemoryStore()
			start := time.Now()
			s.Now = func() time.Time { return start }
			e.v.Challenges = s
			var err error
			if e.ch, err = s.Issue(time.Minute); err != nil {
				t.Fatal(err)
			}
			e.tok = good(t, e)
			s.Now = func() time.Time { return start.Add(time.Minute) }
		}, want: token.ReasonChallengeExpired},
		{name: "certificate expired", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, expiredCreds.AuthCert, expiredCreds.AuthKey, token.ES256, origin, e.ch)
		}, want: token.ReasonExpired},
		{name: "certificate not yet valid", setup: func(t *testing.T, e *env) {
			e.v.Now = func() time.Time { return ecCard.AuthCert.NotBefore.Add(-time.Minute) }
		}, want: token.ReasonNotYetValid},
		{name: "CA expired at verifier time", setup: func(t *testing.T, e *env) {
			// The leaf is valid but the clock is past the CA's NotAfter: an odd
			// PKI, reported as expired all the same.
			cert := issueCert(t, f, ecCard.AuthKey, func(c *x509.Certificate) { c.NotAfter = f.pki.AuthCA.NotAfter.Add(48 * time.Hour) })
			e.tok = sign(t, cert, ecCard.AuthKey, token.ES256, origin, e.ch)
			e.v.Now = func() time.Time { return f.pki.AuthCA.NotAfter.Add(time.Hour) }
		}, want: token.ReasonExpired},
		{name: "key usage without digitalSignature", setup: func(t *testing.T, e *env) {
			cert := issueCert(t, f, ecCard.AuthKey, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement })
			e.tok = sign(t, cert, ecCard.AuthKey, token.ES256, origin, e.ch)
		}, want: token.ReasonBadKeyUsage},
		{name: "extended key usage serverAuth only", setup: func(t *testing.T, e *env) {
			cert := issueCert(t, f, ecCard.AuthKey, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
			e.tok = sign(t, cert, ecCard.AuthKey, token.ES256, origin, e.ch)
		}, want: token.ReasonBadKeyUsage},
		{name: "signing certificate (9C, Signing G2)", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, ecCard.SignCert, ecCard.SignKey, token.ES256, origin, e.ch)
		}, want: token.ReasonBadKeyUsage},
		{name: "nonRepudiation from the authentication CA", setup: func(t *testing.T, e *env) {
			cert := issueCert(t, f, ecCard.AuthKey, func(c *x509.Certificate) {
				c.KeyUsage |= x509.KeyUsageContentCommitment
				c.ExtKeyUsage = nil
			})
			e.tok = sign(t, cert, ecCard.AuthKey, token.ES256, origin, e.ch)
		}, want: token.ReasonBadKeyUsage},
		{name: "issuer not an authentication CA", setup: func(t *testing.T, e *env) {
			e.v.AuthenticationCAs = []*x509.Certificate{f.pki.SignCA}
		}, want: token.ReasonUntrustedChain},
		{name: "signing certificate without nonRepudiation, AuthenticationCAs set", setup: func(t *testing.T, e *env) {
			e.v.AuthenticationCAs = []*x509.Certificate{f.pki.AuthCA}
			tmpl := *ecCard.SignCert
			tmpl.KeyUsage = x509.KeyUsageDigitalSignature
			der, err := x509.CreateCertificate(rand.Reader, &tmpl, f.pki.SignCA, ecCard.SignKey.Public(), f.pki.SignCAKey)
			if err != nil {
				t.Fatal(err)
			}
			cert, _ := x509.ParseCertificate(der)
			e.tok = sign(t, cert, ecCard.SignKey, token.ES256, origin, e.ch)
		}, want: token.ReasonUntrustedChain},
		{name: "wrong root", setup: func(t *testing.T, e *env) {
			pool := x509.NewCertPool()
			pool.AddCert(otherRoot)
			e.v.Roots = pool
		}, want: token.ReasonUntrustedChain},
		{name: "no intermediate", setup: func(t *testing.T, e *env) { e.v.Intermediates = nil }, want: token.ReasonUntrustedChain},
		{name: "self-signed leaf", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, selfSigned(t, ecCard.AuthKey), ecCard.AuthKey, token.ES256, origin, e.ch)
		}, want: token.ReasonUntrustedChain},
		{name: "tampered signature", setup: func(t *testing.T, e *env) {
			sig, _ := base64.RawURLEncoding.DecodeString(e.tok.Signature)
			sig[len(sig)/2] ^= 1
			e.tok.Signature = base64.RawURLEncoding.EncodeToString(sig)
		}, want: token.ReasonBadSignature},
		{name: "tampered RSA signature", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, rsaCard.AuthCert, rsaCard.AuthKey, token.RS256, origin, e.ch)
			sig, _ := base64.RawURLEncoding.DecodeString(e.tok.Signature)
			sig[0] ^= 0x80
			e.tok.Signature = base64.RawURLEncoding.EncodeToString(sig)
		}, want: token.ReasonBadSignature},
		{name: "PS256 signature labelled RS256", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, rsaCard.AuthCert, rsaCard.AuthKey, token.PS256, origin, e.ch)
			e.tok.Algorithm = token.RS256
		}, want: token.ReasonBadSignature},
		{name: "signature by another key", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, ecCard.AuthCert, otherKey, token.ES256, origin, e.ch)
		}, want: token.ReasonBadSignature},
		{name: "signed over another challenge", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, ecCard.AuthCert, ecCard.AuthKey, token.ES256, origin, "another challenge")
		}, want: token.ReasonBadSignature},
		{name: "made for another origin", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, ecCard.AuthCert, ecCard.AuthKey, token.ES256, otherOrigin, e.ch)
		}, want: token.ReasonOriginMismatch},
		{name: "made for another origin, claims ours", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, ecCard.AuthCert, ecCard.AuthKey, token.ES256, otherOrigin, e.ch)
			e.tok.Origin = origin
		}, want: token.ReasonBadSignature},
		{name: "presented to another origin", origin: otherOrigin, want: token.ReasonOriginMismatch},
		{name: "origin field altered", setup: func(t *testing.T, e *env) { e.tok.Origin = otherOrigin }, want: token.ReasonOriginMismatch},
		{name: "http instead of https", setup: func(t *testing.T, e *env) {
			e.tok = sign(t, ecCard.AuthCert, ecCard.AuthKey, token.ES256, "http://signin.example.nhs.uk", e.ch)
		}, want: token.ReasonOriginMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &env{v: newVerifier(f)}
			var err error
			if e.ch, err = e.v.NewChallenge(); err != nil {
				t.Fatal(err)
			}
			e.tok = good(t, e)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			ch, org := e.ch, origin
			switch tt.challenge {
			case "":
			case "-":
				ch = ""
			default:
				ch = tt.challenge
			}
			if tt.origin != "" {
				org = tt.origin
			}
			res, err := e.v.Verify(e.tok, org, ch)
			if res != nil || err == nil {
				t.Fatalf("Verify accepted the token: %+v", res)
			}
			if got := token.ReasonOf(err); got != tt.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tt.want)
			}
			if !errors.Is(err, &token.VerifyError{Reason: tt.want}) {
				t.Errorf("errors.Is does not match %q: %v", tt.want, err)
			}
			if !strings.HasPrefix(err.Error(), "token rejected: "+string(tt.want)) {
				t.Errorf("message %q", err)
			}
		})
	}
}

// TestVerifyChainInToken: a card that carries its issuing CA verifies
// without configured intermediates.
func TestVerifyChainInToken(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	v := &token.Verifier{Roots: f.pki.Roots(), Challenges: token.NewMemoryStore()}
	ch, err := v.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch)
	tok.Chain = []string{base64.RawURLEncoding.EncodeToString(f.pki.AuthCA.Raw)}
	if _, err := v.Verify(tok, origin, ch); err != nil {
		t.Fatal(err)
	}
}

// TestConsumeBeforeCrypto: a rejected token still uses up its challenge, so
// a challenge is good for one presentation whatever happens.
func TestConsumeBeforeCrypto(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	v := newVerifier(f)
	ch, _ := v.NewChallenge()
	tok := sign(t, card.AuthCert, card.AuthKey, token.ES256, otherOrigin, ch)
	if _, err := v.Verify(tok, origin, ch); !errors.Is(err, token.ErrOriginMismatch) {
		t.Fatalf("first: %v", err)
	}
	tok = sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch)
	if _, err := v.Verify(tok, origin, ch); !errors.Is(err, token.ErrChallengeReused) {
		t.Fatalf("second: %v, want challenge_reused", err)
	}
	// A token that is not even well-formed does not touch the store.
	ch2, _ := v.NewChallenge()
	bad := *tok
	bad.Format = "x"
	if _, err := v.Verify(&bad, origin, ch2); !errors.Is(err, token.ErrBadFormat) {
		t.Fatal(err)
	}
	good := sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch2)
	if _, err := v.Verify(good, origin, ch2); err != nil {
		t.Fatalf("after a malformed attempt: %v", err)
	}
}

func TestVerifyConcurrentReplay(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	v := newVerifier(f)
	ch, _ := v.NewChallenge()
	tok := sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch)
	const n = 32
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := v.Verify(tok, origin, ch)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, token.ErrChallengeReused):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d of %d concurrent presentations accepted, want exactly 1", ok, n)
	}
}

func TestMisconfigured(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	tok := sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, "c")
	tests := []struct {
		name   string
		v      *token.Verifier
		origin string
	}{
		{"no roots", &token.Verifier{Challenges: token.NewMemoryStore()}, origin},
		{"no store", &token.Verifier{Roots: f.pki.Roots()}, origin},
		{"no origin", newVerifier(f), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Verify(tok, tt.origin, "c")
			if !errors.Is(err, token.ErrMisconfigured) || token.ReasonOf(err) != "" {
				t.Errorf("got %v, want ErrMisconfigured", err)
			}
		})
	}
	if _, err := (&token.Verifier{}).NewChallenge(); !errors.Is(err, token.ErrMisconfigured) {
		t.Errorf("NewChallenge without store: %v", err)
	}
}

// failingStore is a shared store that is down.
type failingStore struct{}

func (failingStore) Issue(time.Duration) (string, error) { return "", errors.New("database down") }
func (failingStore) Consume(string) error                { return errors.New("database down") }

func TestStoreFailureIsNotAReason(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	v := newVerifier(f)
	v.Challenges = failingStore{}
	_, err := v.Verify(sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, "c"), origin, "c")
	if err == nil || token.ReasonOf(err) != "" || !strings.Contains(err.Error(), "database down") {
		t.Errorf("got %v, want the store's error without a reason", err)
	}
}

func TestParseToken(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	tok := sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, "c")
	data, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	got, err := token.ParseToken(data)
	if err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("round trip: %v %+v", err, got)
	}
	for _, bad := range []string{"", "{", "[]", `{"format":1}`, `{} x`, `{"signature":"` + strings.Repeat("A", token.MaxTokenSize) + `"}`} {
		if _, err := token.ParseToken([]byte(bad)); !errors.Is(err, token.ErrBadFormat) {
			t.Errorf("ParseToken(%.20q): %v, want bad_format", bad, err)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	good := []string{"https://signin.example.nhs.uk", "http://localhost:8443", "https://127.0.0.1:8443", "https://[::1]:8443", "http://localhost"}
	bad := []string{"", "signin.example.nhs.uk", "https://signin.example.nhs.uk/", "https://signin.example.nhs.uk/path",
		"https://Signin.example.nhs.uk", "ftp://x", "https://x?q", "https://x#f", "https://u@x", "https://x:443", "http://x:80", "https://x:", "null", "https://"}
	for _, s := range good {
		if err := token.CheckOrigin(s); err != nil {
			t.Errorf("CheckOrigin(%q): %v", s, err)
		}
	}
	for _, s := range bad {
		if err := token.CheckOrigin(s); err == nil {
			t.Errorf("CheckOrigin(%q) accepted it", s)
		}
	}
}

func TestPoolFromPEM(t *testing.T) {
	f := fix(t)
	var pemData []byte
	pemData = append(pemData, "junk before\n"...)
	key, _ := testpki.KeyPEM(f.cards[testpki.P256].AuthKey)
	pemData = append(pemData, key...) // skipped: not a certificate
	pemData = append(pemData, testpki.CertPEM(f.pki.Root)...)
	pemData = append(pemData, testpki.CertPEM(f.pki.AuthCA)...)
	certs, err := token.CertificatesFromPEM(pemData)
	if err != nil || len(certs) != 2 || !certs[0].Equal(f.pki.Root) {
		t.Fatalf("got %d certificates, %v", len(certs), err)
	}
	if _, err := token.PoolFromPEM([]byte("no pem here")); err == nil {
		t.Error("PoolFromPEM accepted text without certificates")
	}
}

func selfSigned(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(7),
		Subject:               pkix.Name{CommonName: "NHS TEST Root Authority G2", OrganizationalUnit: []string{"CA"}, Organization: []string{"nhs"}, Country: []string{"GB"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
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

// FuzzVerify: Verify on arbitrary JSON must not panic, and accepts nothing
// but a genuine token.
func FuzzVerify(f *testing.F) {
	fx := fix(f)
	card := fx.cards[testpki.P256]
	const ch = "fuzz-challenge"
	good, err := json.Marshal(sign(f, card.AuthCert, card.AuthKey, token.ES256, origin, ch))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"cardagent-auth-token/1","algorithm":"ES384","certificate":"MAA=","signature":"AA"}`))
	f.Add([]byte(`{"format":"cardagent-auth-token/1","algorithm":"RS256","certificate":"","chain":["MAMCAQE="],"signature":"_-_-"}`))
	f.Add([]byte(`null`))
	// The trust pools are built once: the fuzz function only verifies.
	roots, inter := fx.pki.Roots(), fx.pki.Intermediates()
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := token.ParseToken(data)
		if err != nil {
			if !errors.Is(err, token.ErrBadFormat) {
				t.Fatalf("ParseToken error without bad_format: %v", err)
			}
			return
		}
		store := token.NewMemoryStore()
		if err := store.Add(ch, time.Minute); err != nil {
			t.Fatal(err)
		}
		v := &token.Verifier{Roots: roots, Intermediates: inter, Challenges: store}
		res, err := v.Verify(tok, origin, ch)
		if err == nil {
			if res == nil || !res.Certificate.Equal(card.AuthCert) {
				t.Fatalf("accepted a token not signed by the card: %+v", res)
			}
			return
		}
		if token.ReasonOf(err) == "" {
			t.Fatalf("rejection without a reason: %v", err)
		}
	})
}

// TestVerifyAuthenticationCAs: with the authentication CA configured, the
// card's authentication certificate signs in and its signing certificate
// does not.
func TestVerifyAuthenticationCAs(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	v := newVerifier(f)
	v.AuthenticationCAs = []*x509.Certificate{f.pki.AuthCA}
	ch, err := v.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(sign(t, card.AuthCert, card.AuthKey, token.ES256, "https://good.example", ch), "https://good.example", ch); err != nil {
		t.Fatalf("authentication certificate: %v", err)
	}
	ch, _ = v.NewChallenge()
	_, err = v.Verify(sign(t, card.SignCert, card.SignKey, token.ES256, "https://good.example", ch), "https://good.example", ch)
	if token.ReasonOf(err) != token.ReasonBadKeyUsage {
		t.Fatalf("signing certificate: %v, want bad_key_usage", err)
	}
}
