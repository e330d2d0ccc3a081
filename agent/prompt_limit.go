package agent

import (
	"context"
	"fmt"

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
