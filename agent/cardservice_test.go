package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testOrigin = "https://signin.example.nhs.uk"
	// markerPIN is a PIN that must never appear in a log line or an error.
	markerPIN = "739146"
)

// testChallenge is a valid challenge (32 bytes of base64url).
var testChallenge = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80"

var testPKI = sync.OnceValues(testpki.New)

func pki(t testing.TB) *testpki.PKI {
	t.Helper()
	p, err := testPKI()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newCard issues an NHS-style virtual PIV card; adjust changes its config.
func newCard(t testing.TB, spec testpki.CardSpec, adjust func(*vpiv.Config)) *vpiv.Card {
	t.Helper()
	c, err := vpiv.NewNHS(pki(t), spec, func(c *vpiv.Config) {
		c.PIN = markerPIN
		if adjust != nil {
			adjust(c)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// harness runs a CardService over in-process virtual cards and a fake
// monitor whose events the test sends.
type harness struct {
	t      *testing.T
	svc    *CardService
	logs   *observer.ObservedLogs
	events chan evReq

	mu      sync.Mutex
	cards   map[string]pcsc.Transmitter
	atrs    map[string][]byte
	readers map[string]bool
	// openGate, when set, is waited for before a card is opened.
	openGate chan struct{}
}

type evReq struct {
	ev   pcsc.Event
	done chan struct{}
}

func newHarness(t *testing.T, configure func(*CardService)) *harness {
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{t: t, logs: logs, events: make(chan evReq), cards: map[string]pcsc.Transmitter{}, atrs: map[string][]byte{}, readers: map[string]bool{}}
	h.svc = &CardService{Log: zap.New(core), Watch: h.watch, Open: h.open}
	if configure != nil {
		configure(h.svc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.svc.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.checkLogs()
	})
	return h
}

func (h *harness) watch(ctx context.Context, handler func(pcsc.Event)) error {
	for {
		select {
		case r := <-h.events:
			handler(r.ev)
			close(r.done)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (h *harness) open(ctx context.Context, reader string) (pcsc.Session, error) {
	h.mu.Lock()
	gate := h.openGate
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.cards[reader]
	if !ok {
		return nil, pcsc.ErrNoCard
	}
	return &pcsc.LocalSession{T: c, ReaderName: reader, CardATR: h.atrs[reader]}, nil
}

func (h *harness) send(ev pcsc.Event) {
	r := evReq{ev: ev, done: make(chan struct{})}
	h.events <- r
	<-r.done
}

// insert puts card into reader (adding the reader first) and, unless wait is
// false, waits until the service has read it.
func (h *harness) insert(reader string, card pcsc.Transmitter, atr []byte, wait bool) {
	h.t.Helper()
	h.mu.Lock()
	h.cards[reader], h.atrs[reader] = card, atr
	added := h.readers[reader]
	h.readers[reader] = true
	h.mu.Unlock()
	if !added {
		h.send(pcsc.Event{Kind: pcsc.ReaderAdded, Reader: reader})
	}
	h.send(pcsc.Event{Kind: pcsc.CardInserted, Reader: reader, ATR: atr})
	if wait {
		h.waitState(reader, func(c *wire.CardState) bool { return c != nil && c.State != wire.CardReading })
	}
}

func (h *harness) remove(reader string) {
	h.mu.Lock()
	delete(h.cards, reader)
	h.mu.Unlock()
	h.send(pcsc.Event{Kind: pcsc.CardRemoved, Reader: reader})
}

func (h *harness) waitState(reader string, ok func(*wire.CardState) bool) *wire.CardState {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range h.svc.Status().Readers {
			if r.Name == reader && ok(r.Card) {
				return r.Card
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("reader %s never reached the expected state: %+v", reader, h.svc.Status())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkLogs fails the test if the marker PIN appears in any log entry.
func (h *harness) checkLogs() {
	for _, e := range h.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, markerPIN) {
			h.t.Errorf("marker PIN in log line: %s", line)
		}
	}
}

func insertPIV(h *harness, reader string, card *vpiv.Card) {
	h.insert(reader, card, card.ATR(), true)
}

// fakePrompter answers each prompt with answer and records the requests.
type fakePrompter struct {
	answer func(ctx context.Context, req prompt.Request, n int) ([]byte, error)

	mu    sync.Mutex
	reqs  []prompt.Request
	shown chan prompt.Request // optional: receives every request
}

func (p *fakePrompter) PIN(ctx context.Context, req prompt.Request) ([]byte, error) {
	p.mu.Lock()
	n := len(p.reqs)
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
	if p.shown != nil {
		p.shown <- req
	}
	return p.answer(ctx, req, n)
}

func (p *fakePrompter) requests() []prompt.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]prompt.Request(nil), p.reqs...)
}

func answerPIN(pins ...string) *fakePrompter {
	return &fakePrompter{answer: func(_ context.Context, _ prompt.Request, n int) ([]byte, error) {
		return []byte(pins[min(n, len(pins)-1)]), nil
	}}
}

func answerErr(err error) *fakePrompter {
	return &fakePrompter{answer: func(context.Context, prompt.Request, int) ([]byte, error) { return nil, err }}
}

// blockingPrompter shows the prompt and waits until ctx ends or release is closed.
func blockingPrompter(release <-chan struct{}, pin string) *fakePrompter {
	return &fakePrompter{shown: make(chan prompt.Request, 32), answer: func(ctx context.Context, _ prompt.Request, _ int) ([]byte, error) {
		select {
		case <-release:
			return []byte(pin), nil
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", prompt.ErrCancelled, context.Cause(ctx))
		}
	}}
}

func verifyToken(t *testing.T, tok *token.Token, origin, challenge string) {
	t.Helper()
	store := token.NewMemoryStore()
	if err := store.Add(challenge, time.Minute); err != nil {
		t.Fatal(err)
	}
	v := &token.Verifier{Roots: pki(t).Roots(), Intermediates: pki(t).Intermediates(), Challenges: store}
	if _, err := v.Verify(tok, origin, challenge); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
}

func codeOf(err error) wire.Code {
	if err == nil {
		return ""
	}
	return Classify(err).Code
}

func countINS(log []byte, ins byte) int {
	return bytes.Count(log, []byte{ins})
}

func TestStatusAndEvents(t *testing.T) {
	h := newHarness(t, nil)
	var (
		mu     sync.Mutex
		events []wire.Event
	)
	unsub := h.svc.Subscribe(func(ev wire.Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		h.svc.Status() // callbacks may call Status
	})
	card := newCard(t, testpki.CardSpec{UUID: "555253521108", Surname: "RANDOM", Forename: "USERQ", DaysLeft: 60}, nil)
	insertPIV(h, "R0", card)

	st := h.svc.Status()
	if st.Service != wire.ServiceUp || len(st.Readers) != 1 || st.ExpiryWarningDays != 90 {
		t.Fatalf("status %+v", st)
	}
	c := st.Readers[0].Card
	if c.State != wire.CardReady || c.Kind != "piv" || c.Holder == nil || c.Holder.Name != "Userq RANDOM" || c.Holder.UUID != "555253521108" {
		t.Errorf("card %+v holder %+v", c, c.Holder)
	}
	if c.PIN == nil || c.PIN.TriesLeft != 3 || c.PIN.Blocked {
		t.Errorf("PIN %+v", c.PIN)
	}
	if len(c.Certificates) != 2 {
		t.Fatalf("%d certificates", len(c.Certificates))
	}
	for _, cert := range c.Certificates {
		if cert.DaysLeft != 59 && cert.DaysLeft != 60 || cert.Expiry != wire.ExpiryExpiring {
			t.Errorf("certificate %s: %d days, expiry %q", cert.Key, cert.DaysLeft, cert.Expiry)
		}
	}

	h.remove("R0")
	h.send(pcsc.Event{Kind: pcsc.ReaderRemoved, Reader: "R0"})
	h.send(pcsc.Event{Kind: pcsc.ServiceDown})
	h.send(pcsc.Event{Kind: pcsc.ServiceUp})
	want := []wire.EventKind{wire.EventReaderAdded, wire.EventCardReading, wire.EventCardInserted, wire.EventCardRemoved, wire.EventReaderRemoved, wire.EventServiceDown, wire.EventServiceUp}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	unsub()
	h.send(pcsc.Event{Kind: pcsc.ReaderAdded, Reader: "R1"}) // after unsubscribe: not delivered
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	var got []wire.EventKind
	for _, ev := range events {
		got = append(got, ev.Kind)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if ev := events[1]; ev.Reader != "R0" || ev.Card == nil || ev.Card.State != wire.CardReading || ev.Card.ATR == "" || ev.Card.Holder != nil {
		t.Errorf("card_reading event %+v", ev)
	}
	if ev := events[2]; ev.Reader != "R0" || ev.Card == nil || ev.Card.State != wire.CardReady || ev.Card.Holder == nil {
		t.Errorf("card_inserted event %+v", ev)
	}
	if st := h.svc.Status(); len(st.Readers) != 1 || st.Readers[0].Name != "R1" || st.Readers[0].Card != nil {
		t.Errorf("status after events: %+v", st)
	}
}

func TestExpiryStates(t *testing.T) {
	h := newHarness(t, nil)
	tests := []struct {
		days int
		want string
	}{{400, wire.ExpiryOK}, {60, wire.ExpiryExpiring}, {10, wire.ExpiryExpiring}, {-1, wire.ExpiryExpired}}
	for i, tt := range tests {
		t.Run(fmt.Sprint(tt.days), func(t *testing.T) {
			reader := fmt.Sprintf("R%d", i)
			insertPIV(h, reader, newCard(t, testpki.CardSpec{DaysLeft: tt.days}, nil))
			c := h.waitState(reader, func(c *wire.CardState) bool { return c != nil && c.State == wire.CardReady })
			for _, cert := range c.Certificates {
				if cert.Key == string(pcsc.KeyAuthentication) && cert.Expiry != tt.want {
					t.Errorf("%d days: expiry %q, want %q", cert.DaysLeft, cert.Expiry, tt.want)
				}
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	for _, tt := range []struct {
		kt  testpki.KeyType
		alg string
	}{{testpki.RSA2048, token.RS256}, {testpki.P256, token.ES256}, {testpki.P384, token.ES384}} {
		t.Run(string(tt.kt), func(t *testing.T) {
			h := newHarness(t, nil)
			card := newCard(t, testpki.CardSpec{KeyType: tt.kt, Surname: "SMITH", Forename: "MARY", DaysLeft: 400}, nil)
			insertPIV(h, "R0", card)
			p := answerPIN(markerPIN)
			tok, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p)
			if err != nil {
				t.Fatal(err)
			}
			if tok.Algorithm != tt.alg || tok.Format != token.Format || tok.Origin != testOrigin {
				t.Errorf("token %+v", tok)
			}
			verifyToken(t, tok, testOrigin, testChallenge)
			reqs := p.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d prompts", len(reqs))
			}
			r := reqs[0]
			if r.Origin != testOrigin || r.Holder != "Mary SMITH" || r.TriesLeft != 3 || r.Purpose != "sign in" || r.CardType == "" || r.Retry != "" {
				t.Errorf("prompt request %+v", r)
			}
			if card.PINTries() != 3 || card.Signatures() != 1 || card.Verified() {
				t.Errorf("card: tries %d, signatures %d, verified %v", card.PINTries(), card.Signatures(), card.Verified())
			}
			if strings.Contains(fmt.Sprint(tok), markerPIN) {
				t.Error("marker PIN in token")
			}
		})
	}
}

// unknownCard is a card with no application cardagent knows.
type unknownCard struct{}

func (unknownCard) Transmit([]byte) ([]byte, error) { return []byte{0x6A, 0x82}, nil }

func TestAuthenticateErrors(t *testing.T) {
	pinPolicy := config.Default().PIN
	tests := []struct {
		name      string
		card      func(t *testing.T) (*vpiv.Card, pcsc.Transmitter)
		prompter  *fakePrompter
		nilPrompt bool
		challenge string
		policy    PINPolicy
		want      wire.Code
		triesLeft int // in the error, for wrong_pin
		prompts   int
		cardTries int
		verifies  int // VERIFY commands the card received during Authenticate (the empty status one included)
	}{
		{name: "wrong PIN", prompter: answerPIN("000000"), want: wire.CodeWrongPIN, triesLeft: 2, prompts: 1, cardTries: 2, verifies: 2},
		{name: "last try", card: pivWith(func(c *vpiv.Config) { c.PINTriesLeft = 1 }), prompter: answerPIN("000000"), want: wire.CodePINBlocked, prompts: 1, cardTries: 0, verifies: 2},
		{name: "cancel", prompter: answerErr(prompt.ErrCancelled), want: wire.CodeUserCancelled, prompts: 1, cardTries: 3, verifies: 1},
		{name: "prompt timeout", prompter: answerErr(prompt.ErrTimeout), want: wire.CodeTimeout, prompts: 1, cardTries: 3, verifies: 1},
		{name: "prompt unavailable", prompter: answerErr(prompt.ErrUnavailable), want: wire.CodePromptUnavailable, prompts: 1, cardTries: 3, verifies: 1},
		{name: "no prompter", nilPrompt: true, want: wire.CodePromptUnavailable, cardTries: 3, verifies: 1},
		{name: "blocked", card: pivWith(func(c *vpiv.Config) { c.PINTriesLeft = -1 }), prompter: answerPIN(markerPIN), want: wire.CodePINBlocked, cardTries: 0, verifies: 1},
		{name: "bad format twice", policy: pinPolicy, prompter: answerPIN("12ab", "12"), want: wire.CodePINFormat, prompts: 2, cardTries: 3, verifies: 1},
		{name: "empty PIN twice, no policy", prompter: answerPIN(""), want: wire.CodePINFormat, prompts: 2, cardTries: 3, verifies: 1},
		{name: "bad format then right", policy: pinPolicy, prompter: answerPIN("7391", markerPIN), prompts: 2, cardTries: 3, verifies: 3},
		{name: "no card", card: func(*testing.T) (*vpiv.Card, pcsc.Transmitter) { return nil, nil }, prompter: answerPIN(markerPIN), want: wire.CodeNoCard},
		{name: "unsupported card", card: func(*testing.T) (*vpiv.Card, pcsc.Transmitter) { return nil, unknownCard{} }, prompter: answerPIN(markerPIN), want: wire.CodeUnsupportedCard},
		{name: "no authentication certificate", card: pivWith(func(c *vpiv.Config) { delete(c.Slots, vpiv.SlotAuthentication) }), prompter: answerPIN(markerPIN), want: wire.CodeNoCertificate, cardTries: 3},
		{name: "challenge too short", challenge: "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8", prompter: answerPIN(markerPIN), want: wire.CodeBadRequest, cardTries: 3},
		{name: "challenge padded", challenge: testChallenge + "=", prompter: answerPIN(markerPIN), want: wire.CodeBadRequest, cardTries: 3},
		{name: "challenge not base64url", challenge: strings.Replace(testChallenge, "q", "+", 1), prompter: answerPIN(markerPIN), want: wire.CodeBadRequest, cardTries: 3},
		{name: "challenge too long", challenge: strings.Repeat("A", 260), prompter: answerPIN(markerPIN), want: wire.CodeBadRequest, cardTries: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, func(s *CardService) { s.PINPolicy = tt.policy })
			var vc *vpiv.Card
			var tr pcsc.Transmitter
			if tt.card != nil {
				vc, tr = tt.card(t)
			} else {
				vc = newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
				tr = vc
			}
			if tr != nil {
				atr := []byte{0x3B, 0x80, 0x80, 0x01, 0x01}
				if vc != nil {
					atr = vc.ATR()
				}
				h.insert("R0", tr, atr, true)
			}
			if vc != nil {
				vc.ClearLog()
			}
			challenge := testChallenge
			if tt.challenge != "" {
				challenge = tt.challenge
			}
			var p prompt.Prompter = tt.prompter
			if tt.nilPrompt {
				p = nil
			}
			tok, err := h.svc.Authenticate(context.Background(), testOrigin, challenge, p)
			if got := codeOf(err); got != tt.want {
				t.Fatalf("Authenticate: %v (code %q), want %q", err, got, tt.want)
			}
			if tt.want == "" {
				verifyToken(t, tok, testOrigin, challenge)
				if r := tt.prompter.requests(); r[len(r)-1].Retry == "" {
					t.Errorf("second prompt has no Retry text: %+v", r)
				}
			}
			if err != nil {
				e := Classify(err)
				if e.Code == wire.CodeWrongPIN && e.TriesLeft != tt.triesLeft {
					t.Errorf("tries left %d, want %d", e.TriesLeft, tt.triesLeft)
				}
				if strings.Contains(err.Error(), markerPIN) || strings.Contains(e.Message, markerPIN) {
					t.Errorf("marker PIN in error %q", err)
				}
			}
			if tt.prompter != nil {
				if n := len(tt.prompter.requests()); n != tt.prompts {
					t.Errorf("%d prompts, want %d", n, tt.prompts)
				}
			}
			if vc != nil && tr != nil {
				if vc.PINTries() != tt.cardTries {
					t.Errorf("card PIN tries %d, want %d", vc.PINTries(), tt.cardTries)
				}
				if n := countINS(vc.INSLog(), 0x20); n != tt.verifies {
					t.Errorf("%d VERIFY commands, want %d (log % X)", n, tt.verifies, vc.INSLog())
				}
			}
		})
	}
}

func pivWith(adjust func(*vpiv.Config)) func(t *testing.T) (*vpiv.Card, pcsc.Transmitter) {
	return func(t *testing.T) (*vpiv.Card, pcsc.Transmitter) {
		c := newCard(t, testpki.CardSpec{DaysLeft: 400}, adjust)
		return c, c
	}
}

// TestStatusAfterWrongPIN: the cached PIN state follows the card.
func TestStatusAfterWrongPIN(t *testing.T) {
	h := newHarness(t, nil)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, answerPIN("000000")); codeOf(err) != wire.CodeWrongPIN {
		t.Fatal(err)
	}
	if c := h.svc.Status().Readers[0].Card; c.PIN == nil || c.PIN.TriesLeft != 2 {
		t.Fatalf("after a wrong PIN: %+v", c.PIN)
	}
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, answerPIN(markerPIN)); err != nil {
		t.Fatal(err)
	}
	if c := h.svc.Status().Readers[0].Card; c.PIN == nil || c.PIN.TriesLeft != 3 || card.PINTries() != 3 {
		t.Fatalf("after the right PIN: %+v (card %d)", c.PIN, card.PINTries())
	}
}

// TestCardRemovedDuringPrompt: pulling the card closes the prompt, the
// result is card_removed and nothing more reaches the card.
func TestCardRemovedDuringPrompt(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(h *harness, cancel context.CancelFunc)
		want wire.Code
		// stubborn: the prompt ignores the cancellation and returns the PIN anyway.
		stubborn bool
	}{
		{"card removed", func(h *harness, _ context.CancelFunc) { h.remove("R0") }, wire.CodeCardRemoved, false},
		{"client gone", func(_ *harness, cancel context.CancelFunc) { cancel() }, wire.CodeUserCancelled, false},
		{"card removed, prompt answers anyway", func(h *harness, _ context.CancelFunc) { h.remove("R0") }, wire.CodeCardRemoved, true},
		{"client gone, prompt answers anyway", func(_ *harness, cancel context.CancelFunc) { cancel() }, wire.CodeUserCancelled, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
			insertPIV(h, "R0", card)
			release := make(chan struct{})
			p := blockingPrompter(release, markerPIN)
			if tt.stubborn {
				p.answer = func(ctx context.Context, _ prompt.Request, _ int) ([]byte, error) {
					<-ctx.Done()
					return []byte(markerPIN), nil
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := h.svc.Authenticate(ctx, testOrigin, testChallenge, p)
				errc <- err
			}()
			<-p.shown
			before := card.APDUCount()
			tt.end(h, cancel)
			var err error
			select {
			case err = <-errc:
			case <-time.After(5 * time.Second):
				close(release)
				t.Fatal("the prompt was not closed")
			}
			if codeOf(err) != tt.want {
				t.Fatalf("Authenticate: %v, want %s", err, tt.want)
			}
			if n := card.APDUCount() - before; n != 0 || card.Signatures() != 0 || card.PINTries() != 3 {
				t.Errorf("%d APDUs after the prompt opened, %d signatures, %d tries", n, card.Signatures(), card.PINTries())
			}
		})
	}
}

// TestBusy: 20 concurrent sign-ins with a slow prompt: one prompt, 19 busy at once.
func TestBusy(t *testing.T) {
	h := newHarness(t, nil)
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	release := make(chan struct{})
	p := blockingPrompter(release, markerPIN)
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p)
			errs <- err
		}()
	}
	<-p.shown
	// The 19 others answer busy while the prompt is still open.
	for range n - 1 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrBusy) || codeOf(err) != wire.CodeBusy {
				t.Errorf("got %v, want busy", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("busy callers were queued behind the prompt")
		}
	}
	close(release)
	wg.Wait()
	if err := <-errs; err != nil {
		t.Errorf("the prompted call: %v", err)
	}
	if got := len(p.requests()); got != 1 {
		t.Errorf("%d prompts, want 1", got)
	}
	if card.Signatures() != 1 {
		t.Errorf("%d signatures", card.Signatures())
	}
}

func TestAuthenticateWaitsForCardBeingRead(t *testing.T) {
	h := newHarness(t, nil)
	gate := make(chan struct{})
	h.mu.Lock()
	h.openGate = gate
	h.mu.Unlock()
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	h.insert("R0", card, card.ATR(), false)
	if c := h.svc.Status().Readers[0].Card; c == nil || c.State != wire.CardReading {
		t.Fatalf("card %+v, want reading", c)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, answerPIN(markerPIN))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	close(gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestCardPulledWhileBeingRead: card_reading is followed by card_removed,
// never by card_inserted, and the card is not touched after its removal.
func TestCardPulledWhileBeingRead(t *testing.T) {
	h := newHarness(t, nil)
	var (
		mu     sync.Mutex
		events []wire.EventKind
	)
	defer h.svc.Subscribe(func(ev wire.Event) {
		if ev.Reader == "R0" && ev.Kind != wire.EventReaderAdded {
			mu.Lock()
			events = append(events, ev.Kind)
			mu.Unlock()
		}
	})()
	gate := make(chan struct{})
	h.mu.Lock()
	h.openGate = gate
	h.mu.Unlock()
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	h.insert("R0", card, card.ATR(), false)
	h.remove("R0")
	close(gate)
	h.waitState("R0", func(c *wire.CardState) bool { return c == nil })
	want := []wire.EventKind{wire.EventCardReading, wire.EventCardRemoved}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := slices.Clone(events)
		mu.Unlock()
		if len(got) >= len(want) || time.Now().After(deadline) {
			time.Sleep(20 * time.Millisecond) // nothing more may follow
			mu.Lock()
			got = slices.Clone(events)
			mu.Unlock()
			if !slices.Equal(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	if n := card.APDUCount(); n != 0 {
		t.Errorf("%d APDUs reached the card pulled before it was read", n)
	}
}

// TestCardChangedOnPINState: a wrong PIN, the block and a success that
// resets the counter each push card_changed with the new tries left; a
// sign-in that changes nothing pushes nothing.
func TestCardChangedOnPINState(t *testing.T) {
	h := newHarness(t, nil)
	var (
		mu      sync.Mutex
		changes []wire.PINReport
	)
	defer h.svc.Subscribe(func(ev wire.Event) {
		if ev.Kind == wire.EventCardChanged && ev.Card != nil && ev.Card.PIN != nil {
			mu.Lock()
			changes = append(changes, *ev.Card.PIN)
			mu.Unlock()
		}
	})()
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	steps := []struct {
		pin  string
		want []wire.PINReport // card_changed events this step adds
	}{
		{markerPIN, nil},
		{"000000", []wire.PINReport{{TriesLeft: 2}}},
		{"000000", []wire.PINReport{{TriesLeft: 1}}},
		{markerPIN, []wire.PINReport{{TriesLeft: 3}}},
		{markerPIN, nil},
	}
	var want []wire.PINReport
	for i, st := range steps {
		_, _ = h.svc.Authenticate(context.Background(), testOrigin, testChallenge, answerPIN(st.pin))
		want = append(want, st.want...)
		// Events are dispatched on their own goroutine: wait for those due,
		// then a little for any extra one.
		got := func() []wire.PINReport {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(changes)
		}
		for deadline := time.Now().Add(5 * time.Second); len(got()) < len(want) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		if got := got(); !slices.Equal(got, want) {
			t.Fatalf("after step %d: card_changed %v, want %v", i, got, want)
		}
	}
	if card.PINTries() != 3 {
		t.Errorf("card tries %d", card.PINTries())
	}
}

// confirmingPrompter is a fakePrompter with a consent dialog answering allow.
type confirmingPrompter struct {
	*fakePrompter
	allow    bool
	consents []prompt.Consent
}

func (p *confirmingPrompter) Confirm(_ context.Context, c prompt.Consent) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.consents = append(p.consents, c)
	return p.allow, nil
}

func (p *confirmingPrompter) confirmations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.consents)
}

func TestPINCache(t *testing.T) {
	h := newHarness(t, func(s *CardService) { s.PINCache = time.Minute })
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	p := &confirmingPrompter{fakePrompter: answerPIN(markerPIN), allow: true}
	for i := range 3 {
		if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
			t.Fatalf("authentication %d: %v", i, err)
		}
	}
	if n := len(p.requests()); n != 1 {
		t.Fatalf("%d prompts for 3 sign-ins with the cache, want 1", n)
	}
	// Each sign-in from the cache was confirmed, naming the origin.
	if n := p.confirmations(); n != 2 || p.consents[0].Origin != testOrigin {
		t.Fatalf("%d confirmations (%+v), want 2 for %s", n, p.consents, testOrigin)
	}
	// Removal ends the cache.
	h.remove("R0")
	insertPIV(h, "R0", card)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	if n := len(p.requests()); n != 2 {
		t.Fatalf("%d prompts after re-insertion, want 2", n)
	}
	if card.Signatures() != 4 {
		t.Errorf("%d signatures", card.Signatures())
	}
}

// TestPINCacheOrigin: the cached PIN serves only the origin that prompted
// for it; another origin gets the PIN prompt.
func TestPINCacheOrigin(t *testing.T) {
	h := newHarness(t, func(s *CardService) { s.PINCache = time.Minute })
	insertPIV(h, "R0", newCard(t, testpki.CardSpec{DaysLeft: 400}, nil))
	p := &confirmingPrompter{fakePrompter: answerPIN(markerPIN), allow: true}
	const other = "https://other.example"
	for _, o := range []string{testOrigin, other, other, testOrigin} {
		if _, err := h.svc.Authenticate(context.Background(), o, testChallenge, p); err != nil {
			t.Fatal(err)
		}
	}
	// Prompts: testOrigin, other (not testOrigin's cache), testOrigin again
	// (the cache now belongs to other); one confirmation (other's second).
	reqs := p.requests()
	if len(reqs) != 3 || reqs[1].Origin != other || reqs[2].Origin != testOrigin || p.confirmations() != 1 {
		t.Fatalf("%d prompts %v, %d confirmations", len(reqs), reqs, p.confirmations())
	}
}

// TestPINCacheConfirmation: refusing the consent dialog sends nothing to
// the card; without a consent dialog the PIN is asked for.
func TestPINCacheConfirmation(t *testing.T) {
	h := newHarness(t, func(s *CardService) { s.PINCache = time.Minute })
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	p := &confirmingPrompter{fakePrompter: answerPIN(markerPIN), allow: true}
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	p.allow = false
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); codeOf(err) != wire.CodeUserCancelled {
		t.Fatalf("refused confirmation: %v", err)
	}
	if card.Signatures() != 1 {
		t.Fatalf("%d signatures after a refused confirmation, want 1", card.Signatures())
	}
	plain := answerPIN(markerPIN) // a pinentry: no consent dialog
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, plain); err != nil {
		t.Fatal(err)
	}
	if len(plain.requests()) != 1 {
		t.Fatalf("%d prompts without a consent dialog, want 1", len(plain.requests()))
	}
}

// TestPINCacheDroppedOnWrongPINElsewhere: a wrong PIN entered in another
// application (the tries left fell) drops the cache: the cached PIN is not
// sent, the user is asked.
func TestPINCacheDroppedOnWrongPINElsewhere(t *testing.T) {
	h := newHarness(t, func(s *CardService) { s.PINCache = time.Minute })
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	p := &confirmingPrompter{fakePrompter: answerPIN(markerPIN), allow: true}
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	// Another application sends a wrong PIN: VERIFY, PIV application PIN (80).
	verify := append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, []byte("000000\xff\xff")...)
	if resp, err := card.Transmit(verify); err != nil || len(resp) < 2 || resp[len(resp)-2] != 0x63 {
		t.Fatalf("wrong VERIFY: % X, %v", resp, err)
	}
	if card.PINTries() != 2 {
		t.Fatalf("%d tries left", card.PINTries())
	}
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	if len(p.requests()) != 2 || p.confirmations() != 0 {
		t.Fatalf("%d prompts, %d confirmations: the cached PIN was used after a wrong PIN elsewhere", len(p.requests()), p.confirmations())
	}
}

func TestPINCacheExpires(t *testing.T) {
	h := newHarness(t, func(s *CardService) { s.PINCache = 50 * time.Millisecond })
	card := newCard(t, testpki.CardSpec{DaysLeft: 400}, nil)
	insertPIV(h, "R0", card)
	p := answerPIN(markerPIN)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, err := h.svc.Authenticate(context.Background(), testOrigin, testChallenge, p); err != nil {
		t.Fatal(err)
	}
	if n := len(p.requests()); n != 2 {
		t.Fatalf("%d prompts, want 2 (the cache window passed)", n)
	}
}

func TestCertificates(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.svc.Certificates(context.Background(), ""); codeOf(err) != wire.CodeNoCard {
		t.Fatalf("no card: %v", err)
	}
	card := newCard(t, testpki.CardSpec{DaysLeft: 10}, nil)
	insertPIV(h, "R0", card)
	cc, err := h.svc.Certificates(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if cc.Reader != "R0" || len(cc.Certificates) != 2 || !bytes.Equal(cc.Authentication, card.Certificate(vpiv.SlotAuthentication).Raw) {
		t.Errorf("certificates %+v", cc)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err   error
		code  wire.Code
		tries int
	}{
		{&pcsc.AuthError{Retries: 2}, wire.CodeWrongPIN, 2},
		{fmt.Errorf("signing: %w", &pcsc.AuthError{Retries: 0}), wire.CodePINBlocked, -1},
		{&pcsc.AuthError{Retries: -1}, wire.CodeWrongPIN, -1},
		{&pcsc.StatusError{SW: 0x6983}, wire.CodePINBlocked, -1},
		{fmt.Errorf("x: %w", pcsc.ErrCardRemoved), wire.CodeCardRemoved, -1},
		{pcsc.ErrCardReset, wire.CodeCardRemoved, -1},
		{pcsc.ErrNoCard, wire.CodeNoCard, -1},
		{pcsc.ErrNoReader, wire.CodeNoCard, -1},
		{pcsc.ErrServiceUnavailable, wire.CodeServiceUnavailable, -1},
		{pcsc.ErrPINFormat, wire.CodePINFormat, -1},
		{pcsc.ErrUnsupportedCard, wire.CodeUnsupportedCard, -1},
		{prompt.ErrCancelled, wire.CodeUserCancelled, -1},
		{context.Canceled, wire.CodeUserCancelled, -1},
		{prompt.ErrTimeout, wire.CodeTimeout, -1},
		{context.DeadlineExceeded, wire.CodeTimeout, -1},
		{prompt.ErrUnavailable, wire.CodePromptUnavailable, -1},
		{pcsc.ErrCardUnresponsive, wire.CodeCardError, -1},
		{&pcsc.StatusError{SW: 0x6F00}, wire.CodeCardError, -1},
		{ErrBusy, wire.CodeBusy, -1},
		{fmt.Errorf("wrapped: %w", ErrRateLimited), wire.CodeRateLimited, -1},
		{errors.New("something else"), wire.CodeInternalError, -1},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			e := Classify(tt.err)
			if e.Code != tt.code || e.TriesLeft != tt.tries || e.Message == "" {
				t.Errorf("Classify = %+v, want code %s tries %d", e, tt.code, tt.tries)
			}
		})
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}
