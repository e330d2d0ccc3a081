package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/peer"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

func TestMain(m *testing.M) {
	if runPeerChild() || runFloodChild() {
		return
	}
	os.Exit(pcsctest.Main(m))
}

func allowPeer(netip.AddrPort, netip.AddrPort) error { return nil }

// serve runs one request through ServeHTTP as if it came over our listener.
func serve(s *Server, r *http.Request) *httptest.ResponseRecorder {
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, &connInfo{checked: true}))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func infoRequest(host string, origins ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, PathInfo, nil)
	r.Host = host
	for _, o := range origins {
		r.Header.Add("Origin", o)
	}
	return r
}

func TestHostCheck(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil, Options{}, allowPeer)
	p := strconv.Itoa(ts.port)
	other := strconv.Itoa(ts.port + 1)
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + p, http.StatusOK},
		{"localhost:" + p, http.StatusOK},
		{"[::1]:" + p, http.StatusOK},
		{"127.0.0.1", http.StatusForbidden},
		{"localhost", http.StatusForbidden},
		{"127.0.0.1:" + other, http.StatusForbidden},
		{"evil.example:" + p, http.StatusForbidden},
		{"evil.example", http.StatusForbidden},
		{"LOCALHOST:" + p, http.StatusForbidden},
		{"localhost.:" + p, http.StatusForbidden},
		{"localhost.evil.example:" + p, http.StatusForbidden},
		{"127.0.0.2:" + p, http.StatusForbidden},
		{"0x7f000001:" + p, http.StatusForbidden},
		{"2130706433:" + p, http.StatusForbidden},
		{"[::ffff:127.0.0.1]:" + p, http.StatusForbidden},
		{"::1:" + p, http.StatusForbidden},
		{"", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			w := serve(ts.Server, infoRequest(tt.host, goodOrigin))
			if w.Code != tt.want {
				t.Fatalf("Host %q: %d, want %d", tt.host, w.Code, tt.want)
			}
			if tt.want == http.StatusForbidden {
				if w.Header().Get("Connection") != "close" {
					t.Error("a refusal without Connection: close")
				}
				if w.Header().Get("Access-Control-Allow-Origin") != "" {
					t.Error("CORS header on a refused request")
				}
			}
		})
	}
}

func TestOriginCheck(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil, Options{}, allowPeer)
	host := ts.host()
	tests := []struct {
		name    string
		origins []string
		want    int
	}{
		{"allowed", []string{goodOrigin}, http.StatusOK},
		{"allowed with port", []string{otherOrigin}, http.StatusOK},
		{"suffix domain", []string{"https://good.example.evil"}, http.StatusForbidden},
		{"trailing dot", []string{"https://good.example."}, http.StatusForbidden},
		{"http instead of https", []string{"http://good.example"}, http.StatusForbidden},
		{"explicit default port", []string{"https://good.example:443"}, http.StatusForbidden},
		{"other port", []string{"https://good.example:8443"}, http.StatusForbidden},
		{"allowed host without its port", []string{"https://other.example"}, http.StatusForbidden},
		{"allowed host, other port", []string{"https://other.example:8444"}, http.StatusForbidden},
		{"subdomain", []string{"https://sub.good.example"}, http.StatusForbidden},
		{"parent domain", []string{"https://example"}, http.StatusForbidden},
		{"upper-case host", []string{"https://GOOD.example"}, http.StatusForbidden},
		{"upper-case scheme", []string{"HTTPS://good.example"}, http.StatusForbidden},
		{"trailing slash", []string{"https://good.example/"}, http.StatusForbidden},
		{"path", []string{"https://good.example/login"}, http.StatusForbidden},
		{"prefix", []string{"https://good.examplex"}, http.StatusForbidden},
		{"userinfo", []string{"https://good.example@evil.example"}, http.StatusForbidden},
		{"embedded", []string{"https://evil.example/https://good.example"}, http.StatusForbidden},
		{"leading space", []string{" https://good.example"}, http.StatusForbidden},
		{"wss scheme", []string{"wss://good.example"}, http.StatusForbidden},
		{"null", []string{"null"}, http.StatusForbidden},
		{"empty", []string{""}, http.StatusForbidden},
		{"missing", nil, http.StatusForbidden},
		{"twice", []string{goodOrigin, goodOrigin}, http.StatusForbidden},
		{"allowed then other", []string{goodOrigin, "https://evil.example"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(ts.Server, infoRequest(host, tt.origins...))
			if w.Code != tt.want {
				t.Fatalf("Origin %q: %d, want %d", tt.origins, w.Code, tt.want)
			}
			acao := w.Header().Get("Access-Control-Allow-Origin")
			if tt.want == http.StatusOK && acao != tt.origins[0] {
				t.Errorf("Access-Control-Allow-Origin %q", acao)
			}
			if tt.want != http.StatusOK && acao != "" {
				t.Errorf("CORS header %q on a refused request", acao)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" || w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("security headers missing: %v", w.Header())
			}
		})
	}
}

// TestPeerRefused: a connection whose peer fails the check is closed as
// soon as it is accepted, before its request is read, and nothing answers.
func TestPeerRefused(t *testing.T) {
	var calls atomic.Int32
	ts := startServer(t, newFakeBackend(), nil, Options{}, func(netip.AddrPort, netip.AddrPort) error {
		calls.Add(1)
		return peer.ErrOtherUser
	})
	c, err := net.Dial("tcp", ts.host())
	if err == nil { // (the reset may even reach the client before its connect returns)
		defer c.Close()
		// No request sent: the check does not wait for one.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(make([]byte, 1))
		if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("another user's connection: read %d bytes, %v; want it closed at once", n, err)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("%d checks, want 1", calls.Load())
	}
	// A request that did not come through our listener (no connection info) is refused too.
	r := infoRequest(ts.host(), goodOrigin)
	w := httptest.NewRecorder()
	ts.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden || w.Header().Get("Connection") != "close" {
		t.Fatalf("no connection info: %d %v", w.Code, w.Header())
	}
}

func TestInfoAndPreflight(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil, Options{Version: "1.2.3"}, allowPeer)
	w := serve(ts.Server, infoRequest(ts.host(), goodOrigin))
	var info Info
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || info != (Info{Name: "cardagent", Version: "1.2.3", Protocol: 1}) {
		t.Fatalf("info %s (%v)", w.Body, err)
	}
	if v := w.Header().Values("Vary"); len(v) == 0 || v[0] != "Origin" {
		t.Errorf("Vary %q", v)
	}

	tests := []struct {
		name, origin, method, pna string
		want                      int
		allowPNA                  string
	}{
		{"private network", goodOrigin, "GET", "true", http.StatusNoContent, "true"},
		{"plain", goodOrigin, "GET", "", http.StatusNoContent, ""},
		{"refused origin", "https://evil.example", "GET", "true", http.StatusForbidden, ""},
		{"other method", goodOrigin, "POST", "true", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodOptions, PathInfo, nil)
			r.Host = ts.host()
			r.Header.Set("Origin", tt.origin)
			r.Header.Set("Access-Control-Request-Method", tt.method)
			if tt.pna != "" {
				r.Header.Set("Access-Control-Request-Private-Network", tt.pna)
			}
			w := serve(ts.Server, r)
			if w.Code != tt.want {
				t.Fatalf("preflight: %d, want %d", w.Code, tt.want)
			}
			if got := w.Header().Get("Access-Control-Allow-Private-Network"); got != tt.allowPNA {
				t.Errorf("Access-Control-Allow-Private-Network %q, want %q", got, tt.allowPNA)
			}
			acao := w.Header().Get("Access-Control-Allow-Origin")
			if (tt.want == http.StatusNoContent) != (acao == tt.origin) {
				t.Errorf("Access-Control-Allow-Origin %q", acao)
			}
		})
	}

	// Unknown paths and methods, after the checks.
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodPost, PathInfo, http.StatusMethodNotAllowed},
		{http.MethodGet, PathInfo + "/", http.StatusNotFound},
	} {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		r.Host = ts.host()
		r.Header.Set("Origin", goodOrigin)
		if w := serve(ts.Server, r); w.Code != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.want)
		}
	}
}

func TestValidateOrigin(t *testing.T) {
	for _, tt := range []struct {
		origin string
		ok     bool
	}{
		{"https://signin.example.nhs.uk", true},
		{"https://localhost:8443", true},
		{"http://localhost:8080", true},
		{"https://[::1]:8443", true},
		{"https://signin.example.nhs.uk/", false},
		{"https://signin.example.nhs.uk/path", false},
		{"https://Signin.example.nhs.uk", false},
		{"https://signin.example.nhs.uk:443", false},
		{"http://signin.example.nhs.uk:80", false},
		{"https://signin.example.nhs.uk.", false},
		{"https://signin.example.nhs.uk?x", false},
		{"https://signin.example.nhs.uk#x", false},
		{"https://user@signin.example.nhs.uk", false},
		{"ftp://signin.example.nhs.uk", false},
		{"signin.example.nhs.uk", false},
		{"null", false},
		{"*", false},
		{"", false},
		{"https://x:0", false},
		{"https://x:08443", false},
	} {
		if err := ValidateOrigin(tt.origin); (err == nil) != tt.ok {
			t.Errorf("ValidateOrigin(%q) = %v, want ok=%v", tt.origin, err, tt.ok)
		}
	}
	if _, err := New(nil, newFakeBackend(), nil, Options{AllowedOrigins: []string{"https://good.example/"}}); err == nil {
		t.Error("New accepted an origin with a trailing slash")
	}
}
