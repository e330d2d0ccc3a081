package api

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// consentPrompter answers PIN prompts with the card's PIN and allows every
// consent dialog, counting both.
type consentPrompter struct {
	mu             sync.Mutex
	pins, consents []string // origins
}

func (p *consentPrompter) PIN(_ context.Context, req prompt.Request) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pins = append(p.pins, req.Origin)
	return []byte(markerPIN), nil
}

func (p *consentPrompter) Confirm(_ context.Context, c prompt.Consent) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.consents = append(p.consents, c.Origin)
	return true, nil
}

func (p *consentPrompter) counts() (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pins), len(p.consents)
}

// TestPINCacheThroughAPI: with the PIN cache on, through the real card
// service, pcscd and the virtual card: a second origin is prompted, not
// served from the first's cache; cached sign-ins are confirmed; and they
// count against the origin's prompt rate limit.
func TestPINCacheThroughAPI(t *testing.T) {
	p := pcsctest.Require(t)
	card, pki := e2eCard(t)
	svc := &agent.CardService{Log: zap.NewNop(), PINCache: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx) }()
	pr := &consentPrompter{}
	s, err := New(zap.NewNop(), svc, pr, Options{Ports: []int{0}, AllowedOrigins: []string{goodOrigin, otherOrigin}, PromptsPerMinute: 2})
	if err != nil {
		t.Fatal(err)
	}
	port, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-sdone
		<-done
	}()
	a := &agentUnderTest{svc: svc, ts: &testServer{Server: s, port: port}}
	p.Insert(t, 0, card, vcard.Options{})
	a.waitCard(t, wire.CardReady)
	v := newVerifier(t, pki)

	signIn := func(origin string, id int) msg {
		c := a.client(t, origin)
		defer c.c.Close()
		ch, err := v.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		m := c.authenticate(t, id, ch)
		if m["error"] == nil {
			if _, err := v.Verify(tokenOf(t, m), origin, ch); err != nil {
				t.Fatalf("token: %v", err)
			}
		}
		return m
	}
	if m := signIn(goodOrigin, 1); m["error"] != nil {
		t.Fatalf("first sign-in: %v", m)
	}
	if m := signIn(otherOrigin, 2); m["error"] != nil {
		t.Fatalf("other origin: %v", m)
	}
	if pins, consents := pr.counts(); pins != 2 || consents != 0 {
		t.Fatalf("after two origins: %d PIN prompts, %d confirmations; want 2, 0", pins, consents)
	}
	// otherOrigin's cache: confirmed, then its rate limit (2 a minute) ends it.
	if m := signIn(otherOrigin, 3); m["error"] != nil {
		t.Fatalf("cached sign-in: %v", m)
	}
	if pins, consents := pr.counts(); pins != 2 || consents != 1 {
		t.Fatalf("cached sign-in: %d PIN prompts, %d confirmations; want 2, 1", pins, consents)
	}
	m := signIn(otherOrigin, 4)
	if e, _ := m["error"].(map[string]any); e == nil || e["code"] != string(wire.CodeRateLimited) {
		t.Fatalf("third sign-in of the origin within a minute: %v, want rate_limited", m)
	}
}
