package prompt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/safetext"
)

// DefaultTimeout closes a prompt when neither the Request nor the Pinentry
// sets a timeout.
const DefaultTimeout = 60 * time.Second

// maxPIN bounds the PIN a pinentry may return, in bytes.
const maxPIN = 64

// exitGrace is how long a pinentry has to exit after BYE before it is killed.
const exitGrace = time.Second

// Pinentry asks for the PIN by running a pinentry program (GnuPG's
// pinentry-gnome3, pinentry-qt, pinentry-mac, ...) and speaking the Assuan
// protocol with it over its standard input and output.
//
// Each PIN call starts its own process, which is killed when ctx is cancelled
// (ErrCancelled), when the timeout passes (ErrTimeout) or when it breaks the
// protocol; a missing or crashing program gives ErrUnavailable. The PIN is read
// into a fixed buffer, decoded in place and returned as a fresh []byte; every
// intermediate buffer is zeroed and it is never logged. The agent never asks
// the pinentry to cache the PIN (no SETKEYINFO, no allow-external-password-cache).
type Pinentry struct {
	// Path is the program to run.
	Path string
	// Args are passed to it (e.g. "--display", ":0"); usually none.
	Args []string
	// Log receives debug lines about each prompt (never the PIN); nil logs nothing.
	Log *zap.Logger
	// Timeout is used when the Request sets none; zero means DefaultTimeout.
	Timeout time.Duration
}

var _ Prompter = (*Pinentry)(nil)

// PIN shows req in a pinentry and returns what the user typed. An empty
// answer (OK pressed on an empty field) is returned as an empty, non-nil slice.
// A ctx that ends by its deadline gives ErrTimeout, one that is cancelled
// ErrCancelled; both wrap the context's cause.
func (p *Pinentry) PIN(ctx context.Context, req Request) ([]byte, error) {
	timeout := p.timeout(req.Timeout)
	pin, err := runPinentry(ctx, p, timeout, func(w io.WriteCloser, r io.Reader) ([]byte, error) {
		return dialog(w, r, req, timeout)
	}, Zero)
	if err != nil {
		return nil, err
	}
	p.log().Debug("pinentry answered", zap.Int("pin_length", len(pin)))
	return pin, nil
}

func (p *Pinentry) log() *zap.Logger {
	if p.Log == nil {
		return zap.NewNop()
	}
	return p.Log
}

// timeout is t, else the Pinentry's, else DefaultTimeout.
func (p *Pinentry) timeout(t time.Duration) time.Duration {
	if t <= 0 {
		t = p.Timeout
	}
	if t <= 0 {
		t = DefaultTimeout
	}
	return t
}

// runPinentry starts the program, runs talk with it over its standard input
// and output, and ends it: it is killed when ctx ends (ErrCancelled or
// ErrTimeout), when timeout passes (ErrTimeout) or when talk fails; after
// talk succeeds it has exitGrace to exit after BYE. drop disposes of an
// answer that arrived just as the process was stopped.
func runPinentry[T any](ctx context.Context, p *Pinentry, timeout time.Duration, talk func(w io.WriteCloser, r io.Reader) (T, error), drop func(T)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, contextError(ctx)
	}
	if p.Path == "" {
		return zero, fmt.Errorf("%w: no pinentry program configured", ErrUnavailable)
	}
	log := p.log()
	cmd := exec.Command(p.Path, p.Args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return zero, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return zero, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	stderr := &tailBuffer{max: 1024}
	cmd.Stderr = stderr
	cmd.WaitDelay = exitGrace // a child left holding stderr cannot hold up Wait
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return zero, fmt.Errorf("%w: starting pinentry: %w", ErrUnavailable, err)
	}
	log.Debug("pinentry started", zap.String("path", p.Path), zap.Int("pid", cmd.Process.Pid), zap.Duration("timeout", timeout))

	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := talk(stdin, stdout)
		done <- result{v, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var res result
	var stop error // why the process was stopped before it answered
	select {
	case res = <-done:
	case <-ctx.Done():
		stop = contextError(ctx)
	case <-timer.C:
		stop = fmt.Errorf("%w after %s", ErrTimeout, timeout)
	}
	if stop != nil || res.err != nil {
		// Killing it ends the dialog: Wait closes our ends of the pipes.
		_ = cmd.Process.Kill()
	} else {
		// A pinentry exits after BYE; one that does not is killed.
		t := time.AfterFunc(exitGrace, func() { _ = cmd.Process.Kill() })
		defer t.Stop()
	}
	waitErr := cmd.Wait()
	if stop != nil {
		res = <-done
		if res.err == nil {
			drop(res.v) // answered just as it was stopped: drop it
		}
		log.Debug("pinentry stopped", zap.Error(stop), zap.Duration("after", time.Since(start)))
		return zero, stop
	}
	if res.err != nil {
		err := pinentryError(res.err, waitErr)
		log.Debug("pinentry failed", zap.Error(err), zap.Duration("after", time.Since(start)),
			zap.String("stderr", stderr.String()))
		return zero, err
	}
	log.Debug("pinentry ended", zap.Duration("after", time.Since(start)))
	return res.v, nil
}

// contextError says why ctx ended, as ErrTimeout or ErrCancelled.
func contextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, context.Cause(ctx))
	}
	return fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))
}

// pinentryError maps a dialog failure (and how the process ended) onto the
// package's errors.
func pinentryError(err, waitErr error) error {
	var ae *assuanError
	if errors.As(err, &ae) {
		switch ae.Code & 0xffff {
		case gpgErrCanceled, gpgErrFullyCanceled:
			return ErrCancelled
		case gpgErrTimeout:
			return ErrTimeout
		}
		return fmt.Errorf("%w: pinentry answered %w", ErrUnavailable, err)
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		return fmt.Errorf("%w: pinentry %v: %w", ErrUnavailable, waitErr, err)
	}
	return fmt.Errorf("%w: pinentry: %w", ErrUnavailable, err)
}

// dialog speaks Assuan with the pinentry: greeting, description, GETPIN, BYE.
func dialog(w io.WriteCloser, r io.Reader, req Request, timeout time.Duration) (pin []byte, err error) {
	defer w.Close()
	rd := newAssuanReader(r)
	defer rd.wipe()
	if err := expectOK(rd); err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	steps := []struct {
		name, arg string
		optional  bool // an older pinentry may not know it
	}{
		{"SETTITLE", "cardagent: smartcard PIN", false},
		{"SETDESC", Description(req), false},
		{"SETPROMPT", req.Secret.Label(), false},
		{"SETERROR", clean(req.Retry, 300), false},
		{"SETTIMEOUT", strconv.Itoa(int(math.Ceil(timeout.Seconds()))), true},
	}
	for _, s := range steps {
		if s.arg == "" {
			continue
		}
		if _, err := w.Write(command(s.name, s.arg)); err != nil {
			return nil, fmt.Errorf("sending %s: %w", s.name, err)
		}
		if err := expectOK(rd); err != nil {
			var ae *assuanError
			if s.optional && errors.As(err, &ae) {
				continue
			}
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if _, err := w.Write(command("GETPIN", "")); err != nil {
		return nil, fmt.Errorf("sending GETPIN: %w", err)
	}
	pin, err = readPIN(rd, w)
	if err != nil {
		return nil, fmt.Errorf("GETPIN: %w", err)
	}
	_, _ = w.Write(command("BYE", "")) // it may already be gone; the PIN is in hand
	return pin, nil
}

// expectOK reads until OK (nil) or ERR (*assuanError), skipping status
// lines and comments.
func expectOK(rd *assuanReader) error {
	for {
		line, err := rd.readLine()
		if err != nil {
			return readError(err)
		}
		kind, rest := parseResponse(line)
		switch kind {
		case respOK:
			return nil
		case respErr:
			return parseErr(rest)
		case respStatus, respComment:
			continue
		case respData:
			clear(line)
			return errors.New("unexpected data line")
		}
		return fmt.Errorf("unexpected reply %q", printable(line, 40))
	}
}

// readPIN reads GETPIN's answer: data lines, then OK. The PIN is decoded in
// place in the reader's buffer and copied into one fixed buffer; on error
// everything is zeroed.
func readPIN(rd *assuanReader, w io.Writer) (pin []byte, err error) {
	buf := make([]byte, 0, maxPIN)
	defer func() {
		if err != nil {
			Zero(buf[:cap(buf)])
		}
	}()
	for {
		line, err := rd.readLine()
		if err != nil {
			return nil, readError(err)
		}
		kind, rest := parseResponse(line)
		switch kind {
		case respData:
			data, err := percentDecode(rest)
			if err != nil {
				clear(line)
				return nil, fmt.Errorf("data line: %w", err)
			}
			if len(buf)+len(data) > maxPIN {
				clear(line)
				return nil, fmt.Errorf("answer longer than %d bytes", maxPIN)
			}
			buf = append(buf, data...)
			clear(line)
		case respOK:
			out := make([]byte, len(buf))
			copy(out, buf)
			Zero(buf[:cap(buf)])
			return out, nil
		case respErr:
			return nil, parseErr(rest)
		case respStatus, respComment:
		case respInquire: // nothing we asked for needs an inquiry: decline it
			if _, err := w.Write(command("CAN", "")); err != nil {
				return nil, err
			}
		default:
			clear(line)
			return nil, errors.New("unexpected reply")
		}
	}
}

func readError(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("the program closed its output")
	}
	return err
}

// Description is the text a prompt shows for req, one fact per line: who
// asks and why, the card holder, the card, and the tries left in words.
func Description(req Request) string {
	purpose := clean(req.Purpose, 60)
	if purpose == "" {
		purpose = "sign in"
	}
	var lines []string
	switch origin := clean(req.Origin, 300); {
	case req.Secret == SecretPUK:
		lines = append(lines, "Enter your card's PUK (unblocking code) to "+purpose+".")
	case req.Secret == SecretNewPIN:
		lines = append(lines, "Choose a new PIN for your smartcard.")
	case req.Secret == SecretNewPINAgain:
		lines = append(lines, "Enter the new PIN again to confirm it.")
	case origin != "":
		lines = append(lines, origin+" asks for your smartcard PIN to "+purpose+".")
	default:
		lines = append(lines, "Enter your smartcard PIN to "+purpose+".")
	}
	if h := clean(req.Holder, 200); h != "" {
		lines = append(lines, "Card holder: "+h)
	}
	if c := clean(req.CardType, 120); c != "" {
		lines = append(lines, "Card: "+c)
	}
	if r := clean(req.Reader, 120); r != "" {
		lines = append(lines, "Reader: "+r)
	}
	if req.Secret == SecretPUK {
		if t := PUKTriesLeft(req.TriesLeft); t != "" {
			lines = append(lines, t)
		}
	} else if t := TriesLeft(req.TriesLeft); t != "" {
		lines = append(lines, t)
	}
	return strings.Join(lines, "\n")
}

// TriesLeft says in words how many PIN tries are left ("" when unknown).
func TriesLeft(n int) string {
	switch {
	case n < 0:
		return ""
	case n == 0:
		return "The card is blocked."
	case n == 1:
		return "Last try before the card is blocked."
	}
	return strconv.Itoa(n) + " tries left before the card is blocked."
}

// PUKTriesLeft says in words how many PUK tries are left ("" when unknown).
func PUKTriesLeft(n int) string {
	switch {
	case n < 0:
		return ""
	case n == 0:
		return "The PUK is blocked: only your Registration Authority can unblock the card."
	case n == 1:
		return "Last PUK try: after one more wrong PUK only your Registration Authority can unblock the card."
	}
	return strconv.Itoa(n) + " PUK tries left."
}

// clean makes text from a certificate or a caller safe to show on one line
// (safetext.Line), cut to at most n bytes. The limits Description uses
// keep SETDESC within an Assuan line.
func clean(s string, n int) string { return safetext.Line(s, n) }

// tailBuffer keeps the last max bytes written (a pinentry's stderr, for the
// debug log).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return printable(t.b, t.max)
}
