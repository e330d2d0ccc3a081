//go:build windows || darwin

package prompt

import (
	"context"
	"errors"
	"fmt"

	"github.com/ncruces/zenity"
)

// Desktop reports whether a desktop session is there to show a window in.
// On Windows and macOS the agent runs in the user's session (a per-session
// process, a LaunchAgent): there is always one.
func Desktop(func(string) string) (bool, string) { return true, "" }

// dialogProgram: the native dialogs need no program.
func dialogProgram(string) (bool, string) { return true, "" }

// askSecret shows a native password entry. ncruces/zenity returns the
// answer as a string, which Go cannot zero: it is copied into a []byte at
// once and the string dropped (see Dialog).
func askSecret(ctx context.Context, d dialogSpec) ([]byte, error) {
	s, err := zenity.Entry(d.text,
		zenity.Title(d.title),
		zenity.HideText(),
		zenity.OKLabel("OK"),
		zenity.CancelLabel("Cancel"),
		zenity.Context(ctx),
	)
	if err != nil {
		return nil, nativeError(err)
	}
	if len(s) > maxDialogAnswer {
		return nil, fmt.Errorf("%w: answer longer than %d bytes", ErrUnavailable, maxDialogAnswer)
	}
	return []byte(s), nil
}

// askYesNo shows a native question: OK (Allow) is true, Cancel false.
func askYesNo(ctx context.Context, d dialogSpec) (bool, error) {
	err := zenity.Question(d.text,
		zenity.Title(d.title),
		zenity.OKLabel("Allow"),
		zenity.CancelLabel("Deny"),
		zenity.Context(ctx),
	)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, zenity.ErrCanceled) {
		return false, nil
	}
	return false, nativeError(err)
}

func nativeError(err error) error {
	switch {
	case errors.Is(err, zenity.ErrCanceled):
		return ErrCancelled
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err // the caller maps its context
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
