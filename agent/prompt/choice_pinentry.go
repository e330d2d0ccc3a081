package prompt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"go.uber.org/zap"
)

var _ Chooser = (*Pinentry)(nil)

// gpgErrNotConfirmed is the gpg-error code of a CONFIRM answered with the
// "not OK" button.
const gpgErrNotConfirmed = 114

// Choose lets the user pick a card with pinentry, which has no list: one
// CONFIRM prompt per card, in reader order, each naming the card (holder,
// card type, reader, tries left) and saying which of how many it is, with
// the buttons "Use this card" (OK) and "Next card" (Cancel; on the last card
// "Cancel"). OK picks the card shown; Cancel on the last card is
// ErrCancelled. CONFIRM with OK and Cancel labels is what every pinentry
// (GTK, GNOME, Qt, curses, tty, macOS) shows; a third button (SETNOTOK) is
// not shown by all of them, so it is not relied on (a "not OK" answer counts
// as Cancel). Pinentry cannot tell Escape or closing the window from the
// Cancel button: on a card before the last, they too show the next card.
// The timeout applies to the whole choice, not to each prompt.
func (p *Pinentry) Choose(ctx context.Context, c Choice) (int, error) {
	if err := checkChoice(c); err != nil {
		return -1, err
	}
	deadline := time.Now().Add(p.timeout(c.Timeout))
	for i, cc := range c.Cards {
		timeout := time.Until(deadline)
		if timeout <= 0 {
			return -1, ErrTimeout
		}
		last := i == len(c.Cards)-1
		desc := ChoiceHeading(c) + "\n\nCard " + strconv.Itoa(i+1) + " of " + strconv.Itoa(len(c.Cards)) + ": " + CardLine(cc)
		if last {
			desc += "\n\nUse this card, or cancel."
		} else {
			desc += "\n\nUse this card, or go on to the next card (" + CardLine(c.Cards[i+1]) + ")."
		}
		cancel := "Next card"
		if last {
			cancel = "Cancel"
		}
		ok, err := runPinentry(ctx, p, timeout, func(w io.WriteCloser, r io.Reader) (bool, error) {
			return confirm(w, r, "cardagent: choose a card", desc, "Use this card", cancel, timeout)
		}, func(bool) {})
		if err != nil {
			return -1, err
		}
		if ok {
			p.log().Debug("card chosen", zap.Int("index", i))
			return i, nil
		}
	}
	return -1, ErrCancelled
}

// confirm speaks Assuan with the pinentry for one CONFIRM: OK is true; the
// Cancel or "not OK" button is false.
func confirm(w io.WriteCloser, r io.Reader, title, desc, ok, cancel string, timeout time.Duration) (bool, error) {
	defer w.Close()
	rd := newAssuanReader(r)
	defer rd.wipe()
	if err := expectOK(rd); err != nil {
		return false, fmt.Errorf("greeting: %w", err)
	}
	steps := []struct {
		name, arg string
		optional  bool
	}{
		{"SETTITLE", title, false},
		{"SETDESC", desc, false},
		{"SETOK", ok, false},
		{"SETCANCEL", cancel, false},
		{"SETTIMEOUT", strconv.Itoa(int(math.Ceil(timeout.Seconds()))), true},
	}
	for _, s := range steps {
		if _, err := w.Write(command(s.name, s.arg)); err != nil {
			return false, fmt.Errorf("sending %s: %w", s.name, err)
		}
		if err := expectOK(rd); err != nil {
			var ae *assuanError
			if s.optional && errors.As(err, &ae) {
				continue
			}
			return false, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if _, err := w.Write(command("CONFIRM", "")); err != nil {
		return false, fmt.Errorf("sending CONFIRM: %w", err)
	}
	err := expectOK(rd)
	var ae *assuanError
	switch {
	case err == nil:
	case errors.As(err, &ae) && (ae.Code&0xffff == gpgErrCanceled || ae.Code&0xffff == gpgErrNotConfirmed):
		_, _ = w.Write(command("BYE", ""))
		return false, nil
	default:
		return false, fmt.Errorf("CONFIRM: %w", err)
	}
	_, _ = w.Write(command("BYE", ""))
	return true, nil
}
