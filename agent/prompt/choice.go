package prompt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// CardChoice is one card the user may pick: every field is safe to show
// and none is secret.
type CardChoice struct {
	// Holder is the certificate holder's name ("" when the card has none).
	Holder string
	// CardType names the card ("NHS series 9/10 (PIV)").
	CardType string
	// Reader is the PC/SC reader the card is in.
	Reader string
	// TriesLeft is the PIN tries left as last read, or -1 when unknown.
	TriesLeft int
}

// Choice asks the user which card to use, before any PIN is asked.
type Choice struct {
	// Origin is the web origin that asked (from the validated handshake).
	Origin string
	// Purpose is what the card is for, in words: "sign in", "sign 3 prescriptions".
	Purpose string
	// Cards are the usable cards, in reader order (at least two).
	Cards []CardChoice
	// Timeout closes the prompt with ErrTimeout; zero means the prompter's default.
	Timeout time.Duration
}

// Chooser asks the user to pick one of several cards. It returns the index
// in c.Cards of the card picked. The user cancelling (or ctx ending) is
// ErrCancelled, its timeout ErrTimeout, a prompt that cannot be shown
// ErrUnavailable. Nothing is sent to any card while it asks.
type Chooser interface {
	Choose(ctx context.Context, c Choice) (int, error)
}

// MaxChoices bounds the cards one prompt lists (PC/SC readers on a desktop
// are few). With more usable cards the agent asks for none: the page names
// the card (card_ambiguous).
const MaxChoices = 16

// errNoChoice is a Choice with fewer than two cards: there is nothing to ask.
var errNoChoice = errors.New("a card choice needs at least two cards")

func checkChoice(c Choice) error {
	if len(c.Cards) < 2 {
		return errNoChoice
	}
	if len(c.Cards) > MaxChoices {
		return fmt.Errorf("a card choice lists at most %d cards", MaxChoices)
	}
	return nil
}

// ChoiceHeading is the first line of a choice prompt: who asks and why.
func ChoiceHeading(c Choice) string {
	purpose := clean(c.Purpose, 60)
	if purpose == "" {
		purpose = "sign in"
	}
	if o := clean(c.Origin, 300); o != "" {
		return o + " asks for a smartcard to " + purpose + ". Several cards are inserted: choose the one to use."
	}
	return "Several smartcards are inserted: choose the one to " + purpose + "."
}

// CardLine describes one card on one line: "Userq RANDOM, NHS series 9/10
// (PIV), in Virtual PCD 00 00, 3 tries left".
func CardLine(cc CardChoice) string {
	parts := []string{cardHolder(cc)}
	if t := clean(cc.CardType, 120); t != "" {
		parts = append(parts, t)
	}
	if r := clean(cc.Reader, 120); r != "" {
		parts = append(parts, "in "+r)
	}
	if t := triesShort(cc.TriesLeft); t != "" {
		parts = append(parts, t)
	}
	return strings.Join(parts, ", ")
}

func cardHolder(cc CardChoice) string {
	if h := clean(cc.Holder, 200); h != "" {
		return h
	}
	return "(no holder name)"
}

// triesShort is the tries left in a few words ("" when unknown).
func triesShort(n int) string {
	switch {
	case n < 0:
		return ""
	case n == 1:
		return "last PIN try"
	}
	return strconv.Itoa(n) + " PIN tries left"
}

var _ Chooser = (*Auto)(nil)

// Choose asks with the prompter available now (the desktop dialog's list,
// else pinentry's one prompt per card).
func (a *Auto) Choose(ctx context.Context, c Choice) (int, error) {
	p, why := a.pick()
	if p == nil {
		return -1, fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	ch, ok := p.(Chooser)
	if !ok {
		return -1, fmt.Errorf("%w: the prompt cannot offer a choice of cards", ErrUnavailable)
	}
	return ch.Choose(ctx, c)
}
