package token_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// pkiServer answers the test PKI's OCSP and CRL URLs (every host name is
// routed to it by the client's dialer), as the CA's responder and CRL
// distribution point would.
type pkiServer struct {
	f   *fixture
	srv *httptest.Server

	mu         sync.Mutex
	ocspStatus int           // ocsp.Good, ocsp.Revoked, ocsp.Unknown; -1: HTTP 500
	ocspNext   time.Duration // NextUpdate relative to now (negative: stale)
	nonce      string        // "echo", "none" or "wrong"
	delay      time.Duration
	crlRevoked []*big.Int // nil with crlDown: 404
	crlDown    bool
	ocspHits   atomic.Int32
	crlHits    atomic.Int32
}

func newPKIServer(t *testing.T, f *fixture) *pkiServer {
	s := &pkiServer{f: f, ocspStatus: ocsp.Good, ocspNext: time.Hour, nonce: "echo"}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *pkiServer) set(fn func(s *pkiServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

// client routes every request to the server, whatever the URL's host.
func (s *pkiServer) client() *http.Client {
	addr := s.srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
}

var oidNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

func (s *pkiServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st, next, nonceMode, delay, revoked, crlDown := s.ocspStatus, s.ocspNext, s.nonce, s.delay, s.crlRevoked, s.crlDown
	s.mu.Unlock()
	time.Sleep(delay)
	now := time.Now()
	ca, caKey := s.f.pki.AuthCA, s.f.pki.AuthCAKey
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".crl") {
		s.crlHits.Add(1)
		if crlDown {
			http.NotFound(w, r)
			return
		}
		var entries []x509.RevocationListEntry
		for _, sn := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: sn, RevocationTime: now.Add(-time.Hour)})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(now.UnixNano()), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
			RevokedCertificateEntries: entries,
		}, ca, caKey)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(der)
		return
	}
	s.ocspHits.Add(1)
	body, _ := io.ReadAll(r.Body)
	if st < 0 {
		http.Error(w, "down", 500)
		return
	}
	req, err := ocsp.ParseRequest(body)
	if err != nil {
		w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	tmpl := ocsp.Response{Status: st, SerialNumber: req.SerialNumber, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(next)}
	if next < 0 {
		tmpl.ThisUpdate = now.Add(2 * next)
	}
	if st == ocsp.Revoked {
		tmpl.RevokedAt, tmpl.RevocationReason = now.Add(-time.Hour), ocsp.KeyCompromise
	}
	if n := requestNonce(body); n != nil && nonceMode != "none" {
		if nonceMode == "wrong" {
			n = []byte("not the nonce that was sent......")
		}
		v, _ := asn1.Marshal(n)
		tmpl.ExtraExtensions = []pkix.Extension{{Id: oidNonce, Value: v}}
	}
	der, err := ocsp.CreateResponse(ca, ca, tmpl, caKey)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(der)
}

// requestNonce reads the nonce extension of an OCSP request.
func requestNonce(der []byte) []byte {
	var req struct {
		TBS struct {
			RequestList []asn1.RawValue
			Extensions  []pkix.Extension `asn1:"explicit,tag:2,optional"`
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		return nil
	}
	for _, e := range req.TBS.Extensions {
		if e.Id.Equal(oidNonce) {
			var n []byte
			if _, err := asn1.Unmarshal(e.Value, &n); err == nil {
				return n
			}
		}
	}
	return nil
}

func TestRevocation(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	const origin = "https://good.example"
	tests := []struct {
		name    string
		policy  token.RevocationPolicy
		setup   func(s *pkiServer)
		reason  token.Reason // "" = accepted
		status  string       // the result's status when accepted
		source  string
		ocspHit bool
	}{
		{"good (OCSP)", token.RevocationRequired, nil, "", token.StatusGood, "ocsp", true},
		{"revoked (OCSP)", token.RevocationBestEffort, func(s *pkiServer) { s.ocspStatus = ocsp.Revoked }, token.ReasonRevoked, "", "", true},
		{"unknown to the responder, CRL good", token.RevocationRequired, func(s *pkiServer) { s.ocspStatus = ocsp.Unknown }, "", token.StatusGood, "crl", true},
		{"unknown to the responder, no CRL, best effort", token.RevocationBestEffort, func(s *pkiServer) {
			s.ocspStatus, s.crlDown = ocsp.Unknown, true
		}, "", token.StatusUnknown, "ocsp", true},
		{"unknown to the responder, no CRL, required", token.RevocationRequired, func(s *pkiServer) {
			s.ocspStatus, s.crlDown = ocsp.Unknown, true
		}, token.ReasonRevocationUnknown, "", "", true},
		{"responder down, CRL revokes", token.RevocationBestEffort, func(s *pkiServer) {
			s.ocspStatus, s.crlRevoked = -1, []*big.Int{card.AuthCert.SerialNumber}
		}, token.ReasonRevoked, "", "", true},
		{"unreachable, best effort", token.RevocationBestEffort, func(s *pkiServer) { s.ocspStatus, s.crlDown = -1, true },
			"", token.StatusUnavailable, "", true},
		{"unreachable, required", token.RevocationRequired, func(s *pkiServer) { s.ocspStatus, s.crlDown = -1, true },
			token.ReasonRevocationUnknown, "", "", true},
		{"stale OCSP answer, CRL good", token.RevocationRequired, func(s *pkiServer) { s.ocspNext = -time.Hour }, "", token.StatusGood, "crl", true},
		{"stale OCSP answer saying good, no CRL, required", token.RevocationRequired, func(s *pkiServer) {
			s.ocspNext, s.crlDown = -time.Hour, true
		}, token.ReasonRevocationUnknown, "", "", true},
		{"replayed answer (another nonce), required", token.RevocationRequired, func(s *pkiServer) {
			s.nonce, s.crlDown = "wrong", true
		}, token.ReasonRevocationUnknown, "", "", true},
		{"responder without nonce support", token.RevocationRequired, func(s *pkiServer) { s.nonce = "none" }, "", token.StatusGood, "ocsp", true},
		{"other serial revoked in the CRL", token.RevocationRequired, func(s *pkiServer) {
			s.ocspStatus, s.crlRevoked = -1, []*big.Int{big.NewInt(12345)}
		}, "", token.StatusGood, "crl", true},
		{"off", token.RevocationOff, func(s *pkiServer) { s.ocspStatus = ocsp.Revoked }, "", token.StatusNotChecked, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newPKIServer(t, f)
			if tt.setup != nil {
				s.set(tt.setup)
			}
			v := newVerifier(f)
			v.Revocation = &token.RevocationChecker{Policy: tt.policy, Client: s.client(), Timeout: 2 * time.Second}
			ch, _ := v.NewChallenge()
			res, err := v.Verify(sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch), origin, ch)
			if tt.reason != "" {
				if token.ReasonOf(err) != tt.reason {
					t.Fatalf("got %v, want %s", err, tt.reason)
				}
			} else {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if res.Revocation.Status != tt.status || res.Revocation.Source != tt.source || res.Revocation.Policy != tt.policy {
					t.Fatalf("revocation %+v, want status %s from %q under %s", res.Revocation, tt.status, tt.source, tt.policy)
				}
			}
			if hit := s.ocspHits.Load() > 0; hit != tt.ocspHit {
				t.Errorf("responder asked: %v, want %v", hit, tt.ocspHit)
			}
		})
	}
}

// TestRevocationCacheAndTimeout: a good answer is reused until its
// NextUpdate; a responder that does not answer in time is given up on.
func TestRevocationCacheAndTimeout(t *testing.T) {
	f := fix(t)
	card := f.cards[testpki.P256]
	const origin = "https://good.example"
	s := newPKIServer(t, f)
	rc := &token.RevocationChecker{Policy: token.RevocationRequired, Client: s.client()}
	v := newVerifier(f)
	v.Revocation = rc
	for range 3 {
		ch, _ := v.NewChallenge()
		if _, err := v.Verify(sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch), origin, ch); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.ocspHits.Load(); n != 1 {
		t.Fatalf("responder asked %d times for 3 verifications within the answer's validity, want 1", n)
	}
	// After NextUpdate the answer is not used again.
	rc.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	v.Now = rc.Now
	ch, _ := v.NewChallenge()
	if _, err := v.Verify(sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch), origin, ch); token.ReasonOf(err) != token.ReasonRevocationUnknown {
		// (The responder's fresh answer is stale for a clock 2 h ahead.)
		t.Fatalf("after NextUpdate: %v", err)
	}
	if n := s.ocspHits.Load(); n != 2 {
		t.Fatalf("responder asked %d times, want 2", n)
	}

	slow := newPKIServer(t, f)
	slow.set(func(s *pkiServer) { s.delay = 2 * time.Second })
	v2 := newVerifier(f)
	v2.Revocation = &token.RevocationChecker{Policy: token.RevocationBestEffort, Client: slow.client(), Timeout: 200 * time.Millisecond}
	ch, _ = v2.NewChallenge()
	t0 := time.Now()
	res, err := v2.Verify(sign(t, card.AuthCert, card.AuthKey, token.ES256, origin, ch), origin, ch)
	if err != nil || res.Revocation.Status != token.StatusUnavailable || !strings.Contains(res.Revocation.Detail, "deadline") {
		t.Fatalf("slow responder: %v %+v", err, res)
	}
	if took := time.Since(t0); took > 1500*time.Millisecond {
		t.Fatalf("took %v with a 200 ms timeout per fetch", took)
	}
}
