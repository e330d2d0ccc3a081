package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/prompt/prompttest"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// markerPIN is the card's PIN in the end-to-end tests: it must appear in no
// log line and no message the agent sends.
const markerPIN = "804417"

var e2ePKI = sync.OnceValues(testpki.New)

func e2eCard(t testing.TB) (*vpiv.Card, *testpki.PKI) {
	t.Helper()
	pki, err := e2ePKI()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{UUID: "555253521108", Surname: "RANDOM", Forename: "USERQ", DaysLeft: 400},
		func(c *vpiv.Config) { c.PIN = markerPIN })
	if err != nil {
		t.Fatal(err)
	}
	return card, pki
}

// agentUnderTest is the card service (real PC/SC through the private pcscd)
// behind the API server (real peer check).
type agentUnderTest struct {
	svc  *agent.CardService
	ts   *testServer
	logs *observer.ObservedLogs

	mu      sync.Mutex
	replies []string // every message any test client received
}

func startAgent(t testing.TB, p prompt.Prompter, opts Options) *agentUnderTest {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	a := startAgentLog(t, p, opts, zap.New(core))
	a.logs = logs
	return a
}

func startAgentLog(t testing.TB, p prompt.Prompter, opts Options, log *zap.Logger) *agentUnderTest {
	t.Helper()
	a := &agentUnderTest{svc: &agent.CardService{Log: log.Named("agent")}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.svc.Serve(ctx) }()
	if opts.Ports == nil {
		opts.Ports = []int{0}
	}
	if opts.AllowedOrigins == nil {
		opts.AllowedOrigins = []string{goodOrigin}
	}
	if opts.PromptsPerMinute == 0 {
		opts.PromptsPerMinute = 1000 // the rate limit has its own test
	}
	s, err := New(log.Named("api"), a.svc, p, opts)
	if err != nil {
		t.Fatal(err)
	}
	port, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-sdone; err != nil {
			t.Errorf("api Serve: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("card service Serve: %v", err)
		}
	})
	a.ts = &testServer{Server: s, port: port}
	return a
}

// waitCard waits until the service reports want ("ready", or "" for no card) in the first reader.
func (a *agentUnderTest) waitCard(t testing.TB, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := a.svc.Status()
		got := ""
		for _, r := range st.Readers {
			if r.Name == pcsctest.ReaderNames[0] && r.Card != nil {
				got = r.Card.State
			}
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("card state %q, want %q: %+v", got, want, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a WebSocket client that records every message it receives.
type client struct {
	a *agentUnderTest
	c *websocket.Conn
	// events read while waiting for a reply, in order: an event may arrive
	// before the reply it relates to (card_removed before the failed
	// authenticate's reply).
	pending []msg
}

func (a *agentUnderTest) client(t testing.TB, origin string) *client {
	t.Helper()
	h := http.Header{"Origin": {origin}}
	c, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial("ws://"+a.ts.host()+PathWS, h)
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("dial: %v (HTTP %d)", err, code)
	}
	t.Cleanup(func() { c.Close() })
	return &client{a: a, c: c}
}

func (c *client) read(t testing.TB) msg {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, data, err := c.c.ReadMessage()
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	c.a.mu.Lock()
	c.a.replies = append(c.a.replies, string(data))
	c.a.mu.Unlock()
	var m msg
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not JSON: %s", data)
	}
	return m
}

// reply reads until the reply to id; events on the way are kept for
// nextEvent.
func (c *client) reply(t testing.TB, id any) msg {
	t.Helper()
	for {
		m := c.read(t)
		if m["type"] == "event" {
			c.pending = append(c.pending, m)
			continue
		}
		if fmt.Sprint(m["id"]) == fmt.Sprint(id) {
			return m
		}
	}
}

// nextEvent returns the next event (kept by reply, or read).
func (c *client) nextEvent(t testing.TB) msg {
	t.Helper()
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		return m
	}
	for {
		if m := c.read(t); m["type"] == "event" {
			return m
		}
	}
}

// event skips events until one of kind arrives.
func (c *client) event(t testing.TB, kind string) msg {
	t.Helper()
	for {
		if m := c.nextEvent(t); m["event"] == kind {
			return m
		}
	}
}

func (c *client) send(t testing.TB, v any) {
	t.Helper()
	if err := c.c.WriteJSON(v); err != nil {
		t.Fatal(err)
	}
}

func (c *client) authenticate(t testing.TB, id any, challenge string) msg {
	t.Helper()
	c.send(t, map[string]any{"id": id, "type": "authenticate", "challenge": challenge})
	return c.reply(t, id)
}

func newVerifier(t testing.TB, pki *testpki.PKI) *token.Verifier {
	return &token.Verifier{Roots: pki.Roots(), Intermediates: pki.Intermediates(), Challenges: token.NewMemoryStore()}
}

func tokenOf(t testing.TB, m msg) *token.Token {
	t.Helper()
	raw, err := json.Marshal(m["token"])
	if err != nil {
		t.Fatal(err)
	}
	tok, err := token.ParseToken(raw)
	if err != nil {
		t.Fatalf("token %s: %v", raw, err)
	}
	return tok
}

// TestEndToEnd drives sign-in over a real WebSocket through the real card
// service, pcscd, vpcd and the virtual PIV card.
func TestEndToEnd(t *testing.T) {
	p := pcsctest.Require(t)
	card, pki := e2eCard(t)
	sw := prompttest.NewSwitch(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(markerPIN), nil }))
	a := startAgent(t, sw, Options{})
	slot := p.Insert(t, 0, card, vcard.Options{})
	a.waitCard(t, wire.CardReady)
	v := newVerifier(t, pki)
	c := a.client(t, goodOrigin)

	t.Run("status", func(t *testing.T) {
		c.send(t, map[string]any{"id": "st", "type": "status"})
		m := c.reply(t, "st")
		st := decode[replyStatus](t, m)
		if len(st.Readers) != 2 {
			t.Fatalf("status %v", m)
		}
		cd := st.Readers[0].Card
		if cd.state() != "ready" || cd.Kind != "piv" || cd.Holder == nil || cd.Holder.Name != "Userq RANDOM" || cd.tries() != 3 {
			t.Errorf("status %v", m)
		}
	})

	t.Run("authenticate", func(t *testing.T) {
		var got prompt.Request
		sw.Set(prompttest.Func(func(_ context.Context, req prompt.Request) ([]byte, error) {
			got = req
			return []byte(markerPIN), nil
		}))
		ch, err := v.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		m := c.authenticate(t, 1, ch)
		tok := tokenOf(t, m)
		res, err := v.Verify(tok, goodOrigin, ch)
		if err != nil {
			t.Fatalf("token does not verify: %v (%v)", err, m)
		}
		if res.Holder.UUID != "555253521108" || tok.Algorithm != token.RS256 || tok.Origin != goodOrigin {
			t.Errorf("result %+v token %+v", res.Holder, tok)
		}
		if got.Origin != goodOrigin || got.Holder != "Userq RANDOM" || got.TriesLeft != 3 || got.Purpose != "sign in" {
			t.Errorf("prompt %+v", got)
		}
		// Replayed, or presented to another origin: the verifier refuses.
		if _, err := v.Verify(tok, goodOrigin, ch); token.ReasonOf(err) == "" {
			t.Errorf("replayed token: %v", err)
		}
		ch2, _ := v.NewChallenge()
		tok2 := tokenOf(t, c.authenticate(t, 2, ch2))
		if _, err := v.Verify(tok2, "https://evil.example", ch2); err == nil {
			t.Error("token accepted for another origin")
		}
	})

	t.Run("wrong PIN", func(t *testing.T) {
		sw.Set(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte("000000"), nil }))
		before := card.PINTries()
		m := c.authenticate(t, 3, testChallenge)
		if e := decode[replyError](t, m).Error; e.Code != "wrong_pin" || e.TriesLeft == nil || *e.TriesLeft != before-1 || card.PINTries() != before-1 {
			t.Fatalf("reply %v, card tries %d (before %d)", m, card.PINTries(), before)
		}
		// The next prompt shows the tries left; the right PIN resets them.
		var got prompt.Request
		sw.Set(prompttest.Func(func(_ context.Context, req prompt.Request) ([]byte, error) {
			got = req
			return []byte(markerPIN), nil
		}))
		if m := c.authenticate(t, 4, testChallenge); m["token"] == nil {
			t.Fatalf("reply %v", m)
		}
		if got.TriesLeft != before-1 || card.PINTries() != before {
			t.Errorf("prompt showed %d tries, card has %d", got.TriesLeft, card.PINTries())
		}
		// Both changes of the tries left were pushed as card_changed.
		for _, want := range []int{before - 1, before} {
			ev := c.event(t, "card_changed")
			if tries := decode[replyEvent](t, ev).Card.tries(); tries != want {
				t.Errorf("card_changed %v, want tries_left %d", ev, want)
			}
		}
	})

	t.Run("cancel", func(t *testing.T) {
		sw.Set(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return nil, prompt.ErrCancelled }))
		before := card.Signatures()
		if m := c.authenticate(t, 5, testChallenge); errCode(m) != "user_cancelled" {
			t.Fatalf("reply %v", m)
		}
		if card.Signatures() != before || card.PINTries() != 3 {
			t.Errorf("signatures %d (before %d), tries %d", card.Signatures(), before, card.PINTries())
		}
	})

	t.Run("busy: 20 concurrent sign-ins", func(t *testing.T) {
		release := make(chan struct{})
		shown := make(chan struct{}, 20)
		sw.Set(prompttest.Func(func(ctx context.Context, _ prompt.Request) ([]byte, error) {
			shown <- struct{}{}
			select {
			case <-release:
				return []byte(markerPIN), nil
			case <-ctx.Done():
				return nil, prompt.ErrCancelled
			}
		}))
		const n = 20
		clients := make([]*client, n)
		for i := range clients {
			clients[i] = a.client(t, goodOrigin)
		}
		for i, cl := range clients {
			cl.send(t, map[string]any{"id": i, "type": "authenticate", "challenge": testChallenge})
		}
		select {
		case <-shown:
		case <-time.After(10 * time.Second):
			t.Fatal("no prompt")
		}
		var (
			mu     sync.Mutex
			codes  = map[string]int{}
			tokens int
			wg     sync.WaitGroup
		)
		for i, cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := cl.reply(t, i)
				mu.Lock()
				if m["token"] != nil {
					tokens++
				} else {
					codes[errCode(m)]++
				}
				mu.Unlock()
			}()
		}
		// Wait for the 19 busy answers while the prompt is still open.
		deadline := time.After(10 * time.Second)
		for {
			mu.Lock()
			nb := codes["busy"]
			mu.Unlock()
			if nb == n-1 {
				break
			}
			select {
			case <-deadline:
				t.Fatalf("busy answers %v while the prompt is open, want %d", codes, n-1)
			case <-time.After(5 * time.Millisecond):
			}
		}
		close(release)
		wg.Wait()
		if tokens != 1 || codes["busy"] != n-1 || sw.Calls() != 1 {
			t.Errorf("%d tokens, codes %v, %d prompts; want 1 token, %d busy, 1 prompt", tokens, codes, sw.Calls(), n-1)
		}
	})

	t.Run("disallowed origin refused before any prompt", func(t *testing.T) {
		sw.Set(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(markerPIN), nil }))
		for _, o := range []string{"https://good.example.evil", "http://good.example", "null", ""} {
			h := http.Header{}
			if o != "" {
				h.Set("Origin", o)
			}
			_, resp, err := (&websocket.Dialer{}).Dial("ws://"+a.ts.host()+PathWS, h)
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("origin %q: %v (%v)", o, err, resp)
			}
		}
		if sw.Calls() != 0 {
			t.Errorf("%d prompts for refused origins", sw.Calls())
		}
	})

	t.Run("card removed during the prompt", func(t *testing.T) {
		shown := make(chan struct{}, 1)
		closed := make(chan error, 1)
		sw.Set(prompttest.Func(func(ctx context.Context, _ prompt.Request) ([]byte, error) {
			shown <- struct{}{}
			<-ctx.Done()
			closed <- context.Cause(ctx)
			return nil, prompt.ErrCancelled
		}))
		c.send(t, map[string]any{"id": 6, "type": "authenticate", "challenge": testChallenge})
		select {
		case <-shown:
		case <-time.After(10 * time.Second):
			t.Fatal("no prompt")
		}
		card.ClearLog()
		start := time.Now()
		if err := slot.Remove(); err != nil {
			t.Fatal(err)
		}
		m := c.reply(t, 6)
		if errCode(m) != "card_removed" {
			t.Fatalf("reply %v", m)
		}
		t.Logf("card_removed %v after the removal", time.Since(start).Round(time.Millisecond))
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("the prompt was not closed")
		}
		if n := card.APDUCount(); n != 0 || card.PINTries() != 3 {
			t.Errorf("%d APDUs after the prompt opened (INS % X), tries %d", n, card.INSLog(), card.PINTries())
		}
		c.event(t, "card_removed")
	})

	t.Run("no card", func(t *testing.T) {
		a.waitCard(t, "")
		sw.Set(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(markerPIN), nil }))
		if m := c.authenticate(t, 7, testChallenge); errCode(m) != "no_card" {
			t.Fatalf("reply %v", m)
		}
		if sw.Calls() != 0 {
			t.Error("prompted without a card")
		}
	})

	t.Run("card inserted again", func(t *testing.T) {
		card.ClearLog()
		p.Insert(t, 0, card, vcard.Options{})
		// card_reading first, before the agent sent the card anything; the
		// next card event is card_inserted with the card read.
		ev := c.event(t, "card_reading")
		if e := decode[replyEvent](t, ev); e.Card.state() != "reading" || e.Card.ATR == "" || e.Reader != pcsctest.ReaderNames[0] {
			t.Errorf("event %v", ev)
		}
		if m := c.nextEvent(t); m["event"] != "card_inserted" {
			t.Fatalf("after card_reading: %v, want card_inserted", m)
		} else if decode[replyEvent](t, m).Card.state() != "ready" {
			t.Errorf("event %v", m)
		}
		if card.APDUCount() == 0 {
			t.Error("card_inserted without the card being read")
		}
		if m := c.authenticate(t, 8, testChallenge); m["token"] == nil {
			t.Fatalf("reply %v", m)
		}
	})

	t.Run("marker PIN in no log line and no reply", func(t *testing.T) {
		for _, e := range a.logs.All() {
			if line := e.Message + fmt.Sprint(e.ContextMap()); strings.Contains(line, markerPIN) {
				t.Errorf("log line with the PIN: %s", line)
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.replies) < 10 {
			t.Fatalf("only %d replies captured", len(a.replies))
		}
		for _, r := range a.replies {
			if strings.Contains(r, markerPIN) {
				t.Errorf("reply with the PIN: %s", r)
			}
		}
	})
}

// TestEndToEndPinentry: the same flow with prompt.Pinentry running the
// scripted pinentry program (right PIN, wrong PIN, cancel).
func TestEndToEndPinentry(t *testing.T) {
	p := pcsctest.Require(t)
	if testing.Short() {
		t.Skip("builds the scripted pinentry")
	}
	bin := filepath.Join(t.TempDir(), "scripted")
	root := filepath.Join("..", "..")
	build := exec.Command("go", "build", "-o", bin, "./testdata/pinentry/scripted")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the scripted pinentry: %v\n%s", err, out)
	}
	card, pki := e2eCard(t)
	sw := &prompttest.Switch{}
	a := startAgent(t, sw, Options{})
	p.Insert(t, 0, card, vcard.Options{})
	a.waitCard(t, wire.CardReady)
	v := newVerifier(t, pki)
	c := a.client(t, goodOrigin)
	tests := []struct {
		name  string
		args  []string
		code  string
		tries int
	}{
		{"right PIN", []string{"-pin", markerPIN}, "", 3},
		{"wrong PIN", []string{"-pin", "111111"}, "wrong_pin", 2},
		{"cancel", []string{"-action", "cancel"}, "user_cancelled", 2},
		{"right PIN again", []string{"-pin", markerPIN}, "", 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw.Set(&prompt.Pinentry{Path: bin, Args: tt.args})
			ch, err := v.NewChallenge()
			if err != nil {
				t.Fatal(err)
			}
			m := c.authenticate(t, i, ch)
			if errCode(m) != tt.code {
				t.Fatalf("reply %v, want %q", m, tt.code)
			}
			if tt.code == "" {
				if _, err := v.Verify(tokenOf(t, m), goodOrigin, ch); err != nil {
					t.Fatalf("token does not verify: %v", err)
				}
			}
			if card.PINTries() != tt.tries {
				t.Errorf("card tries %d, want %d", card.PINTries(), tt.tries)
			}
		})
	}
}

// Typed views of the protocol's messages (docs/protocol.md), holding the
// fields these tests check. A message is decoded into one before its fields
// are checked, so a message of the wrong shape fails the test with its JSON
// instead of a panic on a type assertion.
type (
	replyStatus struct {
		Readers []replyReader `json:"readers"`
	}
	replyReader struct {
		Name string     `json:"name"`
		Card *replyCard `json:"card"`
	}
	replyCard struct {
		State  string `json:"state"`
		Kind   string `json:"kind"`
		ATR    string `json:"atr"`
		Hint   string `json:"hint"`
		Holder *struct {
			Name string `json:"name"`
		} `json:"holder"`
		PIN *struct {
			TriesLeft *int `json:"tries_left"`
			Blocked   bool `json:"blocked"`
		} `json:"pin"`
	}
	replyEvent struct {
		Event  string     `json:"event"`
		Reader string     `json:"reader"`
		Card   *replyCard `json:"card"`
	}
	replyError struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			TriesLeft *int   `json:"tries_left"`
		} `json:"error"`
	}
	replyCertificates struct {
		Authentication string `json:"authentication_certificate"`
	}
)

// decode reads m as a T, failing the test with m's JSON when it does not fit.
func decode[T any](t testing.TB, m msg) T {
	t.Helper()
	var v T
	raw, err := json.Marshal(m)
	if err == nil {
		err = json.Unmarshal(raw, &v)
	}
	if err != nil {
		t.Fatalf("message does not fit %T: %v\n%s", v, err, raw)
	}
	return v
}

// noTries is what tries says when a message has no PIN tries left.
const noTries = -100

// state is the card's state, "" when there is no card.
func (c *replyCard) state() string {
	if c == nil {
		return ""
	}
	return c.State
}

// tries is the card's PIN tries left, noTries when the message has none.
func (c *replyCard) tries() int {
	if c == nil || c.PIN == nil || c.PIN.TriesLeft == nil {
		return noTries
	}
	return *c.PIN.TriesLeft
}

// blocked says whether the message reports the card's PIN blocked.
func (c *replyCard) blocked() bool { return c != nil && c.PIN != nil && c.PIN.Blocked }

// TestEndToEndBlockingTry: the wrong PIN that blocks the card is answered
// 6983 by the card (as real PIV cards do, not 63C0). The reply is
// pin_blocked, status says blocked at once and card_changed is pushed; the
// next sign-in ends with pin_blocked before any prompt.
func TestEndToEndBlockingTry(t *testing.T) {
	p := pcsctest.Require(t)
	card, _ := e2eCard(t)
	sw := prompttest.NewSwitch(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte("000000"), nil }))
	a := startAgent(t, sw, Options{})
	p.Insert(t, 0, card, vcard.Options{})
	a.waitCard(t, wire.CardReady)
	c := a.client(t, goodOrigin)
	n := card.PINTries()
	for i := 1; i <= n; i++ {
		m := c.authenticate(t, i, testChallenge)
		want := "wrong_pin"
		if i == n {
			want = "pin_blocked"
		}
		if errCode(m) != want {
			t.Fatalf("try %d: reply %v, want %s", i, m, want)
		}
		ev := c.event(t, "card_changed")
		if cd := decode[replyEvent](t, ev).Card; cd.tries() != n-i || cd.blocked() != (i == n) {
			t.Errorf("try %d: card_changed %v, want tries_left %d", i, ev, n-i)
		}
	}
	if card.PINTries() != 0 {
		t.Fatalf("card has %d tries, want 0", card.PINTries())
	}
	c.send(t, map[string]any{"id": "st", "type": "status"})
	st := c.reply(t, "st")
	readers := decode[replyStatus](t, st).Readers
	if len(readers) == 0 {
		t.Fatalf("status %v", st)
	}
	if cd := readers[0].Card; !cd.blocked() || cd.tries() != 0 {
		t.Errorf("status %v, want the PIN blocked with 0 tries", st)
	}
	calls := sw.Calls()
	if m := c.authenticate(t, "after", testChallenge); errCode(m) != "pin_blocked" {
		t.Errorf("sign-in on the blocked card: %v", m)
	}
	if sw.Calls() != calls {
		t.Error("prompted for a blocked card")
	}
}

// TestEndToEndUnusableKey: a card whose authentication key the driver cannot
// sign with (RSA-4096 in 9A) is "unsupported" in status, in cards and in its
// card_inserted event, with a hint that names the key; sign-in says so at once,
// before any prompt, and sends the card no VERIFY.
func TestEndToEndUnusableKey(t *testing.T) {
	p := pcsctest.Require(t)
	pki, err := e2ePKI()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := pki.IssueCard(testpki.CardSpec{UUID: "555253521109", Surname: "WIDE", Forename: "KEY", DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	// An RSA-4096 public key: a certificate needs no private key, and the
	// card holds none for 9A, as the driver must refuse before signing.
	n := new(big.Int).Lsh(big.NewInt(1), 4095)
	n.SetBit(n, 0, 1)
	pub := &rsa.PublicKey{N: n, E: 65537}
	tmpl := *creds.AuthCert
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, pki.AuthCA, pub, pki.AuthCAKey)
	if err != nil {
		t.Fatal(err)
	}
	wide, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	cfg := vpiv.NHSConfig(creds)
	cfg.Slots[vpiv.SlotAuthentication] = vpiv.Slot{Cert: wide}
	card, err := vpiv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sw := prompttest.NewSwitch(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(vpiv.DefaultPIN), nil }))
	a := startAgent(t, sw, Options{})
	c := a.client(t, goodOrigin)
	p.Insert(t, 0, card, vcard.Options{})
	a.waitCard(t, wire.CardUnsupported)
	// The card's card_inserted (a previous test's card may still be
	// reported going away first).
	var ev msg
	var inserted replyEvent
	for ev == nil || inserted.Card.state() == wire.CardFailed {
		ev = c.event(t, "card_inserted")
		inserted = decode[replyEvent](t, ev)
	}
	if inserted.Card.state() != "unsupported" || inserted.Card == nil || !strings.Contains(inserted.Card.Hint, "RSA-4096") {
		t.Errorf("card_inserted %v, want state unsupported and a hint naming RSA-4096", ev)
	}
	c.send(t, map[string]any{"id": "st", "type": "status"})
	st := c.reply(t, "st")
	readers := decode[replyStatus](t, st).Readers
	if len(readers) == 0 || readers[0].Card.state() != "unsupported" || !strings.Contains(readers[0].Card.Hint, "RSA-4096") {
		t.Errorf("status %v, want the card unsupported with a hint naming RSA-4096", st)
	}
	card.ClearLog()
	m := c.authenticate(t, 1, testChallenge)
	if e := decode[replyError](t, m).Error; e.Code != "unsupported_card" || !strings.Contains(e.Message, "RSA-4096") {
		t.Errorf("reply %v, want unsupported_card naming RSA-4096", m)
	}
	if sw.Calls() != 0 {
		t.Errorf("%d prompts for a key the driver cannot use", sw.Calls())
	}
	if strings.Contains(fmt.Sprintf("% X", card.INSLog()), "20") || card.PINTries() != 3 {
		t.Errorf("card saw INS % X, tries %d", card.INSLog(), card.PINTries())
	}
	// cardagent cards reads the same.
	inv, err := (&agent.Scanner{}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rep := inv.Readers[0].Card
	if rep == nil || rep.Supported || !strings.Contains(rep.Hint, "RSA-4096") {
		t.Errorf("cards: %+v", rep)
	}
}

// TestEndToEndCardName: a PIV card is an "NHS series 9/10 (PIV)" card only
// when its certificates were issued by an NHS CA; any other PIV card is a
// "PIV card", in status and in cards.
func TestEndToEndCardName(t *testing.T) {
	p := pcsctest.Require(t)
	pki, err := e2ePKI()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := pki.IssueCard(testpki.CardSpec{UUID: "555253521110", Surname: "OTHER", Forename: "VENDOR", DaysLeft: 400})
	if err != nil {
		t.Fatal(err)
	}
	// The same certificates, issued by a CA that is not the NHS's.
	caKey, err := testpki.Key(testpki.RSA2048, 900)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "Example PIV Issuing CA", Organization: []string{"Example Ltd"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	reissue := func(c *x509.Certificate, key any) *x509.Certificate {
		tmpl := *c
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca, key, caKey)
		if err != nil {
			t.Fatal(err)
		}
		out, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cfg := vpiv.NHSConfig(creds)
	cfg.Slots[vpiv.SlotAuthentication] = vpiv.Slot{Cert: reissue(creds.AuthCert, creds.AuthKey.Public()), Key: creds.AuthKey}
	cfg.Slots[vpiv.SlotSignature] = vpiv.Slot{Cert: reissue(creds.SignCert, creds.SignKey.Public()), Key: creds.SignKey}
	other, err := vpiv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nhs, _ := e2eCard(t)

	a := startAgent(t, nil, Options{})
	for _, tt := range []struct {
		name string
		card *vpiv.Card
		want string
	}{
		{"NHS issuer", nhs, "NHS series 9/10 (PIV)"},
		{"other issuer", other, "PIV card"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			slot := p.Insert(t, 0, tt.card, vcard.Options{})
			a.waitCard(t, wire.CardReady)
			if st := a.svc.Status(); len(st.Readers) == 0 || st.Readers[0].Card == nil || st.Readers[0].Card.Type != tt.want {
				t.Errorf("status %+v, want the first reader's card of type %q", st, tt.want)
			}
			inv, err := (&agent.Scanner{}).Scan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Readers) == 0 || inv.Readers[0].Card == nil || inv.Readers[0].Card.Type != tt.want {
				t.Errorf("cards %+v, want the first reader's card of type %q", inv, tt.want)
			}
			if err := slot.Remove(); err != nil {
				t.Fatal(err)
			}
			a.waitCard(t, "")
		})
	}
}

// TestEndToEndEncodings: every binary field is base64url without padding,
// ES256 signatures are JOSE's raw r||s, and a challenge with anything
// outside the base64url alphabet (CR LF, which Go's decoder skips; padding;
// standard base64) is refused before any prompt.
func TestEndToEndEncodings(t *testing.T) {
	p := pcsctest.Require(t)
	pki, err := e2ePKI()
	if err != nil {
		t.Fatal(err)
	}
	card, err := vpiv.NewNHS(pki, testpki.CardSpec{UUID: "555253521111", Surname: "CURVE", Forename: "EC", DaysLeft: 400, KeyType: testpki.P256})
	if err != nil {
		t.Fatal(err)
	}
	sw := prompttest.NewSwitch(prompttest.Func(func(context.Context, prompt.Request) ([]byte, error) { return []byte(vpiv.DefaultPIN), nil }))
	a := startAgent(t, sw, Options{})
	p.Insert(t, 0, card, vcard.Options{})
	a.waitCard(t, wire.CardReady)
	c := a.client(t, goodOrigin)

	for _, ch := range []string{
		testChallenge[:20] + "\r\n" + testChallenge[20:],
		testChallenge[:20] + "\n" + testChallenge[20:],
		testChallenge + "=",
		strings.ReplaceAll(testChallenge, "q", "+"),
		testChallenge[:42],
	} {
		if m := c.authenticate(t, "bad", ch); errCode(m) != "bad_request" {
			t.Errorf("challenge %q: %v, want bad_request", ch, m)
		}
	}
	if sw.Calls() != 0 {
		t.Errorf("%d prompts for bad challenges", sw.Calls())
	}

	v := newVerifier(t, pki)
	ch, err := v.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	m := c.authenticate(t, "ok", ch)
	tok := tokenOf(t, m)
	for _, f := range append([]string{tok.Certificate, tok.Signature}, tok.Chain...) {
		if _, err := token.DecodeBinary(f); err != nil {
			t.Errorf("binary field %q: %v", f, err)
		}
	}
	if tok.Algorithm != token.ES256 {
		t.Fatalf("algorithm %s", tok.Algorithm)
	}
	if sig, err := token.DecodeBinary(tok.Signature); err != nil || len(sig) != 64 {
		t.Errorf("ES256 signature of %d bytes (%v), want raw r||s of 64", len(sig), err)
	}
	if _, err := v.Verify(tok, goodOrigin, ch); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	c.send(t, map[string]any{"id": "certs", "type": "certificates"})
	certs := c.reply(t, "certs")
	der, err := token.DecodeBinary(decode[replyCertificates](t, certs).Authentication)
	if err != nil {
		t.Fatalf("authentication_certificate: %v\n%v", err, certs)
	}
	if cert, err := x509.ParseCertificate(der); err != nil || cert.Subject.CommonName != "555253521111_CURVE_EC" {
		t.Errorf("authentication_certificate: %v", err)
	}
}
