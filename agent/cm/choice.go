package cm

import (
	"context"
	"fmt"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
)

// Choose lets the user pick the card when several are inserted; it counts
// against the origin's prompt rate limit like a PIN prompt.
func (lp limitedPrompter) Choose(ctx context.Context, c prompt.Choice) (int, error) {
	ch, ok := lp.p.(prompt.Chooser)
	if !ok {
		return -1, fmt.Errorf("%w: the prompt cannot offer a choice of cards", prompt.ErrUnavailable)
	}
	if !lp.allow() {
		return -1, agent.ErrRateLimited
	}
	return ch.Choose(ctx, c)
}
