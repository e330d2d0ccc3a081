package pcsc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/pcsc/scard"
)

func TestMapError(t *testing.T) {
	cases := []struct {
		code scard.Error
		want error // nil: no sentinel, returned unchanged
	}{
		{scard.ErrNoService, ErrServiceUnavailable},
		{scard.ErrServiceStopped, ErrServiceUnavailable},
		{scard.ErrCommError, ErrServiceUnavailable},
		{scard.ErrShutdown, ErrServiceUnavailable},
		{scard.ErrInvalidHandle, ErrServiceUnavailable},
		{scard.ErrNoReadersAvailable, ErrNoReader},
		{scard.ErrUnknownReader, ErrNoReader},
		{scard.ErrReaderUnavailable, ErrNoReader},
		{scard.ErrNoSmartcard, ErrNoCard},
		{scard.ErrRemovedCard, ErrCardRemoved},
		{scard.ErrResetCard, ErrCardReset},
		{scard.ErrUnresponsiveCard, ErrCardUnresponsive},
		{scard.ErrUnpoweredCard, ErrCardUnresponsive},
		{scard.ErrSharingViolation, ErrSharingViolation},
		{scard.ErrCancelled, ErrCancelled},
		{scard.ErrTimeout, nil},
		{scard.ErrInsufficientBuffer, nil},
	}
	sentinels := []error{ErrServiceUnavailable, ErrNoReader, ErrNoCard, ErrCardRemoved, ErrCardReset, ErrCardUnresponsive, ErrSharingViolation, ErrCancelled}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%08X", uint32(tc.code)), func(t *testing.T) {
			wrapped := fmt.Errorf("doing something: %w", tc.code)
			err := mapError(wrapped)
			if !errors.Is(err, tc.code) {
				t.Errorf("mapped error %v does not match the original code", err)
			}
			for _, s := range sentinels {
				if got := errors.Is(err, s); got != (s == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
				}
			}
			if tc.want == nil {
				if err != wrapped {
					t.Errorf("unmapped code changed: %v", err)
				}
				return
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("0x%08X", uint32(tc.code))) {
				t.Errorf("message %q lacks the code", err)
			}
			var code scard.Error
			if !errors.As(err, &code) || code != tc.code {
				t.Errorf("errors.As gives %v, want %v", code, tc.code)
			}
			if again := mapError(err); again != err {
				t.Errorf("mapping twice changed the error: %v", again)
			}
		})
	}
	if mapError(nil) != nil {
		t.Error("mapError(nil) != nil")
	}
	other := errors.New("not a PC/SC error")
	if mapError(other) != other {
		t.Error("a non-PC/SC error was changed")
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := cancelled(ctx)
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled() = %v: want both ErrCancelled and context.Canceled", err)
	}
}
