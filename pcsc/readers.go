package pcsc

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cardagent/cardagent/pcsc/scard"
)

// ListReaders lists the readers and what is in them, once (for `cardagent
// cards`; the agent uses Monitor.Snapshot). No reader is an empty list and
// no error; a missing PC/SC service is an error matching ErrServiceUnavailable.
func ListReaders(ctx context.Context) ([]ReaderStatus, error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("listing readers: %w", cancelled(ctx))
	}
	c, err := establishContext()
	if err != nil {
		return nil, fmt.Errorf("listing readers: %w", mapError(err))
	}
	defer c.Release()
	// A reader can go away between listing and asking its state; list again then.
	const attempts = 3
	for i := 1; ; i++ {
		names, err := listReaderNames(c)
		if err != nil {
			return nil, fmt.Errorf("listing readers: %w", mapError(err))
		}
		if len(names) == 0 {
			return []ReaderStatus{}, nil
		}
		states := make([]scard.ReaderState, len(names))
		for j, n := range names {
			states[j] = scard.ReaderState{Reader: n, CurrentState: scard.StateUnaware}
		}
		err = c.GetStatusChange(states, 0)
		if errors.Is(err, scard.ErrUnknownReader) && i < attempts {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading reader states: %w", mapError(err))
		}
		out := make([]ReaderStatus, len(names))
		for j, st := range states {
			out[j] = readerStatus(st)
		}
		return out, nil
	}
}

func readerStatus(st scard.ReaderState) ReaderStatus {
	ev := st.EventState
	r := ReaderStatus{Name: st.Reader}
	if ev&(scard.StateUnknown|scard.StateUnavailable|scard.StateIgnore) != 0 {
		return r
	}
	r.Present = ev&scard.StatePresent != 0
	r.Mute = r.Present && ev&scard.StateMute != 0
	if r.Present {
		r.ATR = bytes.Clone(st.Atr)
	}
	return r
}
