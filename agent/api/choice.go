package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cardagent/cardagent/agent"
	"github.com/cardagent/cardagent/agent/prompt"
)

// Choose asks the limiter too: a card choice is a prompt a page caused, and
// counts against its origin's limit like the PIN prompt that follows it.
// Without a prompter that can offer a choice it is agent.ErrCardAmbiguous:
// the page can still name the card.
func (lp limitedPrompter) Choose(ctx context.Context, c prompt.Choice) (int, error) {
	ch, ok := lp.p.(prompt.Chooser)
	if !ok {
		return -1, agent.ErrCardAmbiguous
	}
	if !lp.l.allow(lp.origin) {
		return -1, agent.ErrRateLimited
	}
	return ch.Choose(ctx, c)
}

// maxCardIDLen bounds the card field: ids are hex GUIDs, serial numbers or
// certificate hashes, far shorter.
const maxCardIDLen = 128

// parseCardField decodes the optional "card" field: the id status reports
// for a card (card.id), a string of 1 to 128 printable ASCII characters.
func parseCardField(v json.RawMessage, out *string) error {
	var id string
	if err := json.Unmarshal(v, &id); err != nil {
		return errors.New(`field "card" must be a string (a card's id from status)`)
	}
	if id == "" || len(id) > maxCardIDLen {
		return fmt.Errorf(`field "card" must be 1 to %d characters`, maxCardIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return errors.New(`field "card" must be printable ASCII`)
		}
	}
	*out = id
	return nil
}
