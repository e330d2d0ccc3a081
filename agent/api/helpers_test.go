package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
)

const (
	goodOrigin  = "https://good.example"
	otherOrigin = "https://other.example:8443"
	// testChallenge is 32 bytes of base64url.
	testChallenge = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80"
)

// fakeBackend is a Backend a test steers.
type fakeBackend struct {
	mu     sync.Mutex
	status wire.Status
	subs   map[int]func(wire.Event)
	next   int
	auth   func(ctx context.Context, origin, challenge string, p prompt.Prompter) (*token.Token, error)
	calls  []string // origins Authenticate was called with
	cards  []string // the card fields of Certificates and Authenticate calls, in order
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		subs:   map[int]func(wire.Event){},
		status: wire.Status{Service: wire.ServiceUp, ExpiryWarningDays: 90, Readers: []wire.ReaderStatus{{Name: "Reader 0"}}},
		auth: func(_ context.Context, origin, _ string, _ prompt.Prompter) (*token.Token, error) {
			return &token.Token{Format: token.Format, Algorithm: token.RS256, Origin: origin, Certificate: "MA==", Signature: "AA"}, nil
		},
	}
}

func (f *fakeBackend) Status() wire.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeBackend) Subscribe(fn func(wire.Event)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	f.subs[id] = fn
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
	}
}

func (f *fakeBackend) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeBackend) emit(ev wire.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fn := range f.subs {
		fn(ev)
	}
}

func (f *fakeBackend) Certificates(_ context.Context, card string) (*wire.CardCertificates, error) {
	f.mu.Lock()
	f.cards = append(f.cards, card)
	f.mu.Unlock()
	return &wire.CardCertificates{Reader: "Reader 0", CardType: "test", Authentication: []byte{0x30, 0x00}}, nil
}

func (f *fakeBackend) AuthenticateCard(ctx context.Context, origin, challenge, card string, p prompt.Prompter) (*token.Token, error) {
	f.mu.Lock()
	f.calls = append(f.calls, origin)
	f.cards = append(f.cards, card)
	auth := f.auth
	f.mu.Unlock()
	return auth(ctx, origin, challenge, p)
}

func (f *fakeBackend) authCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// testServer is a running Server on a free port.
type testServer struct {
	*Server
	logs *observer.ObservedLogs
	port int
}

func startServer(t *testing.T, b Backend, p prompt.Prompter, opts Options, peer peerChecker) *testServer {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	if opts.Ports == nil {
		opts.Ports = []int{0}
	}
	if opts.AllowedOrigins == nil {
		opts.AllowedOrigins = []string{goodOrigin, otherOrigin}
	}
	s, err := New(zap.New(core), b, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if peer != nil {
		s.checkPeer = peer
	}
	port, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return &testServer{Server: s, logs: logs, port: port}
}

func (ts *testServer) host() string { return "127.0.0.1:" + strconv.Itoa(ts.port) }

func (ts *testServer) url(path string) string { return "http://" + ts.host() + path }

// dial opens a WebSocket as a page of origin would.
func (ts *testServer) dial(t *testing.T, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial("ws://"+ts.host()+PathWS, h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func (ts *testServer) mustDial(t *testing.T, origin string) *websocket.Conn {
	t.Helper()
	c, resp, err := ts.dial(t, origin)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, code)
	}
	return c
}

// msg is a decoded message.
type msg map[string]any

func roundTrip(t *testing.T, c *websocket.Conn, req any) msg {
	t.Helper()
	if err := c.WriteJSON(req); err != nil {
		t.Fatal(err)
	}
	return readReply(t, c)
}

// readReply reads messages until a reply (not an event) arrives.
func readReply(t *testing.T, c *websocket.Conn) msg {
	t.Helper()
	for {
		m := readMsg(t, c)
		if m["type"] != "event" {
			return m
		}
	}
}

func readMsg(t *testing.T, c *websocket.Conn) msg {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	var m msg
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("reply is not JSON: %s", data)
	}
	return m
}

// closeCode reads until the connection closes and returns the close code.
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func errCode(m msg) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}
