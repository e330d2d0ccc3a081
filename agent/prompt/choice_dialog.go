package prompt

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"
)

var _ Chooser = (*Dialog)(nil)

// listSpec is one list dialog for the OS backend: rows of cells under
// columns; the answer is the index of the row picked.
type listSpec struct {
	dialogSpec
	columns []string
	rows    [][]string
}

// Choose shows the cards in one list dialog (holder, card type, reader, PIN
// tries left; the origin and purpose above it) and returns the index of the
// card the user picked. OK with no row picked shows the list again (at most
// maxFormatPrompts times in all, then ErrCancelled).
func (d *Dialog) Choose(ctx context.Context, c Choice) (int, error) {
	if err := checkChoice(c); err != nil {
		return -1, err
	}
	if ctx.Err() != nil {
		return -1, contextError(ctx)
	}
	if ok, why := d.Available(); !ok {
		return -1, fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	spec := listSpec{columns: []string{"Card holder", "Card", "Reader", "PIN tries left"}}
	for _, cc := range c.Cards {
		tries := "unknown"
		if cc.TriesLeft >= 0 {
			tries = strconv.Itoa(cc.TriesLeft)
		}
		spec.rows = append(spec.rows, []string{cardHolder(cc), orDash(clean(cc.CardType, 120)), orDash(clean(cc.Reader, 120)), tries})
	}
	text := ChoiceHeading(c) + "\n\nThe PIN is asked next, for the card you choose."
	timeout := d.timeout(c.Timeout)
	for attempt := 1; ; attempt++ {
		tctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
		spec.dialogSpec = dialogSpec{program: d.Program, title: d.title() + ": choose a card", text: text, timeout: timeout}
		start := time.Now()
		i, err := askList(tctx, spec)
		if err != nil {
			err = d.dialogError(ctx, tctx, err)
			cancel()
			d.log().Debug("card choice closed without an answer", zap.Error(err), zap.Duration("after", time.Since(start)))
			return -1, err
		}
		cancel()
		if i >= 0 && i < len(c.Cards) {
			d.log().Debug("card chosen", zap.Int("index", i), zap.Duration("after", time.Since(start)))
			return i, nil
		}
		if attempt >= maxFormatPrompts {
			return -1, ErrCancelled
		}
		text = "Choose a card in the list, then OK.\n\n" + ChoiceHeading(c) + "\n\nThe PIN is asked next, for the card you choose."
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
