package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/cardagent/cardagent/agent/prompt"
)

// RateLimited is p behind a rate limit: every prompt it would show (the
// PIN, the consent to a cached sign-in, the card choice) first asks allow,
// and a refusal is ErrRateLimited with nothing shown. The loopback API and
// the Credential Management endpoint put each page's prompts behind its
// origin's limit with it. A nil p stays nil (no prompt at all).
func RateLimited(p prompt.Prompter, allow func() bool) prompt.Prompter {
	if p == nil {
		return nil
	}
	return limitedPrompter{p: p, allow: allow}
}

type limitedPrompter struct {
	p     prompt.Prompter
	allow func() bool
}

func (lp limitedPrompter) PIN(ctx context.Context, req prompt.Request) ([]byte, error) {
	if !lp.allow() {
		return nil, ErrRateLimited
	}
	return lp.p.PIN(ctx, req)
}

// Confirm: a sign-in confirmed from the PIN cache counts as a prompt.
// Without a consent dialog it is prompt.ErrUnavailable.
func (lp limitedPrompter) Confirm(ctx context.Context, c prompt.Consent) (bool, error) {
	conf, ok := lp.p.(prompt.Confirmer)
	if !ok {
		return false, fmt.Errorf("%w: no consent dialog", prompt.ErrUnavailable)
	}
	if !lp.allow() {
		return false, ErrRateLimited
	}
	return conf.Confirm(ctx, c)
}

// Choose: a card choice counts like the PIN prompt that follows it.
// Without a prompter that can offer a choice it is ErrCardAmbiguous: a
// page can still name the card.
func (lp limitedPrompter) Choose(ctx context.Context, c prompt.Choice) (int, error) {
	ch, ok := lp.p.(prompt.Chooser)
	if !ok {
		return -1, ErrCardAmbiguous
	}
	if !lp.allow() {
		return -1, ErrRateLimited
	}
	return ch.Choose(ctx, c)
}

// PromptLimiter is the prompt rate limit per origin: a token bucket of
// perMinute tokens, refilled evenly over a minute (golang.org/x/time/rate).
// Each prompt shown for an origin takes a token; only prompts really shown
// count (a busy answer costs nothing). Its size is bounded by the origins
// that reach it: only allowed ones do.
type PromptLimiter struct {
	perMinute int
	now       func() time.Time

	mu     sync.Mutex
	origin map[string]*rate.Limiter
}

// NewPromptLimiter allows perMinute prompts per origin and minute (at least
// 1); now is the clock (time.Now when nil).
func NewPromptLimiter(perMinute int, now func() time.Time) *PromptLimiter {
	if now == nil {
		now = time.Now
	}
	return &PromptLimiter{perMinute: max(perMinute, 1), now: now, origin: map[string]*rate.Limiter{}}
}

// Allow takes a token for origin, or reports that none is left.
func (l *PromptLimiter) Allow(origin string) bool {
	l.mu.Lock()
	lim, ok := l.origin[origin]
	if !ok {
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(l.perMinute)), l.perMinute)
		l.origin[origin] = lim
	}
	l.mu.Unlock()
	return lim.AllowN(l.now(), 1)
}
