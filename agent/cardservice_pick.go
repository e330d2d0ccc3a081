package agent

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/prompt"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// Errors of choosing the card (docs/protocol.md).
var (
	// ErrCardNotFound: the request named a card (by its status id) that is
	// not inserted.
	ErrCardNotFound = NewError(wire.CodeCardNotFound, "the card the request names is not inserted", nil)
	// ErrCardAmbiguous: several usable cards are inserted, the request named
	// none, and no choice can be offered to the user (certificates never
	// offers one).
	ErrCardAmbiguous = NewError(wire.CodeCardAmbiguous, "several cards are inserted: name one with the \"card\" field (its id in status)", nil)
)

// selection says which card an operation wants.
type selection struct {
	// card is the id (wire.CardState.ID) a page named; "" for none.
	card string
	// chooser asks the user when several cards are usable and none is
	// named; nil makes that ErrCardAmbiguous.
	chooser prompt.Chooser
	// origin and purpose are shown in the choice prompt.
	origin, purpose string
	// blockedOK keeps cards whose PIN is blocked among the candidates (a
	// PIN unblock wants exactly those).
	blockedOK bool
	// noPrompt: the operation has no prompter at all, so a choice is
	// ErrPromptUnavailable rather than ErrCardAmbiguous.
	noPrompt bool
}

// selectionFor is the selection of a prompting operation: p chooses when it
// can.
func selectionFor(card, origin, purpose string, p prompt.Prompter) selection {
	sel := selection{card: card, origin: origin, purpose: purpose, noPrompt: p == nil}
	if ch, ok := p.(prompt.Chooser); ok {
		sel.chooser = ch
	}
	return sel
}

// picked is the card pick chose, and whether several cards were usable (the
// PIN prompt then names the reader too).
type picked struct {
	slot    *cardSlot
	several bool
}

// candidate is a card's state as pick sees it.
type candidate struct {
	state   string
	id      string
	blocked bool
}

// pickRule is the choice rule, on a snapshot of the inserted cards in reader
// order (no card still being read): the named card when one is named (its
// index, or ErrCardNotFound); else the one usable card: ready, and (unless
// blockedOK) its PIN not known to be blocked. With none usable but one or
// more ready (every PIN blocked) the first ready card, whose sign-in then
// ends with pin_blocked before any prompt. It returns -1 and a nil error
// when the user must choose among usable, and -1 with no error and
// usable == nil when no card is ready (the caller says why).
func pickRule(cards []candidate, named string, blockedOK bool) (index int, usable []int, err error) {
	if named != "" {
		for i, c := range cards {
			if c.id == named {
				return i, nil, nil
			}
		}
		return -1, nil, ErrCardNotFound
	}
	var ready []int
	for i, c := range cards {
		if c.state != wire.CardReady {
			continue
		}
		ready = append(ready, i)
		if blockedOK || !c.blocked {
			usable = append(usable, i)
		}
	}
	switch {
	case len(usable) == 1:
		return usable[0], usable, nil
	case len(usable) > 1:
		return -1, usable, nil
	case len(ready) > 0:
		return ready[0], ready[:1], nil
	}
	return -1, nil, nil
}

// pick returns the card to use (see pickRule). Cards still being read are
// waited for first (bounded by ctx), so a sign-in right after insertion
// works and a card being read is never passed over. When several cards are
// usable and none is named, sel.chooser asks the user (nothing is sent to
// any card meanwhile; removing a listed card closes the choice with
// card_removed); without one it is ErrCardAmbiguous. A named card that is
// not ready fails as that card's state says.
func (s *CardService) pick(ctx context.Context, sel selection) (picked, error) {
	s.init()
	for {
		s.mu.Lock()
		var (
			wait  *cardSlot
			slots []*cardSlot
			cands []candidate
		)
		for _, r := range s.readers {
			cs := r.card
			if cs == nil {
				continue
			}
			if cs.state == wire.CardReading && wait == nil {
				wait = cs
			}
			c := candidate{state: cs.state, id: cs.id, blocked: cs.pin != nil && cs.pin.Blocked}
			slots, cands = append(slots, cs), append(cands, c)
		}
		service := s.service
		if wait != nil {
			s.mu.Unlock()
			select {
			case <-wait.opened:
			case <-wait.ctx.Done():
			case <-ctx.Done():
				return picked{}, Classify(context.Cause(ctx))
			}
			continue
		}
		i, usable, err := pickRule(cands, sel.card, sel.blockedOK)
		var choices []prompt.CardChoice
		if i < 0 && len(usable) > 1 {
			for _, k := range usable {
				choices = append(choices, s.choiceLocked(slots[k]))
			}
		}
		s.mu.Unlock()
		switch {
		case errors.Is(err, ErrCardNotFound) && service == wire.ServiceDown:
			return picked{}, Classify(pcsc.ErrServiceUnavailable)
		case err != nil:
			return picked{}, err
		case i >= 0 && sel.card != "":
			if cands[i].state != wire.CardReady {
				return picked{}, unusableError([]*cardSlot{slots[i]}, service)
			}
			return picked{slot: slots[i], several: len(slots) > 1}, nil
		case i >= 0:
			return picked{slot: slots[i], several: len(usable) > 1}, nil
		case len(usable) > prompt.MaxChoices:
			return picked{}, ErrCardAmbiguous // too many to list: the page names the card
		case len(usable) > 1:
			k, err := s.choose(ctx, sel, choices, slots, usable)
			if err != nil {
				return picked{}, err
			}
			return picked{slot: slots[usable[k]], several: true}, nil
		}
		s.mu.Lock()
		err = unusableError(slots, service)
		s.mu.Unlock()
		return picked{}, err
	}
}

// choiceLocked describes cs for the choice prompt.
func (s *CardService) choiceLocked(cs *cardSlot) prompt.CardChoice {
	c := prompt.CardChoice{CardType: cs.typeName, Reader: cs.reader, TriesLeft: wire.TriesUnknown}
	if h := holderOf(cs.certs); h != nil {
		c.Holder = h.Name
	}
	if cs.pin != nil {
		c.TriesLeft = cs.pin.TriesLeft
	}
	return c
}

// choose asks sel.chooser which of the usable cards to use and returns its
// index in usable. The prompt closes when one of the listed cards leaves
// (card_removed): the list it shows would be stale.
func (s *CardService) choose(ctx context.Context, sel selection, choices []prompt.CardChoice, slots []*cardSlot, usable []int) (int, error) {
	switch {
	case sel.noPrompt:
		return -1, ErrPromptUnavailable
	case sel.chooser == nil:
		return -1, ErrCardAmbiguous
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	for _, k := range usable {
		stop := context.AfterFunc(slots[k].ctx, func() { cancel(pcsc.ErrCardRemoved) })
		defer stop()
	}
	k, err := sel.chooser.Choose(cctx, prompt.Choice{Origin: sel.origin, Purpose: sel.purpose, Cards: choices, Timeout: s.PromptTimeout})
	for _, u := range usable {
		if slots[u].ctx.Err() != nil {
			return -1, Classify(pcsc.ErrCardRemoved)
		}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return -1, Classify(context.Cause(ctx))
	case err != nil:
		return -1, err
	case k < 0 || k >= len(usable):
		return -1, NewError(wire.CodeInternalError, "", errors.New("the card choice returned no card"))
	}
	s.Log.Debug("card chosen by the user", zap.String("reader", slots[usable[k]].reader), zap.String("origin", sel.origin))
	return k, nil
}

// unusableError says why none of slots can be used. Call with s.mu held.
func unusableError(slots []*cardSlot, service wire.ServiceState) error {
	var (
		unsupported, mute, failed bool
		unusableKey               string
	)
	for _, cs := range slots {
		switch cs.state {
		case wire.CardUnsupported:
			unsupported = true
			if unusableKey == "" {
				unusableKey = cs.unusableKey
			}
		case wire.CardMute:
			mute = true
		case wire.CardReady, wire.CardReading:
		default:
			failed = true
		}
	}
	switch {
	case unusableKey != "":
		return errUnsupportedKey(unusableKey)
	case unsupported:
		return Classify(pcsc.ErrUnsupportedCard)
	case mute:
		return Classify(pcsc.ErrCardUnresponsive)
	case failed:
		return NewError(wire.CodeCardError, "the card could not be read; take it out and insert it again", nil)
	case service == wire.ServiceDown:
		return Classify(pcsc.ErrServiceUnavailable)
	}
	return Classify(pcsc.ErrNoCard)
}

// Certificates returns the certificates of the card Authenticate would use
// without a choice prompt: the card named by card (its status id; "" for
// none), else the one usable card. With several usable cards and none
// named it is ErrCardAmbiguous: a read-only request shows no prompt.
func (s *CardService) Certificates(ctx context.Context, card string) (*wire.CardCertificates, error) {
	pk, err := s.pick(ctx, selection{card: card})
	if err != nil {
		return nil, err
	}
	cs := pk.slot
	c := s.cardOf(cs)
	if c == nil {
		return nil, Classify(pcsc.ErrCardRemoved)
	}
	certs, err := c.Certificates(ctx) // cached by the driver
	if err != nil {
		return nil, Classify(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &wire.CardCertificates{Reader: cs.reader, CardID: c.Info().ID, CardType: cs.typeName, Holder: holderOf(certs), Certificates: s.summaries(certs, s.Now())}
	for _, ce := range certs {
		if ce.Key == pcsc.KeyAuthentication {
			out.Authentication = ce.Cert.Raw
		}
	}
	return out, nil
}
