package tray

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/expiry"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/token"
	"github.com/cardagent/cardagent/agent/trayhost"
	"github.com/cardagent/cardagent/agent/trayhost/trayhosttest"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/tray/trayproto"
)

const (
	e2eOrigin    = "https://signin.example.nhs.uk"
	e2eChallenge = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80"
	markerPIN    = "739146" // must never appear in a log line, a message or a view
	newPIN       = "582064"
)

// scripted answers each prompt by what it asks for, and records the requests.
type scripted struct {
	mu      sync.Mutex
	answers map[prompt.Secret][]string
	reqs    []prompt.Request
}

func (s *scripted) PIN(_ context.Context, req prompt.Request) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, req)
	list := s.answers[req.Secret]
	if len(list) == 0 {
		return nil, prompt.ErrCancelled
	}
	a := list[0]
	s.answers[req.Secret] = list[1:]
	return []byte(a), nil
}

func (s *scripted) script(answers map[prompt.Secret][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers, s.reqs = answers, nil
}

func (s *scripted) requests() []prompt.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]prompt.Request(nil), s.reqs...)
}

func nhsCard(t *testing.T, days int, adjust func(*vpiv.Config)) *vpiv.Card {
	t.Helper()
	p, err := testPKI()
	if err != nil {
		t.Fatal(err)
	}
	c, err := vpiv.NewNHS(p, testpki.CardSpec{Surname: "SMITH", Forename: "MARY", DaysLeft: days, KeyType: testpki.P256}, func(c *vpiv.Config) {
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

// TestTrayThroughPCSCD drives the tray's state model and its PIN requests
// with virtual cards through a real pcscd: insertion, removal, an expiring
// and an expired certificate, a PIN blocked by wrong sign-ins, change PIN
// (a policy rejection costs no try) and unblock with the PUK.
func TestTrayThroughPCSCD(t *testing.T) {
	pd := pcsctest.Require(t)
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	svc := &agent.CardService{Log: log, PINPolicy: config.Default().PIN}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("card service: %v", err)
		}
	}()

	pr := &scripted{}
	h := &trayhost.Host{Log: log, Backend: svc, Prompter: pr, Refresh: 100 * time.Millisecond,
		Info: func() trayproto.AgentInfo {
			return trayproto.AgentInfo{RenewalURL: "https://renew.example.nhs.uk", WarnDays: 90}
		}}
	a := &App{Log: log, Tracker: &expiry.Tracker{}}
	l := link(t, h, a)

	step := func(name string, want State, tooltip string) View {
		t.Helper()
		v := l.waitState(t, want)
		if !strings.Contains(v.Tooltip, tooltip) {
			t.Errorf("%s: tooltip %q lacks %q", name, v.Tooltip, tooltip)
		}
		return v
	}
	insert := func(c *vpiv.Card) *vcard.Slot { return pd.Insert(t, 0, c, vcard.Options{}) }

	step("empty readers", StateNoCard, "No smartcard inserted")

	// Inserted: ready.
	card := nhsCard(t, 400, nil)
	slot := insert(card)
	v := step("inserted", StateReady, "Smartcard ready (Mary SMITH)")
	if !v.Menu.ChangePIN.Enabled || v.Menu.Card == "" || len(v.Menu.Certificates) != 2 {
		t.Errorf("menu %+v", v.Menu)
	}

	// Change PIN: a malformed current PIN is refused locally and costs no try.
	pr.script(map[prompt.Secret][]string{
		prompt.SecretPIN:         {"12", markerPIN},
		prompt.SecretNewPIN:      {newPIN},
		prompt.SecretNewPINAgain: {newPIN},
	})
	l.clicks <- ClickChangePIN
	trayhosttest.WaitFor(t, "the change PIN result", 20*time.Second, func() bool { return strings.Contains(l.ui.lastMessage(), "Change PIN") })
	if m := l.ui.lastMessage(); !strings.Contains(m, "has been changed") {
		t.Fatalf("change PIN: %q", m)
	}
	if n := len(pr.requests()); n != 4 {
		t.Errorf("%d prompts, want 4 (the malformed PIN asked again)", n)
	}
	if card.PIN() != newPIN || card.PINTries() != 3 {
		t.Fatalf("card PIN %q tries %d: want the new PIN and no try spent", card.PIN(), card.PINTries())
	}
	// The new PIN signs in.
	tok, err := svc.Authenticate(context.Background(), e2eOrigin, e2eChallenge, answer(newPIN))
	if err != nil {
		t.Fatalf("sign-in with the new PIN: %v", err)
	}
	verify(t, tok)

	// A wrong current PIN: explained with the tries left, never retried.
	pr.script(map[prompt.Secret][]string{
		prompt.SecretPIN: {"000000"}, prompt.SecretNewPIN: {markerPIN}, prompt.SecretNewPINAgain: {markerPIN},
	})
	l.clicks <- ClickChangePIN
	trayhosttest.WaitFor(t, "the wrong-PIN result", 20*time.Second, func() bool { return strings.Contains(l.ui.lastMessage(), "was wrong") })
	if m := l.ui.lastMessage(); !strings.Contains(m, "2 tries left before the card is blocked") {
		t.Errorf("wrong PIN message %q", m)
	}
	if card.PINTries() != 2 {
		t.Errorf("tries %d after one wrong PIN", card.PINTries())
	}

	// Removed.
	if err := slot.Remove(); err != nil {
		t.Fatal(err)
	}
	step("removed", StateNoCard, "No smartcard inserted")

	// Expiring certificate: attention and one notification.
	slot = insert(nhsCard(t, 60, nil))
	step("expiring", StateAttention, "Certificate expires in 59 days") // 60 days at issue, rounded down a moment later
	trayhosttest.WaitFor(t, "the expiry notification", 5*time.Second, func() bool { _, n, _ := l.ui.counts(); return n == 1 })
	_ = slot.Remove()
	step("removed", StateNoCard, "No smartcard")

	// Expired certificate.
	slot = insert(nhsCard(t, -1, nil))
	step("expired", StateBlocked, "Certificate expired")
	_ = slot.Remove()
	step("removed", StateNoCard, "No smartcard")

	// PIN blocked by three wrong sign-ins: the refresh shows it without an event.
	card = nhsCard(t, 400, nil)
	slot = insert(card)
	step("inserted", StateReady, "ready")
	for i := range 3 {
		if _, err := svc.Authenticate(context.Background(), e2eOrigin, e2eChallenge, answer("000000")); err == nil {
			t.Fatalf("wrong PIN %d accepted", i)
		}
	}
	v = step("blocked", StateBlocked, "Card blocked")
	if v.Menu.ChangePIN.Enabled || !v.Menu.Unblock.Enabled {
		t.Errorf("blocked card menu: change %+v unblock %+v", v.Menu.ChangePIN, v.Menu.Unblock)
	}

	// Unblock with the PUK and a new PIN.
	pr.script(map[prompt.Secret][]string{
		prompt.SecretPUK:         {vpiv.DefaultPUK},
		prompt.SecretNewPIN:      {newPIN},
		prompt.SecretNewPINAgain: {newPIN},
	})
	l.clicks <- ClickUnblock
	trayhosttest.WaitFor(t, "the unblock result", 20*time.Second, func() bool { return strings.Contains(l.ui.lastMessage(), "Unblock card") })
	if m := l.ui.lastMessage(); !strings.Contains(m, "unblocked") {
		t.Fatalf("unblock: %q", m)
	}
	step("unblocked", StateReady, "ready")
	if card.PINTries() != 3 || card.PIN() != newPIN {
		t.Errorf("after unblock: tries %d PIN %q", card.PINTries(), card.PIN())
	}
	tok, err = svc.Authenticate(context.Background(), e2eOrigin, e2eChallenge, answer(newPIN))
	if err != nil {
		t.Fatalf("sign-in after unblock: %v", err)
	}
	verify(t, tok)
	_ = slot.Remove()
	step("removed", StateNoCard, "No smartcard")

	// No PIN anywhere it should not be.
	for _, e := range logs.All() {
		if s := e.Message + fmt.Sprint(e.ContextMap()); strings.Contains(s, markerPIN) || strings.Contains(s, newPIN) {
			t.Errorf("a PIN in log line: %s", s)
		}
	}
	l.ui.mu.Lock()
	all := fmt.Sprint(l.ui.views, l.ui.messages, l.ui.notes)
	l.ui.mu.Unlock()
	if strings.Contains(all, markerPIN) || strings.Contains(all, newPIN) {
		t.Error("a PIN in what the tray showed")
	}
}

type answer string

func (a answer) PIN(context.Context, prompt.Request) ([]byte, error) { return []byte(a), nil }

func verify(t *testing.T, tok *token.Token) {
	t.Helper()
	p, _ := testPKI()
	store := token.NewMemoryStore()
	if err := store.Add(e2eChallenge, time.Minute); err != nil {
		t.Fatal(err)
	}
	v := &token.Verifier{Roots: p.Roots(), Intermediates: p.Intermediates(), Challenges: store}
	if _, err := v.Verify(tok, e2eOrigin, e2eChallenge); err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
}
