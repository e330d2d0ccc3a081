package prompt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Dialog asks for the PIN (or PUK, or a new PIN) and for consent with the
// desktop's own dialogs, shown by the agent process itself:
//
//   - Linux and other Unix desktops: the zenity program (or its clones qarma
//     and matedialog), run directly so that its answer is read into a buffer
//     this package zeroes. Its window is an ordinary top-level window: the
//     window manager gives it the focus (GNOME and KDE do for a new window;
//     a focus-stealing-prevention setting may only flash it in the task bar).
//   - Windows and macOS: native dialogs through github.com/ncruces/zenity,
//     which brings them to the foreground. That library returns the answer
//     as a Go string, which cannot be zeroed: it is converted to a []byte at
//     once and dropped, and lives on in the heap until the garbage collector
//     reuses the memory. This is the one place a PIN copy escapes zeroing;
//     pinentry and the Linux dialog do not have it.
//
// A Dialog never reports "cancelled" for a dialog that could not be shown:
// without a display, or without the dialog program, it returns
// ErrUnavailable, so the caller can fall back to pinentry.
//
// Cancelling ctx closes the dialog (the program is killed, the native dialog
// is closed) and returns ErrCancelled; the timeout closes it with ErrTimeout.
type Dialog struct {
	// Log receives debug lines (never the PIN); nil logs nothing.
	Log *zap.Logger
	// Timeout is used when the Request sets none; zero means DefaultTimeout.
	Timeout time.Duration
	// Policy, when set, checks every PIN (not the PUK) before it is
	// returned: a PIN it refuses is never returned, the dialog is shown
	// again with the reason (at most maxFormatPrompts times in all), and no
	// try is spent. config.PINPolicy implements it.
	Policy interface{ Check(pin []byte) error }
	// Title is the dialogs' window title; "" means "cardagent".
	Title string
	// Program is the zenity-compatible program (Linux and other Unix
	// systems); "" looks for qarma, zenity and matedialog on PATH.
	Program string
	// Getenv reads the environment (DISPLAY, WAYLAND_DISPLAY); nil means os.Getenv.
	Getenv func(string) string
}

var _ Prompter = (*Dialog)(nil)

// maxFormatPrompts bounds how often a PIN with the wrong format is asked again.
const maxFormatPrompts = 3

// maxDialogAnswer bounds the answer read from a dialog, in bytes.
const maxDialogAnswer = maxPIN

// Consent is what a consent dialog shows.
type Consent struct {
	// Origin is the web origin that asks; Holder and CardType name the card.
	Origin, Holder, CardType string
	// Timeout closes the dialog (ErrTimeout); zero means the Dialog's default.
	Timeout time.Duration
}

// Confirmer asks the user to allow an operation that needs no PIN (for
// example a sign-in served from a cached PIN).
type Confirmer interface {
	Confirm(ctx context.Context, c Consent) (bool, error)
}

var _ Confirmer = (*Dialog)(nil)

func (d *Dialog) log() *zap.Logger {
	if d.Log == nil {
		return zap.NewNop()
	}
	return d.Log
}

func (d *Dialog) title() string {
	if d.Title == "" {
		return "cardagent"
	}
	return d.Title
}

func (d *Dialog) timeout(t time.Duration) time.Duration {
	switch {
	case t > 0:
		return t
	case d.Timeout > 0:
		return d.Timeout
	}
	return DefaultTimeout
}

// Available reports whether a dialog can be shown here, and why not.
func (d *Dialog) Available() (bool, string) {
	if ok, why := Desktop(d.Getenv); !ok {
		return false, why
	}
	return dialogProgram(d.Program)
}

// PIN shows req in a dialog and returns what was typed as a fresh []byte
// (the caller zeroes it). See Dialog for how each OS is handled.
func (d *Dialog) PIN(ctx context.Context, req Request) ([]byte, error) {
	if ctx.Err() != nil {
		return nil, contextError(ctx)
	}
	if ok, why := d.Available(); !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	checked := d.Policy != nil && req.Secret != SecretPUK
	for attempt := 1; ; attempt++ {
		pin, err := d.ask(ctx, req)
		if err != nil {
			return nil, err
		}
		if !checked {
			return pin, nil
		}
		ferr := d.Policy.Check(pin)
		if ferr == nil {
			return pin, nil
		}
		Zero(pin)
		if attempt >= maxFormatPrompts {
			return nil, ferr
		}
		req.Retry = "That " + strings.TrimSuffix(req.Secret.Label(), ":") + " cannot be right. " + userMessage(ferr) +
			" Nothing was sent to the card; please enter it again."
	}
}

// userMessage is err as a sentence for the user (its UserMessage when it has one).
func userMessage(err error) string {
	msg := err.Error()
	if um, ok := err.(interface{ UserMessage() string }); ok && um.UserMessage() != "" {
		msg = um.UserMessage()
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// ask shows one secret-entry dialog.
func (d *Dialog) ask(ctx context.Context, req Request) ([]byte, error) {
	timeout := d.timeout(req.Timeout)
	text := Description(req)
	if r := clean(req.Retry, 300); r != "" {
		text = r + "\n\n" + text
	}
	tctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
	defer cancel()
	start := time.Now()
	pin, err := askSecret(tctx, dialogSpec{
		program: d.Program,
		title:   d.title() + ": " + strings.TrimSuffix(req.Secret.Label(), ":"),
		text:    text,
		label:   req.Secret.Label(),
		timeout: timeout,
	})
	if err != nil {
		Zero(pin)
		err = d.dialogError(ctx, tctx, err)
		d.log().Debug("dialog closed without an answer", zap.Error(err), zap.Duration("after", time.Since(start)))
		return nil, err
	}
	d.log().Debug("dialog answered", zap.Duration("after", time.Since(start)), zap.Int("length", len(pin)))
	return pin, nil
}

// Confirm asks whether c.Origin may use the card; true means allowed. The
// user closing or refusing the dialog is (false, nil).
func (d *Dialog) Confirm(ctx context.Context, c Consent) (bool, error) {
	if ctx.Err() != nil {
		return false, contextError(ctx)
	}
	if ok, why := d.Available(); !ok {
		return false, fmt.Errorf("%w: %s", ErrUnavailable, why)
	}
	lines := []string{}
	if o := clean(c.Origin, 300); o != "" {
		lines = append(lines, o+" asks to sign you in with your smartcard.")
	} else {
		lines = append(lines, "A program asks to use your smartcard.")
	}
	if h := clean(c.Holder, 200); h != "" {
		lines = append(lines, "Card holder: "+h)
	}
	if t := clean(c.CardType, 120); t != "" {
		lines = append(lines, "Card: "+t)
	}
	lines = append(lines, "", "Allow it?")
	timeout := d.timeout(c.Timeout)
	tctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w after %s", ErrTimeout, timeout))
	defer cancel()
	ok, err := askYesNo(tctx, dialogSpec{
		program: d.Program,
		title:   d.title() + ": allow sign-in?",
		text:    strings.Join(lines, "\n"),
		timeout: timeout,
	})
	if err != nil {
		return false, d.dialogError(ctx, tctx, err)
	}
	return ok, nil
}

// dialogError maps why a dialog ended without an answer: ctx (the caller)
// gone gives ErrCancelled (or ErrTimeout when its deadline passed), our own
// timeout ErrTimeout; the rest is the backend's error, already one of the
// package's errors.
func (d *Dialog) dialogError(ctx, tctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return contextError(ctx)
	case tctx.Err() != nil:
		return context.Cause(tctx)
	}
	return err
}

// dialogSpec is one dialog for the OS backend.
type dialogSpec struct {
	program string
	title   string
	text    string
	label   string
	timeout time.Duration
}

// errDialogTimeout is a backend's report that the dialog's own timer ended it.
var errDialogTimeout = errors.New("dialog timed out")
