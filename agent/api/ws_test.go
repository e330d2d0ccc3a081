package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// TestHelloFeatures: session_ended is listed only when IT set a removal policy.
func TestHelloFeatures(t *testing.T) {
	for _, tc := range []struct {
		sessionEnded bool
		want         []string
	}{
		{false, Features},
		{true, append(slices.Clone(Features), FeatureSessionEnded)},
	} {
		ts := startServer(t, newFakeBackend(), nil, Options{SessionEnded: tc.sessionEnded}, allowPeer)
		m := roundTrip(t, ts.mustDial(t, otherOrigin), map[string]any{"id": 1, "type": "hello"})
		raw, _ := json.Marshal(m["features"])
		var got []string
		if err := json.Unmarshal(raw, &got); err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SessionEnded %v: features %s, want %q", tc.sessionEnded, raw, tc.want)
		}
	}
	if slices.Contains(Features, FeatureSessionEnded) {
		t.Error("Features was changed")
	}
}

func TestHelloStatusCertificatesEvents(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil, Options{Version: "9.9.9", RequestTimeout: 90 * time.Second, PromptTimeout: 60 * time.Second}, allowPeer)
	c := ts.mustDial(t, otherOrigin)

	m := roundTrip(t, c, map[string]any{"id": 1, "type": "hello", "protocol": 1})
	if m["id"] != 1.0 || m["type"] != "hello" || m["name"] != "cardagent" || m["version"] != "9.9.9" || m["protocol"] != 1.0 || m["origin"] != otherOrigin {
		t.Errorf("hello reply %v", m)
	}
	if m["request_timeout_seconds"] != 90.0 || m["prompt_timeout_seconds"] != 60.0 {
		t.Errorf("hello timeouts %v", m)
	}
	if f, _ := m["features"].([]any); len(f) != len(Features) {
		t.Errorf("features %v", m["features"])
	}
	m = roundTrip(t, c, map[string]any{"id": "s1", "type": "status"})
	if m["id"] != "s1" || m["type"] != "status" || m["service"] != "up" || m["expiry_warning_days"] != 90.0 {
		t.Errorf("status reply %v", m)
	}
	if r, _ := m["readers"].([]any); len(r) != 1 {
		t.Errorf("readers %v", m["readers"])
	}
	m = roundTrip(t, c, map[string]any{"id": "c1", "type": "certificates"})
	if m["type"] != "certificates" || m["card_type"] != "test" || m["reader"] != "Reader 0" || m["authentication_certificate"] != "MAA" {
		t.Errorf("certificates reply %v", m)
	}
	m = roundTrip(t, c, map[string]any{"id": "a1", "type": "authenticate", "challenge": testChallenge})
	tok, _ := m["token"].(map[string]any)
	if m["id"] != "a1" || m["type"] != "authenticate" || tok["origin"] != otherOrigin || tok["format"] != token.Format {
		t.Errorf("authenticate reply %v", m)
	}

	// The tray's activity event never reaches a page: the next event read is the card's.
	b.emit(wire.Event{Kind: wire.EventActivity, Time: time.Now()})
	b.emit(wire.Event{Kind: wire.EventCardRemoved, Reader: "Reader 0", Time: time.Now()})
	m = readMsg(t, c)
	if m["type"] != "event" || m["event"] != "card_removed" || m["reader"] != "Reader 0" {
		t.Errorf("event %v", m)
	}
}

// TestRefusedRequests: requests naming a refused or unknown field get
// bad_request, the backend is not called, and the connection stays usable.
func TestRefusedRequests(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil, Options{}, allowPeer)
	c := ts.mustDial(t, goodOrigin)
	tests := []struct {
		name string
		req  string
		typ  string // the reply's type
	}{
		{"pin", `{"id":1,"type":"authenticate","challenge":"` + testChallenge + `","pin":"123456"}`, "authenticate"},
		{"pin before type", `{"id":1,"pin":"123456","type":"authenticate","challenge":"` + testChallenge + `"}`, "authenticate"},
		{"pin on status", `{"id":1,"type":"status","pin":"123456"}`, "status"},
		{"data", `{"id":1,"type":"authenticate","challenge":"` + testChallenge + `","data":"AAAA"}`, "authenticate"},
		{"hash", `{"id":1,"type":"authenticate","challenge":"` + testChallenge + `","hash":"AAAA"}`, "authenticate"},
		{"digest", `{"id":1,"type":"authenticate","challenge":"` + testChallenge + `","digest":"AAAA"}`, "authenticate"},
		{"origin", `{"id":1,"type":"authenticate","challenge":"` + testChallenge + `","origin":"https://evil.example"}`, "authenticate"},
		{"unknown field", `{"id":1,"type":"authenticate","challenge":"` + testChallenge + `","slot":"9c"}`, "authenticate"},
		{"field of another type", `{"id":1,"type":"status","challenge":"` + testChallenge + `"}`, "status"},
		{"duplicate type", `{"id":1,"type":"status","type":"authenticate","challenge":"` + testChallenge + `"}`, "status"},
		{"duplicate challenge", `{"id":1,"type":"authenticate","challenge":"x","challenge":"` + testChallenge + `"}`, "authenticate"},
		{"duplicate id", `{"id":1,"id":2,"type":"hello"}`, "hello"},
		{"unknown type", `{"id":1,"type":"sign"}`, "sign"},
		{"type not a string", `{"id":1,"type":7}`, "error"},
		{"empty type", `{"id":1,"type":""}`, "error"},
		{"no type", `{"id":1}`, "error"},
		{"no type, pin", `{"id":1,"pin":"123456"}`, "error"},
		{"challenge not a string", `{"id":1,"type":"authenticate","challenge":7}`, "authenticate"},
		{"no challenge", `{"id":1,"type":"authenticate"}`, "authenticate"},
		{"protocol not a number", `{"id":1,"type":"hello","protocol":"1"}`, "hello"},
		{"case variant of pin", `{"id":1,"type":"authenticate","challenge":"` + testChallenge + `","PIN":"123456"}`, "authenticate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.WriteMessage(websocket.TextMessage, []byte(tt.req)); err != nil {
				t.Fatal(err)
			}
			m := readReply(t, c)
			if m["id"] != 1.0 || errCode(m) != "bad_request" || m["type"] != tt.typ {
				t.Fatalf("reply %v, want bad_request for id 1 with type %q", m, tt.typ)
			}
			msg := decode[replyError](t, m).Error.Message
			if strings.Contains(msg, "123456") {
				t.Error("the PIN is echoed in the error")
			}
			if _, named := refusedFields[strings.Fields(tt.name)[0]]; named && !strings.Contains(msg, "refused") {
				t.Errorf("message %q does not say the field is refused", msg)
			}
		})
	}
	if n := b.authCalls(); n != 0 {
		t.Errorf("backend Authenticate called %d times", n)
	}
	if m := roundTrip(t, c, map[string]any{"id": 2, "type": "status"}); m["service"] != "up" {
		t.Errorf("connection not usable after refusals: %v", m)
	}
}

// TestMalformedClosesOnlyItsConnection: a malformed message closes its own
// connection with 1007/1008/1003; another client is unaffected.
func TestMalformedClosesOnlyItsConnection(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil, Options{}, allowPeer)
	other := ts.mustDial(t, goodOrigin)
	tests := []struct {
		name string
		kind int
		data string
		code int
	}{
		{"not JSON", websocket.TextMessage, `{"id":1,"type":"status"`, websocket.CloseInvalidFramePayloadData},
		{"invalid UTF-8", websocket.TextMessage, "{\"id\":\"\xff\",\"type\":\"status\"}", websocket.CloseInvalidFramePayloadData},
		{"array", websocket.TextMessage, `[1,2]`, websocket.ClosePolicyViolation},
		{"string", websocket.TextMessage, `"status"`, websocket.ClosePolicyViolation},
		{"no id", websocket.TextMessage, `{"type":"status"}`, websocket.ClosePolicyViolation},
		{"object id", websocket.TextMessage, `{"id":{},"type":"status"}`, websocket.ClosePolicyViolation},
		{"null id", websocket.TextMessage, `{"id":null,"type":"status"}`, websocket.ClosePolicyViolation},
		{"long id", websocket.TextMessage, `{"id":"` + strings.Repeat("x", 80) + `","type":"status"}`, websocket.ClosePolicyViolation},
		{"binary", websocket.BinaryMessage, `{"id":1,"type":"status"}`, websocket.CloseUnsupportedData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.mustDial(t, goodOrigin)
			if err := c.WriteMessage(tt.kind, []byte(tt.data)); err != nil {
				t.Fatal(err)
			}
			if got := closeCode(t, c); got != tt.code {
				t.Errorf("close code %d, want %d", got, tt.code)
			}
			if m := roundTrip(t, other, map[string]any{"id": "x", "type": "status"}); m["service"] != "up" {
				t.Errorf("other connection: %v", m)
			}
		})
	}
}

func TestOversizeFrame(t *testing.T) {
	ts := startServer(t, newFakeBackend(), nil, Options{MaxMessageBytes: 1024}, allowPeer)
	other := ts.mustDial(t, goodOrigin)
	c := ts.mustDial(t, goodOrigin)
	// Exactly at the limit is fine.
	req := `{"id":1,"type":"status"}`
	atLimit := req[:len(req)-1] + strings.Repeat(" ", 1024-len(req)) + "}"
	if err := c.WriteMessage(websocket.TextMessage, []byte(atLimit)); err != nil {
		t.Fatal(err)
	}
	if m := readReply(t, c); m["service"] != "up" {
		t.Fatalf("message at the limit: %v", m)
	}
	big := `{"id":1,"type":"authenticate","challenge":"` + strings.Repeat("A", 1024) + `"}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if got := closeCode(t, c); got != websocket.CloseMessageTooBig {
		t.Errorf("close code %d, want 1009", got)
	}
	if m := roundTrip(t, other, map[string]any{"id": 2, "type": "status"}); m["service"] != "up" {
		t.Errorf("other connection: %v", m)
	}
}

func TestConnectionCap(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil, Options{MaxConnections: 3}, allowPeer)
	var conns []*websocket.Conn
	for range 3 {
		conns = append(conns, ts.mustDial(t, goodOrigin))
	}
	for range 5 {
		_, resp, err := ts.dial(t, goodOrigin)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Fatalf("connection over the cap: %v (HTTP %d), want 503", err, code)
		}
	}
	for i, c := range conns {
		if m := roundTrip(t, c, map[string]any{"id": i, "type": "status"}); m["service"] != "up" {
			t.Errorf("existing connection %d: %v", i, m)
		}
	}
	conns[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _, err := ts.dial(t, goodOrigin)
		if err == nil {
			roundTrip(t, c, map[string]any{"id": 9, "type": "status"})
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection accepted after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestErrorMapping: backend errors reach the page as stable codes with safe messages.
func TestErrorMapping(t *testing.T) {
	b := newFakeBackend()
	ts := startServer(t, b, nil, Options{}, allowPeer)
	c := ts.mustDial(t, goodOrigin)
	tests := []struct {
		err   error
		code  string
		tries any
	}{
		{&pcsc.AuthError{Retries: 2}, "wrong_pin", 2.0},
		{&pcsc.AuthError{Retries: -1}, "wrong_pin", nil},
		{pcsc.ErrPINBlocked, "pin_blocked", nil},
		{pcsc.ErrCardRemoved, "card_removed", nil},
		{prompt.ErrCancelled, "user_cancelled", nil},
		{agent.ErrBusy, "busy", nil},
		{&pcsc.StatusError{SW: 0x6F00}, "card_error", nil},
	}
	for _, tt := range tests {
		b.mu.Lock()
		b.auth = func(context.Context, string, string, prompt.Prompter) (*token.Token, error) { return nil, tt.err }
		b.mu.Unlock()
		m := roundTrip(t, c, map[string]any{"id": 1, "type": "authenticate", "challenge": testChallenge})
		e, _ := m["error"].(map[string]any)
		if e["code"] != tt.code || e["tries_left"] != tt.tries {
			t.Errorf("%v: error %v, want %s tries %v", tt.err, e, tt.code, tt.tries)
		}
		if msg, _ := e["message"].(string); msg == "" || strings.Contains(msg, "6F00") {
			t.Errorf("%v: message %q (empty or internal)", tt.err, msg)
		}
	}
}

// TestPromptRateLimit: each origin may cause PromptsPerMinute prompts per
// minute; more get rate_limited without a prompt. Other origins are not affected.
func TestPromptRateLimit(t *testing.T) {
	b := newFakeBackend()
	b.auth = func(ctx context.Context, origin, _ string, p prompt.Prompter) (*token.Token, error) {
		pin, err := p.PIN(ctx, prompt.Request{Origin: origin})
		prompt.Zero(pin)
		return nil, err
	}
	var mu sync.Mutex
	shown := map[string]int{}
	p := prompttest.Func(func(_ context.Context, req prompt.Request) ([]byte, error) {
		mu.Lock()
		shown[req.Origin]++
		mu.Unlock()
		return nil, prompt.ErrCancelled
	})
	ts := startServer(t, b, p, Options{PromptsPerMinute: 2}, allowPeer)
	c := ts.mustDial(t, goodOrigin)
	for i, want := range []string{"user_cancelled", "user_cancelled", "rate_limited", "rate_limited"} {
		m := roundTrip(t, c, map[string]any{"id": i, "type": "authenticate", "challenge": testChallenge})
		if errCode(m) != want {
			t.Errorf("request %d: %v, want %s", i, m, want)
		}
	}
	// Another connection from the same origin shares the bucket.
	c2 := ts.mustDial(t, goodOrigin)
	if m := roundTrip(t, c2, map[string]any{"id": 1, "type": "authenticate", "challenge": testChallenge}); errCode(m) != "rate_limited" {
		t.Errorf("same origin, new connection: %v", m)
	}
	c3 := ts.mustDial(t, otherOrigin)
	if m := roundTrip(t, c3, map[string]any{"id": 1, "type": "authenticate", "challenge": testChallenge}); errCode(m) != "user_cancelled" {
		t.Errorf("other origin: %v", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if shown[goodOrigin] != 2 || shown[otherOrigin] != 1 {
		t.Errorf("prompts shown %v", shown)
	}
}

// TestNoPrompter: without a prompter the agent still serves status, and
// authenticate says prompt_unavailable (through the real error path).
func TestNoPrompter(t *testing.T) {
	b := newFakeBackend()
	b.auth = func(_ context.Context, _, _ string, p prompt.Prompter) (*token.Token, error) {
		if p == nil {
			return nil, agent.ErrPromptUnavailable
		}
		return nil, nil
	}
	ts := startServer(t, b, nil, Options{}, allowPeer)
	c := ts.mustDial(t, goodOrigin)
	if m := roundTrip(t, c, map[string]any{"id": 1, "type": "authenticate", "challenge": testChallenge}); errCode(m) != "prompt_unavailable" {
		t.Errorf("authenticate: %v", m)
	}
	if m := roundTrip(t, c, map[string]any{"id": 2, "type": "status"}); m["service"] != "up" {
		t.Errorf("status: %v", m)
	}
}

// TestConcurrentRequestsPerConnection: slow requests do not block status on
// the same connection; more than maxInFlight slow ones get busy.
func TestConcurrentRequestsPerConnection(t *testing.T) {
	b := newFakeBackend()
	release := make(chan struct{})
	b.auth = func(ctx context.Context, origin, _ string, _ prompt.Prompter) (*token.Token, error) {
		select {
		case <-release:
			return &token.Token{Origin: origin}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ts := startServer(t, b, nil, Options{}, allowPeer)
	c := ts.mustDial(t, goodOrigin)
	for i := range maxInFlight + 1 {
		if err := c.WriteJSON(map[string]any{"id": i, "type": "authenticate", "challenge": testChallenge}); err != nil {
			t.Fatal(err)
		}
	}
	m := readReply(t, c)
	if m["id"] != float64(maxInFlight) || errCode(m) != "busy" {
		t.Fatalf("request over the per-connection limit: %v", m)
	}
	if m := roundTrip(t, c, map[string]any{"id": "s", "type": "status"}); m["id"] != "s" {
		t.Fatalf("status while requests are pending: %v", m)
	}
	close(release)
	seen := map[float64]bool{}
	for range maxInFlight {
		m := readReply(t, c)
		if _, ok := m["token"]; !ok {
			t.Errorf("reply %v", m)
		}
		id, ok := m["id"].(float64)
		if !ok {
			t.Fatalf("reply with id %v, want a number", m["id"])
		}
		seen[id] = true
	}
	if len(seen) != maxInFlight {
		t.Errorf("replies for %v", seen)
	}
}

// TestShutdown: stopping the server closes clients with 1001 and ends
// every goroutine (goleak in TestMain); the subscription is released.
func TestShutdown(t *testing.T) {
	b := newFakeBackend()
	core := startServerNoCleanup(t, b)
	c := core.ts.mustDial(t, goodOrigin)
	roundTrip(t, c, map[string]any{"id": 1, "type": "hello"})
	if b.subscribers() != 1 {
		t.Fatalf("%d subscribers", b.subscribers())
	}
	core.stop()
	if got := closeCode(t, c); got != websocket.CloseGoingAway {
		t.Errorf("close code %d, want 1001", got)
	}
	if b.subscribers() != 0 {
		t.Errorf("%d subscribers after shutdown", b.subscribers())
	}
}

type stoppable struct {
	ts   *testServer
	stop func()
}

func startServerNoCleanup(t *testing.T, b Backend) stoppable {
	s, err := New(nil, b, nil, Options{Ports: []int{0}, AllowedOrigins: []string{goodOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	s.checkPeer = allowPeer
	port, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	return stoppable{ts: &testServer{Server: s, port: port}, stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"type":"hello","protocol":1}`,
		`{"id":"a","type":"authenticate","challenge":"` + testChallenge + `"}`,
		`{"id":1,"type":"status","pin":"1"}`,
		`{"id":1,"type":"status","type":"x"}`,
		`[1]`, `{`, `{"id":-1e9,"type":"certificates"}`,
		`{"id":2,"type":"certificates","card":"3f8a2e0c51b94d7e8a1c6b2d9e4f7a10"}`,
		`{"id":3,"type":"authenticate","challenge":"` + testChallenge + `","card":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseRequest(data)
		if err != nil {
			return
		}
		// An accepted request is a known type, with only its fields, none refused.
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) != nil {
			t.Fatalf("accepted a non-object: %q", data)
		}
		allowed, ok := allowedFields[req.Type]
		if !ok {
			t.Fatalf("accepted type %q", req.Type)
		}
		for k := range m {
			if !allowed[k] {
				t.Fatalf("accepted field %q in %q", k, data)
			}
		}
		if req.Type == reqAuthenticate && req.Challenge == "" {
			t.Fatal("authenticate without a challenge")
		}
		if len(req.Card) > maxCardIDLen || strings.ContainsFunc(req.Card, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			t.Fatalf("accepted card %q", req.Card)
		}
	})
}
