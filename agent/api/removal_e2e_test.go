package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/desktoplock"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// wsEvent is a pushed event as docs/protocol.md describes it.
type wsEvent struct {
	Type    string `json:"type"`
	Event   string `json:"event"`
	Reader  string `json:"reader"`
	Session *struct {
		CardID string           `json:"card_id"`
		Holder *certinfo.Holder `json:"holder"`
		Action string           `json:"action"`
	} `json:"session"`
	Time time.Time `json:"time"`
}

// eventStream reads a client's messages on a goroutine of its own (a
// gorilla connection is unusable after a read times out) and keeps the
// events.
type eventStream struct {
	ch   chan wsEvent
	errc chan error
}

func (c *client) stream(t *testing.T) *eventStream {
	t.Helper()
	s := &eventStream{ch: make(chan wsEvent, 64), errc: make(chan error, 1)}
	c.c.SetReadDeadline(time.Time{})
	go func() {
		for {
			_, data, err := c.c.ReadMessage()
			if err != nil {
				s.errc <- err
				return
			}
			var ev wsEvent
			if err := json.Unmarshal(data, &ev); err != nil {
				s.errc <- fmt.Errorf("not JSON: %s: %w", data, err)
				return
			}
			if ev.Type == "event" {
				s.ch <- ev
			}
		}
	}()
	return s
}

// eventsFor returns the events that arrive within d.
func (s *eventStream) eventsFor(t *testing.T, d time.Duration) []wsEvent {
	t.Helper()
	var out []wsEvent
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case ev := <-s.ch:
			out = append(out, ev)
		case err := <-s.errc:
			t.Fatalf("reading events: %v", err)
		case <-timer.C:
			return out
		}
	}
}

// sessionEnded returns the session_ended events among evs.
func sessionEnded(evs []wsEvent) []wsEvent {
	var out []wsEvent
	for _, e := range evs {
		if e.Event == string(wire.EventSessionEnded) {
			out = append(out, e)
		}
	}
	return out
}

// startRemovalAgent runs the real card service with a removal policy and
// the API in front of it, allowing goodOrigin and otherOrigin. The desktop
// lock is desktoplock's, with a command that appends a line to the
// returned file.
func startRemovalAgent(t *testing.T, removal string, grace time.Duration) (*agentUnderTest, string) {
	t.Helper()
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	script := filepath.Join(dir, "lock.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho locked >> \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	svc := &agent.CardService{Log: zap.NewNop(), Removal: removal, RemovalGrace: grace,
		LockDesktop: desktoplock.Locker{Command: []string{script, locked}}.Lock}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx) }()
	s, err := New(zap.NewNop(), svc, &consentPrompter{}, Options{Ports: []int{0}, AllowedOrigins: []string{goodOrigin, otherOrigin}, PromptsPerMinute: 100})
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
		<-sdone
		if err := <-done; err != nil {
			t.Errorf("card service: %v", err)
		}
	})
	return &agentUnderTest{svc: svc, ts: &testServer{Server: s, port: port}}, locked
}

func lockCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "locked\n")
}

// TestRemovalPolicyThroughAPI pulls the virtual card from the vpcd reader
// (real pcscd) after a sign-in through the API, under each policy: "none"
// sends no session_ended and never locks; "notify" pushes session_ended to
// every connection, of every origin, after the grace period; "lock" also
// runs the lock command once, and not at all when the same card is back
// within the grace period.
func TestRemovalPolicyThroughAPI(t *testing.T) {
	p := pcsctest.Require(t)
	card, pki := e2eCard(t)
	v := newVerifier(t, pki)
	reader := pcsctest.ReaderNames[0]

	signIn := func(t *testing.T, a *agentUnderTest, id int) {
		t.Helper()
		c := a.client(t, goodOrigin)
		defer c.c.Close()
		ch, err := v.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		m := c.authenticate(t, id, ch)
		if m["error"] != nil {
			t.Fatalf("sign-in: %v", m)
		}
		if _, err := v.Verify(tokenOf(t, m), goodOrigin, ch); err != nil {
			t.Fatalf("token: %v", err)
		}
	}
	// watchers are two pages, of two origins, that never signed in.
	watchers := func(t *testing.T, a *agentUnderTest) []*eventStream {
		return []*eventStream{a.client(t, goodOrigin).stream(t), a.client(t, otherOrigin).stream(t)}
	}

	t.Run("none", func(t *testing.T) {
		a, locked := startRemovalAgent(t, agent.RemovalNone, 200*time.Millisecond)
		slot := p.Insert(t, 0, card, vcard.Options{})
		a.waitCard(t, wire.CardReady)
		signIn(t, a, 1)
		pages := watchers(t, a)
		slot.Remove()
		for i, c := range pages {
			evs := c.eventsFor(t, 2*time.Second)
			if len(sessionEnded(evs)) != 0 {
				t.Errorf("page %d got session_ended with policy none: %+v", i, evs)
			}
			if len(evs) == 0 || evs[0].Event != string(wire.EventCardRemoved) {
				t.Errorf("page %d events %+v, want card_removed", i, evs)
			}
		}
		if n := lockCount(t, locked); n != 0 {
			t.Errorf("policy none ran the lock command %d times", n)
		}
	})

	t.Run("notify", func(t *testing.T) {
		const grace = 500 * time.Millisecond
		a, locked := startRemovalAgent(t, agent.RemovalNotify, grace)
		slot := p.Insert(t, 0, card, vcard.Options{})
		a.waitCard(t, wire.CardReady)
		st := a.svc.Status().Readers[0].Card
		signIn(t, a, 1)
		pages := watchers(t, a)
		slot.Remove()
		for i, c := range pages {
			evs := c.eventsFor(t, grace+2*time.Second)
			ended := sessionEnded(evs)
			if len(ended) != 1 {
				t.Fatalf("page %d: %d session_ended (events %+v), want 1", i, len(ended), evs)
			}
			e := ended[0]
			if e.Reader != reader || e.Session == nil || e.Session.CardID != st.ID || st.ID == "" || e.Session.Action != "notify" ||
				e.Session.Holder == nil || e.Session.Holder.UUID != "555253521108" || e.Time.IsZero() {
				t.Errorf("page %d: session_ended %+v %+v, want reader %s, card %s, holder 555253521108, action notify", i, e, e.Session, reader, st.ID)
			}
			var removed time.Time
			for _, ev := range evs {
				if ev.Event == string(wire.EventCardRemoved) {
					removed = ev.Time
				}
			}
			if removed.IsZero() || e.Time.Sub(removed) < grace {
				t.Errorf("page %d: session_ended at %v, card_removed at %v: not after the grace period %v", i, e.Time, removed, grace)
			}
		}
		if n := lockCount(t, locked); n != 0 {
			t.Errorf("policy notify ran the lock command %d times", n)
		}
	})

	t.Run("lock", func(t *testing.T) {
		const grace = 3 * time.Second
		a, locked := startRemovalAgent(t, agent.RemovalLock, grace)
		slot := p.Insert(t, 0, card, vcard.Options{})
		a.waitCard(t, wire.CardReady)
		signIn(t, a, 1)
		page := a.client(t, otherOrigin).stream(t)

		// Reseated within the grace period: no lock, no session_ended.
		start := time.Now()
		slot.Remove()
		slot = p.Insert(t, 0, card, vcard.Options{})
		a.waitCard(t, wire.CardReady)
		t.Logf("card out and read again in %v", time.Since(start).Round(time.Millisecond))
		if evs := page.eventsFor(t, grace+time.Second); len(sessionEnded(evs)) != 0 {
			t.Fatalf("session_ended although the card came back in time: %+v", evs)
		}
		if n := lockCount(t, locked); n != 0 {
			t.Fatalf("card back within the grace period, yet the lock command ran %d times", n)
		}

		// Pulled for good: the lock command runs once, after the grace period.
		slot.Remove()
		evs := page.eventsFor(t, grace+2*time.Second)
		if ended := sessionEnded(evs); len(ended) != 1 || ended[0].Session.Action != "lock" {
			t.Fatalf("session_ended events %+v, want one with action lock", evs)
		}
		for deadline := time.Now().Add(5 * time.Second); lockCount(t, locked) == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if n := lockCount(t, locked); n != 1 {
			t.Fatalf("lock command ran %d times, want 1", n)
		}
		time.Sleep(grace)
		if n := lockCount(t, locked); n != 1 {
			t.Errorf("lock command ran %d times in the end, want 1", n)
		}
	})
}
