package agent

import (
	"testing"
	"time"
)

func TestPromptLimiterRefills(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewPromptLimiter(6, func() time.Time { return now })
	for i := range 6 {
		if !l.Allow("o") {
			t.Fatalf("prompt %d refused", i)
		}
	}
	if l.Allow("o") {
		t.Fatal("7th prompt within a minute allowed")
	}
	if !l.Allow("other") {
		t.Fatal("another origin shares the first one's budget")
	}
	now = now.Add(10 * time.Second) // one token back
	if !l.Allow("o") || l.Allow("o") {
		t.Fatal("refill is not one token per 10 s")
	}
}
