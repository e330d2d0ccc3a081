package demo_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/demo"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const siteOrigin = "https://localhost:8443"

type fixture struct {
	pki     *testpki.PKI
	card    *testpki.CardCreds
	expired *testpki.CardCreds
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	card, err := p.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: 60, Surname: "DEVELOPER", Forename: "TEST"})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := p.IssueCard(testpki.CardSpec{KeyType: testpki.P256, DaysLeft: -1})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{pki: p, card: card, expired: expired}
}

func newSite(t *testing.T, f *fixture, edit func(*demo.Config)) (*demo.Site, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	cfg := demo.Config{
		Origin: siteOrigin,
		Trust:  demo.StaticTrust{Roots: f.pki.Roots(), Intermediates: f.pki.Intermediates()},
		Client: []byte("export function connect() {}\n"),
		Log:    zap.New(core),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := demo.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

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

// sign makes the token the agent returns for origin and challenge.
func sign(t *testing.T, c *testpki.CardCreds, origin, challenge string) *token.Token {
	t.Helper()
	digest, err := token.Digest(token.ES256, origin, challenge)
	if err != nil {
		t.Fatal(err)
	}
	sig := joseSign(t, c.AuthKey, digest)
	return &token.Token{
		Format:      token.Format,
		Algorithm:   token.ES256,
		Certificate: base64.RawURLEncoding.EncodeToString(c.AuthCert.Raw),
		Origin:      origin,
		Signature:   base64.RawURLEncoding.EncodeToString(sig),
	}
}

// call does one request against the site and decodes a JSON reply into out.
func call(t *testing.T, h http.Handler, method, path, ctype, origin string, body any, out any) *http.Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, rd)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decoding reply (status %d): %v", method, path, res.StatusCode, err)
		}
	}
	return res
}

func challenge(t *testing.T, h http.Handler) string {
	t.Helper()
	var cr demo.ChallengeResponse
	if res := call(t, h, "POST", "/api/challenge", "application/json", siteOrigin, "{}", &cr); res.StatusCode != 200 {
		t.Fatalf("challenge: status %d", res.StatusCode)
	}
	return cr.Challenge
}

type errorReply struct{ Error, Message string }

func TestChallenge(t *testing.T) {
	s, _ := newSite(t, newFixture(t), nil)
	var cr demo.ChallengeResponse
	res := call(t, s, "POST", "/api/challenge", "application/json", siteOrigin, "{}", &cr)
	if res.StatusCode != 200 || cr.Origin != siteOrigin || cr.ExpiresIn != 120 {
		t.Fatalf("status %d, reply %+v", res.StatusCode, cr)
	}
	if b, err := base64.RawURLEncoding.DecodeString(cr.Challenge); err != nil || len(b) != 32 {
		t.Errorf("challenge %q is not 32 bytes base64url", cr.Challenge)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if other := challenge(t, s); other == cr.Challenge {
		t.Error("the same challenge twice")
	}

	tests := []struct {
		name, method, ctype, origin string
		status                      int
		code                        string
	}{
		{"no origin header (same-origin GET-less clients)", "POST", "application/json", "", 200, ""},
		{"foreign origin", "POST", "application/json", "https://evil.example", 403, "origin_not_allowed"},
		{"http instead of https", "POST", "application/json", "http://localhost:8443", 403, "origin_not_allowed"},
		{"form post", "POST", "application/x-www-form-urlencoded", siteOrigin, 415, "unsupported_media_type"},
		{"no content type", "POST", "", siteOrigin, 415, "unsupported_media_type"},
		{"GET", "GET", "", "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, s, tt.method, "/api/challenge", tt.ctype, tt.origin, "{}", nil)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if tt.code != "" {
				var e errorReply
				json.NewDecoder(res.Body).Decode(&e)
				if e.Error != tt.code || e.Message == "" {
					t.Errorf("reply %+v, want code %q", e, tt.code)
				}
			}
		})
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	s, logs := newSite(t, f, nil)

	ch := challenge(t, s)
	good := sign(t, f.card, siteOrigin, ch)
	var ok demo.VerifyResponse
	res := call(t, s, "POST", "/api/verify", "application/json", siteOrigin, demo.VerifyRequest{Token: good, Challenge: ch}, &ok)
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if ok.Holder.Name != "Test DEVELOPER" || ok.Holder.UUID != "999000000001" || ok.Algorithm != token.ES256 || ok.Origin != siteOrigin {
		t.Errorf("reply %+v", ok)
	}
	if ok.Certificate.DaysLeft < 59 || ok.Certificate.DaysLeft > 60 || !ok.Certificate.NotAfter.Equal(f.card.AuthCert.NotAfter.UTC().Truncate(time.Second)) {
		t.Errorf("certificate %+v", ok.Certificate)
	}
	if logs.FilterMessage("signed in").FilterField(zap.String("holder", "Test DEVELOPER")).Len() != 1 {
		t.Errorf("sign-in not logged: %v", logs.All())
	}

	tests := []struct {
		name   string
		req    func() any
		status int
		code   token.Reason
	}{
		{"replay", func() any { return demo.VerifyRequest{Token: good, Challenge: ch} }, 401, token.ReasonChallengeReused},
		{"token for another origin", func() any {
			c := challenge(t, s)
			return demo.VerifyRequest{Token: sign(t, f.card, "https://localhost:9443", c), Challenge: c}
		}, 401, token.ReasonOriginMismatch},
		{"phishing relay: signed for the evil origin, claims ours", func() any {
			c := challenge(t, s)
			tok := sign(t, f.card, "https://evil.example", c)
			tok.Origin = siteOrigin
			return demo.VerifyRequest{Token: tok, Challenge: c}
		}, 401, token.ReasonBadSignature},
		{"challenge never issued", func() any {
			return demo.VerifyRequest{Token: sign(t, f.card, siteOrigin, "made-up"), Challenge: "made-up"}
		}, 401, token.ReasonUnknownChallenge},
		{"expired certificate", func() any {
			c := challenge(t, s)
			return demo.VerifyRequest{Token: sign(t, f.expired, siteOrigin, c), Challenge: c}
		}, 401, token.ReasonExpired},
		{"bad format", func() any {
			c := challenge(t, s)
			return map[string]any{"token": map[string]any{"format": "x"}, "challenge": c}
		}, 401, token.ReasonBadFormat},
		{"no token", func() any { return map[string]any{"challenge": "c"} }, 400, "bad_request"},
		{"no challenge", func() any { return map[string]any{"token": good} }, 400, "bad_request"},
		{"not JSON", func() any { return "{" }, 400, "bad_request"},
		{"too large", func() any { return `{"challenge":"` + strings.Repeat("a", token.MaxTokenSize+2048) + `"}` }, 413, "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e errorReply
			res := call(t, s, "POST", "/api/verify", "application/json", siteOrigin, tt.req(), &e)
			if res.StatusCode != tt.status || e.Error != string(tt.code) || e.Message == "" {
				t.Errorf("status %d reply %+v, want %d %q", res.StatusCode, e, tt.status, tt.code)
			}
		})
	}

}

// TestOtherOriginSite: a site at another origin refuses a token the agent
// made for this one, even with a challenge it issued itself.
func TestOtherOriginSite(t *testing.T) {
	f := newFixture(t)
	const otherOrigin = "https://demo.example"
	s, _ := newSite(t, f, func(c *demo.Config) { c.Origin = otherOrigin })
	var cr demo.ChallengeResponse
	call(t, s, "POST", "/api/challenge", "application/json", otherOrigin, "{}", &cr)
	var e errorReply
	res := call(t, s, "POST", "/api/verify", "application/json", otherOrigin,
		demo.VerifyRequest{Token: sign(t, f.card, siteOrigin, cr.Challenge), Challenge: cr.Challenge}, &e)
	if res.StatusCode != 401 || e.Error != string(token.ReasonOriginMismatch) {
		t.Errorf("status %d reply %+v", res.StatusCode, e)
	}
}

type downStore struct{}

func (downStore) Issue(time.Duration) (string, error) { return "", errors.New("store down") }
func (downStore) Consume(string) error                { return errors.New("store down") }

type brokenTrust struct{}

func (brokenTrust) Pools() (*x509.CertPool, *x509.CertPool, error) {
	return nil, nil, errors.New("no file")
}

func TestUnavailable(t *testing.T) {
	f := newFixture(t)
	tok := sign(t, f.card, siteOrigin, "c")
	tests := []struct {
		name string
		edit func(*demo.Config)
		path string
	}{
		{"store down: challenge", func(c *demo.Config) { c.Challenges = downStore{} }, "/api/challenge"},
		{"store down: verify", func(c *demo.Config) { c.Challenges = downStore{} }, "/api/verify"},
		{"trust unreadable", func(c *demo.Config) { c.Trust = brokenTrust{} }, "/api/verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newSite(t, f, tt.edit)
			var e errorReply
			res := call(t, s, "POST", tt.path, "application/json", "", demo.VerifyRequest{Token: tok, Challenge: "c"}, &e)
			if res.StatusCode != 503 || e.Error != "unavailable" || strings.Contains(e.Message, "down") {
				t.Errorf("status %d reply %+v", res.StatusCode, e)
			}
		})
	}
}

func TestNewChecksConfig(t *testing.T) {
	f := newFixture(t)
	trust := demo.StaticTrust{Roots: f.pki.Roots()}
	for _, cfg := range []demo.Config{
		{Origin: "https://localhost:8443/", Trust: trust},
		{Origin: "", Trust: trust},
		{Origin: siteOrigin},
	} {
		if _, err := demo.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}

func TestStaticFiles(t *testing.T) {
	s, _ := newSite(t, newFixture(t), nil)
	tests := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script type="module" src="/app.js"></script>`},
		{"/app.js", "text/javascript; charset=utf-8", `import("/cardagent.js")`},
		{"/messages.js", "text/javascript; charset=utf-8", "export function describeError"},
		{"/style.css", "text/css; charset=utf-8", "body"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
		{"/cardagent.js", "text/javascript; charset=utf-8", "export function connect"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res := call(t, s, "GET", tt.path, "", "", nil, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != 200 || res.Header.Get("Content-Type") != tt.ctype || !strings.Contains(string(body), tt.contains) {
				t.Fatalf("status %d type %q body %.80q", res.StatusCode, res.Header.Get("Content-Type"), body)
			}
			h := res.Header
			if h.Get("Content-Security-Policy") != demo.ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers %v", h)
			}
		})
	}
	if res := call(t, s, "GET", "/nope", "", "", nil, nil); res.StatusCode != 404 {
		t.Errorf("/nope: %d", res.StatusCode)
	}
	if !strings.HasPrefix(demo.ContentSecurityPolicy, "default-src 'self'; connect-src 'self' ws://127.0.0.1:* ws://localhost:* http://127.0.0.1:* http://localhost:*;") ||
		strings.Contains(demo.ContentSecurityPolicy, "[") || strings.Contains(demo.ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP %q", demo.ContentSecurityPolicy)
	}

	t.Run("no client configured", func(t *testing.T) {
		s, _ := newSite(t, newFixture(t), func(c *demo.Config) { c.Client = nil })
		body, _ := io.ReadAll(call(t, s, "GET", "/cardagent.js", "", "", nil, nil).Body)
		if !strings.HasPrefix(string(body), "throw new Error(") {
			t.Errorf("body %q", body)
		}
	})
}

// TestPageRules: the page obeys its own CSP (no inline script or style, no
// external resources) and never asks for the PIN.
func TestPageRules(t *testing.T) {
	s, _ := newSite(t, newFixture(t), nil)
	get := func(p string) string {
		b, _ := io.ReadAll(call(t, s, "GET", p, "", "", nil, nil).Body)
		return string(b)
	}
	html := get("/")
	for _, re := range []string{`<script[^>]*>[^<]`, `\sstyle=`, `\son[a-z]+=`, `<style`, `<input`, `(?i)password`} {
		if regexp.MustCompile(re).MatchString(html) {
			t.Errorf("index.html matches %s", re)
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(html, -1) {
		if !strings.Contains(tag, `src="/`) {
			t.Errorf("inline script %s", tag)
		}
	}
	for _, p := range []string{"/", "/app.js", "/messages.js", "/style.css", "/favicon.svg"} {
		body := get(p)
		if m := regexp.MustCompile(`(?:https?|wss?):\/\/|\/\/[a-z0-9.-]+\.[a-z]{2,}\/`).FindString(body); m != "" && p != "/favicon.svg" {
			t.Errorf("%s refers to an external resource: %q", p, m)
		}
		if strings.Contains(strings.ToLower(body), "type=\"password\"") {
			t.Errorf("%s has a password field: the page must not ask for the PIN", p)
		}
	}
}

func TestFileTrustReloads(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	rootsFile, chainFile := filepath.Join(dir, testpki.RootFile), filepath.Join(dir, testpki.ChainFile)
	// First a root that did not issue the card (another key).
	write := func(name string, data []byte, mtime time.Time) {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	write(rootsFile, testpki.CertPEM(otherRoot(t)), t0)
	write(chainFile, testpki.CertPEM(f.pki.AuthCA), t0)
	trust, err := demo.NewFileTrust(rootsFile, chainFile)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newSite(t, f, func(c *demo.Config) { c.Trust = trust })
	try := func() (int, string) {
		c := challenge(t, s)
		var e errorReply
		res := call(t, s, "POST", "/api/verify", "application/json", siteOrigin, demo.VerifyRequest{Token: sign(t, f.card, siteOrigin, c), Challenge: c}, &e)
		return res.StatusCode, e.Error
	}
	if code, reason := try(); code != 401 || reason != string(token.ReasonUntrustedChain) {
		t.Fatalf("with the wrong root: %d %q", code, reason)
	}
	// The virtual card restarts and writes its PKI.
	write(rootsFile, testpki.CertPEM(f.pki.Root), t0.Add(time.Minute))
	if code, reason := try(); code != 200 {
		t.Fatalf("after the root file changed: %d %q", code, reason)
	}
	if err := os.Remove(rootsFile); err != nil {
		t.Fatal(err)
	}
	if code, reason := try(); code != 503 || reason != "unavailable" {
		t.Fatalf("with the root file gone: %d %q", code, reason)
	}
	if _, err := demo.NewFileTrust(rootsFile, ""); err == nil {
		t.Error("NewFileTrust accepted a missing file")
	}
}

func otherRoot(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := testpki.Key(testpki.P256, 800)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "NHS TEST Root Authority G2"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
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

func TestServe(t *testing.T) {
	f := newFixture(t)
	s, _ := newSite(t, f, nil)
	cert, err := demo.SelfSignedCertificate([]string{"localhost", "127.0.0.1", "::1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	for _, tlsOn := range []bool{true, false} {
		name := map[bool]string{true: "https", false: "http"}[tlsOn]
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			var c *tls.Certificate
			if tlsOn {
				c = &cert
			}
			go func() { done <- demo.Serve(ctx, ln, s, c) }()
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			res, err := client.Get(name + "://" + ln.Addr().String() + "/")
			if err != nil {
				cancel()
				<-done
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 || (res.TLS != nil) != tlsOn {
				t.Errorf("status %d, TLS %v", res.StatusCode, res.TLS != nil)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
}

// TestMessagesJS runs the page's JavaScript unit tests with node's test runner.
func TestMessagesJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed (run scripts/setup)")
		}
		t.Skip("node is not installed (run scripts/setup)")
	}
	out, err := exec.Command(node, "--test", "messages_test.mjs").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test: %v\n%s", err, out)
	}
}
