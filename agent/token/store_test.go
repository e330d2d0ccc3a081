package token_test

import (
	"encoding/base64"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cardagent/cardagent/agent/token"
)

// clock is a settable time source.
type clock struct{ t atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.t.Store(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) Advance(d time.Duration) { c.t.Add(int64(d)) }

func TestMemoryStoreIssue(t *testing.T) {
	s := token.NewMemoryStore()
	seen := map[string]bool{}
	for range 100 {
		c, err := s.Issue(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(c)
		if err != nil || len(b) != token.ChallengeBytes || len(c) != 43 {
			t.Fatalf("challenge %q: %d bytes, %v", c, len(b), err)
		}
		if seen[c] {
			t.Fatalf("challenge %q issued twice", c)
		}
		seen[c] = true
	}
	if s.Len() != 100 {
		t.Errorf("Len %d, want 100", s.Len())
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, err := s.Issue(ttl); err == nil {
			t.Errorf("Issue(%v) succeeded", ttl)
		}
	}
}

func TestMemoryStoreConsume(t *testing.T) {
	tests := []struct {
		name string
		// before runs between Issue (ttl one minute) and Consume.
		before func(s *token.MemoryStore, c *clock, ch string)
		want   error // nil: accepted
	}{
		{"fresh", nil, nil},
		{"just before expiry", func(_ *token.MemoryStore, c *clock, _ string) { c.Advance(time.Minute - time.Nanosecond) }, nil},
		{"at expiry", func(_ *token.MemoryStore, c *clock, _ string) { c.Advance(time.Minute) }, token.ErrChallengeExpired},
		{"used", func(s *token.MemoryStore, _ *clock, ch string) { s.Consume(ch) }, token.ErrChallengeReused},
		{"used, replayed after expiry", func(s *token.MemoryStore, c *clock, ch string) {
			s.Consume(ch)
			c.Advance(2 * time.Minute)
		}, token.ErrUnknownChallenge},
		{"expired and swept", func(s *token.MemoryStore, c *clock, _ string) {
			c.Advance(2 * time.Minute)
			s.Issue(time.Minute) // sweeps: the last sweep was over a minute ago
		}, token.ErrUnknownChallenge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			s := token.NewMemoryStore()
			s.Now = c.Now
			ch, err := s.Issue(time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if tt.before != nil {
				tt.before(s, c, ch)
			}
			err = s.Consume(ch)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Consume: %v, want %v", err, tt.want)
			}
			// Whatever happened, the challenge is not accepted again.
			if err := s.Consume(ch); err == nil {
				t.Fatal("second Consume accepted the challenge")
			}
		})
	}
	s := token.NewMemoryStore()
	for _, ch := range []string{"", "never issued"} {
		if err := s.Consume(ch); !errors.Is(err, token.ErrUnknownChallenge) {
			t.Errorf("Consume(%q): %v", ch, err)
		}
	}
}

func TestMemoryStoreBounded(t *testing.T) {
	c := newClock()
	s := token.NewMemoryStore()
	s.Now, s.MaxEntries = c.Now, 3
	var issued []string
	for range 3 {
		ch, err := s.Issue(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		issued = append(issued, ch)
	}
	if _, err := s.Issue(time.Minute); !errors.Is(err, token.ErrStoreFull) {
		t.Fatalf("fourth Issue: %v, want ErrStoreFull", err)
	}
	// Used challenges count until they expire: a full store stays full.
	if err := s.Consume(issued[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Issue(time.Minute); !errors.Is(err, token.ErrStoreFull) {
		t.Fatalf("Issue after Consume: %v, want ErrStoreFull", err)
	}
	// Outstanding challenges are not dropped to make room.
	if err := s.Consume(issued[1]); err != nil {
		t.Fatalf("outstanding challenge lost: %v", err)
	}
	c.Advance(time.Minute)
	if _, err := s.Issue(time.Minute); err != nil {
		t.Fatalf("Issue after expiry: %v", err)
	}
	if s.Len() != 1 {
		t.Errorf("Len %d after sweep, want 1", s.Len())
	}
}

func TestMemoryStoreAdd(t *testing.T) {
	s := token.NewMemoryStore()
	if err := s.Add("given", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Add("given", time.Minute); err == nil {
		t.Error("Add accepted a challenge twice")
	}
	if err := s.Add("", time.Minute); err == nil {
		t.Error("Add accepted an empty challenge")
	}
	if err := s.Add("x", 0); err == nil {
		t.Error("Add accepted ttl 0")
	}
	if err := s.Consume("given"); err != nil {
		t.Fatal(err)
	}
	if err := s.Consume("given"); !errors.Is(err, token.ErrChallengeReused) {
		t.Errorf("replay: %v", err)
	}
}

// TestMemoryStoreConcurrentConsume: exactly one of N concurrent consumers of
// one challenge wins; run with -race.
func TestMemoryStoreConcurrentConsume(t *testing.T) {
	s := token.NewMemoryStore()
	const rounds, n = 20, 16
	for range rounds {
		ch, err := s.Issue(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				if err := s.Consume(ch); err == nil {
					wins.Add(1)
				} else if !errors.Is(err, token.ErrChallengeReused) {
					t.Errorf("Consume: %v", err)
				}
				s.Issue(time.Minute) // concurrent issuing too
			})
		}
		close(start)
		wg.Wait()
		if w := wins.Load(); w != 1 {
			t.Fatalf("%d of %d concurrent Consume calls won, want 1", w, n)
		}
	}
}
