//go:build linux

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/api"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// reader is the vpcd slot the card goes into.
var reader = pcsctest.ReaderNames[0]

// noLeaks checks, when the test and all its cleanups are done, that every
// goroutine started since this call has ended. Call it first in a test, so
// that its cleanup runs last.
//
// The private pcscd's own goroutines (a test may restart it) are not the
// agent's and are ignored here; TestMain checks for every goroutine once
// pcscd is stopped.
func noLeaks(t *testing.T) {
	t.Helper()
	pcsctest.Require(t)
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/cardagent/cardagent/pcsc/pcsctest.(*PCSCD).start.func1"),
		goleak.IgnoreAnyFunction("os/exec.(*Cmd).writerDescriptor.func1"),
	}
	t.Cleanup(func() {
		// goleak.Find retries for a while: goroutines on their way out
		// (closed connections, a killed pinentry's waiter) may finish.
		if err := goleak.Find(opts...); err != nil {
			t.Errorf("goroutines left: %v", err)
		}
	})
}

// cardEnv is the private pcscd with the virtual card behind a fault injector.
type cardEnv struct {
	p    *pcsctest.PCSCD
	card *vpiv.Card
	inj  *vcard.Injector
	slot *vcard.Slot

	mu   sync.Mutex
	sent []sentAPDU

	// restarts counts pcscd restarts needed because vpcd no longer saw a
	// card in the slot after one vanished mid-APDU.
	restarts int
}

func newCardEnv(t *testing.T) *cardEnv {
	t.Helper()
	p := pcsctest.Require(t)
	e := &cardEnv{p: p, card: newCard(t), inj: &vcard.Injector{}}
	t.Cleanup(func() {
		e.inj.Disarm()
		e.remove(t)
	})
	return e
}

// insert puts the card into reader 0 and waits until pcscd sees it. With
// Debian's vpcd, after a card vanished in the middle of an APDU, pcscd may
// never see a card in that slot again: then pcscd is restarted (as
// pcsctest.Restart does) and the card inserted once more.
func (e *cardEnv) insert(t testing.TB) {
	t.Helper()
	e.remove(t)
	for attempt := 0; ; attempt++ {
		if err := e.p.AwaitCard(0, false, 5*time.Second); err == nil {
			slot, err := vcard.Insert(e.p.Addr(0), e.inj.Card(e.card), e.inj.Options(vcard.Options{BeforeAPDU: e.record}))
			if err != nil {
				t.Fatalf("inserting the card: %v", err)
			}
			e.slot = slot
			if err := e.p.AwaitCard(0, true, 3*time.Second); err == nil {
				return
			}
			e.remove(t)
		}
		if attempt == 2 {
			t.Fatalf("pcscd does not see the card, even after %d restarts\n%s", attempt, e.p.Log())
		}
		t.Logf("pcscd does not see the card in %s: restarting pcscd (vpcd wedged after a card vanished mid-APDU)", reader)
		e.restarts++
		if err := e.p.Restart(); err != nil {
			t.Fatalf("restarting pcscd: %v", err)
		}
	}
}

// remove pulls the card (nothing when it is out) and waits until pcscd sees the slot empty.
func (e *cardEnv) remove(t testing.TB) {
	t.Helper()
	if e.slot == nil {
		return
	}
	e.slot.Remove()
	e.slot = nil
	_ = e.p.AwaitCard(0, false, 3*time.Second)
}

// gone reports whether the card's connection to vpcd has ended (the card was pulled by a fault).
func (e *cardEnv) gone() bool {
	if e.slot == nil {
		return true
	}
	select {
	case <-e.slot.Done():
		return true
	default:
		return false
	}
}

// record notes every APDU the host sends (before any fault applies).
func (e *cardEnv) record(cmd []byte) vcard.Fault {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = append(e.sent, sentAPDU{ins: cmd[1], data: len(cmd) > 5})
	return vcard.Pass
}

type sentAPDU struct {
	ins  byte
	data bool
}

// clearSent forgets the APDUs sent so far.
func (e *cardEnv) clearSent() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = nil
}

// sentCount returns how many APDUs the host sent since clearSent, and how
// many of them were a VERIFY carrying a PIN.
func (e *cardEnv) sentCount() (all, pinVerifies int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, a := range e.sent {
		if a.ins == 0x20 && a.data {
			pinVerifies++
		}
	}
	return len(e.sent), pinVerifies
}

// agentOpts tune one agent under test.
type agentOpts struct {
	PromptTimeout  time.Duration
	RequestTimeout time.Duration
	MaxConnections int
	// Open replaces how the card service connects to a card.
	Open func(ctx context.Context, reader string) (pcsc.Session, error)
}

// agentUT is the card service and the loopback API, in this process, with
// the real PC/SC stack below and the real peer check.
type agentUT struct {
	svc  *agent.CardService
	port int
	logs *observer.ObservedLogs
	stop func()
}

func startAgent(t *testing.T, p prompt.Prompter, o agentOpts) *agentUT {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	svc := &agent.CardService{Log: log.Named("agent"), PromptTimeout: o.PromptTimeout, Open: o.Open}
	srv, err := api.New(log.Named("api"), svc, p, api.Options{
		Ports:            []int{0},
		AllowedOrigins:   []string{origin},
		PromptsPerMinute: 1000,
		RequestTimeout:   o.RequestTimeout,
		MaxConnections:   o.MaxConnections,
	})
	if err != nil {
		t.Fatal(err)
	}
	port, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sdone, adone := make(chan error, 1), make(chan error, 1)
	go func() { sdone <- svc.Serve(ctx) }()
	go func() { adone <- srv.Serve(ctx) }()
	var once sync.Once
	a := &agentUT{svc: svc, port: port, logs: logs}
	a.stop = func() {
		once.Do(func() {
			cancel()
			for name, ch := range map[string]chan error{"card service": sdone, "api": adone} {
				select {
				case err := <-ch:
					if err != nil {
						t.Errorf("%s Serve: %v", name, err)
					}
				case <-time.After(20 * time.Second):
					t.Errorf("%s did not stop within 20 s", name)
				}
			}
			// The PIN never reaches a log line.
			for _, e := range logs.All() {
				if line := e.Message + fmt.Sprint(e.ContextMap()); strings.Contains(line, markerPIN) || strings.Contains(line, wrongPIN) {
					t.Errorf("log line with a PIN: %s", line)
				}
			}
		})
	}
	t.Cleanup(a.stop)
	return a
}

// cardState returns the state of the card in reader ("" for none) and the service state.
func (a *agentUT) cardState() (string, wire.ServiceState) {
	st := a.svc.Status()
	for _, r := range st.Readers {
		if r.Name == reader && r.Card != nil {
			return r.Card.State, st.Service
		}
	}
	return "", st.Service
}

// waitCard waits until the agent reports want for the card in reader.
func (a *agentUT) waitCard(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, svc := a.cardState()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("card state %q (service %s) after %v, want %q", got, svc, timeout, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type msg map[string]any

func errCode(m msg) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// wsClient is the browser: a WebSocket client that records everything it receives.
type wsClient struct {
	c    *websocket.Conn
	in   chan msg
	done chan struct{}

	mu     sync.Mutex
	all    []string // every message received, raw
	events []msg
}

func dial(t testing.TB, port int) *wsClient {
	t.Helper()
	c, err := tryDial(port)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.close() })
	return c
}

func tryDial(port int) (*wsClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(fmt.Sprintf("ws://127.0.0.1:%d%s", port, api.PathWS), http.Header{"Origin": {origin}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	c := &wsClient{c: conn, in: make(chan msg, 1024), done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *wsClient) read() {
	defer close(c.done)
	defer close(c.in)
	for {
		_, data, err := c.c.ReadMessage()
		if err != nil {
			return
		}
		var m msg
		if json.Unmarshal(data, &m) != nil {
			m = msg{"type": "not-json", "raw": string(data)}
		}
		c.mu.Lock()
		c.all = append(c.all, string(data))
		if m["type"] == "event" {
			c.events = append(c.events, m)
		}
		c.mu.Unlock()
		select {
		case c.in <- m:
		default: // a test that does not read replies does not block the reader
		}
	}
}

// close closes the connection and waits for the reader goroutine.
func (c *wsClient) close() {
	c.c.Close()
	<-c.done
}

func (c *wsClient) send(t testing.TB, v any) {
	t.Helper()
	if err := c.c.WriteJSON(v); err != nil {
		t.Fatalf("sending: %v", err)
	}
}

// reply waits up to timeout for the reply to id (events are skipped).
func (c *wsClient) reply(t testing.TB, id any, timeout time.Duration) msg {
	t.Helper()
	m, err := c.tryReply(id, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (c *wsClient) tryReply(id any, timeout time.Duration) (msg, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				return nil, fmt.Errorf("connection closed before the reply to %v", id)
			}
			if m["type"] != "event" && fmt.Sprint(m["id"]) == fmt.Sprint(id) {
				return m, nil
			}
		case <-timer.C:
			return nil, fmt.Errorf("no reply to %v within %v", id, timeout)
		}
	}
}

// event waits for the next event of kind (other messages are skipped).
func (c *wsClient) event(t testing.TB, kind string, timeout time.Duration) msg {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				t.Fatalf("connection closed before a %s event", kind)
			}
			if m["type"] == "event" && m["event"] == kind {
				return m
			}
		case <-timer.C:
			t.Fatalf("no %s event within %v", kind, timeout)
		}
	}
}

// logText is the agent's log so far, one entry a line (for failure messages).
func (a *agentUT) logText() string {
	var b strings.Builder
	for _, e := range a.logs.All() {
		fmt.Fprintf(&b, "%s %s %s %v\n", e.Time.Format("15:04:05.000"), e.LoggerName, e.Message, e.ContextMap())
	}
	return b.String()
}

// eventKinds returns the kinds of the events received so far.
func (c *wsClient) eventKinds() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.events))
	for i, e := range c.events {
		out[i], _ = e["event"].(string)
	}
	return out
}

// eventTimes returns the times of the events received so far.
func (c *wsClient) eventTimes(t testing.TB) []time.Time {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Time, len(c.events))
	for i, e := range c.events {
		s, _ := e["time"].(string)
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("event %v: time %q: %v", e, s, err)
		}
		out[i] = tm
	}
	return out
}

// received returns every raw message received so far.
func (c *wsClient) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.all...)
}

var challenges = token.NewMemoryStore()

func verifier(t testing.TB) *token.Verifier {
	pki := testPKI(t)
	return &token.Verifier{Roots: pki.Roots(), Intermediates: pki.Intermediates(), Challenges: challenges}
}

// authenticate sends an authenticate request with a fresh challenge and
// returns the challenge; read the reply with reply(id).
func (c *wsClient) authenticate(t testing.TB, id any) string {
	t.Helper()
	ch, err := verifier(t).NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, map[string]any{"id": id, "type": "authenticate", "challenge": ch})
	return ch
}

// signIn authenticates and checks the token verifies: the agent serves.
func (c *wsClient) signIn(t testing.TB, id any) {
	t.Helper()
	ch := c.authenticate(t, id)
	m := c.reply(t, id, 20*time.Second)
	raw, _ := json.Marshal(m["token"])
	if m["token"] == nil {
		t.Fatalf("sign-in: reply %v", m)
	}
	if err := verifyRaw(t, raw, ch); err != nil {
		t.Fatalf("sign-in: token does not verify: %v", err)
	}
}

// verifyRaw checks a token (JSON) for origin and challenge ch.
func verifyRaw(t testing.TB, raw []byte, ch string) error {
	tok, err := token.ParseToken(raw)
	if err != nil {
		return err
	}
	_, err = verifier(t).Verify(tok, origin, ch)
	return err
}

// status asks for status and returns the card state in reader ("" for none) and the service.
func (c *wsClient) status(t testing.TB, id any) (card, service string) {
	t.Helper()
	c.send(t, map[string]any{"id": id, "type": "status"})
	m := c.reply(t, id, 5*time.Second)
	service, _ = m["service"].(string)
	rs, _ := m["readers"].([]any)
	for _, r := range rs {
		rm, _ := r.(map[string]any)
		if rm["name"] == reader {
			if cd, ok := rm["card"].(map[string]any); ok {
				card, _ = cd["state"].(string)
			}
		}
	}
	return card, service
}

// fixedPIN answers every prompt with pin at once.
type fixedPIN string

func (p fixedPIN) PIN(context.Context, prompt.Request) ([]byte, error) { return []byte(p), nil }

// blockingPrompt signals when it is shown and waits for ctx to end (the
// prompt was closed by the agent), reporting why on closed.
type blockingPrompt struct {
	shown  chan struct{}
	closed chan error
}

func newBlockingPrompt() *blockingPrompt {
	return &blockingPrompt{shown: make(chan struct{}, 1), closed: make(chan error, 1)}
}

func (b *blockingPrompt) PIN(ctx context.Context, _ prompt.Request) ([]byte, error) {
	b.shown <- struct{}{}
	<-ctx.Done()
	b.closed <- context.Cause(ctx)
	return nil, prompt.ErrCancelled
}

func within(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
}
