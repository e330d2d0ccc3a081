package api

import (
	"sync"
	"time"
)

// promptLimiter is a token bucket per origin: each PIN prompt shown for an
// origin takes a token; tokens come back at perMinute per minute, up to
// perMinute. Only prompts really shown count (a `busy` answer costs nothing).
type promptLimiter struct {
	perMinute float64
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newPromptLimiter(perMinute int, now func() time.Time) *promptLimiter {
	return &promptLimiter{perMinute: float64(perMinute), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for origin, or reports that none is left. The number
// of buckets is bounded by the allowed origins: only they reach here.
func (l *promptLimiter) allow(origin string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[origin]
	if !ok {
		b = &bucket{tokens: l.perMinute, last: now}
		l.buckets[origin] = b
	}
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(l.perMinute, b.tokens+el.Minutes()*l.perMinute)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
