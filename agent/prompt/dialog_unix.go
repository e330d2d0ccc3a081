//go:build !windows && !darwin

package prompt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// dialogPrograms are the zenity-compatible programs, in the order
// github.com/ncruces/zenity looks for them.
var dialogPrograms = []string{"qarma", "zenity", "matedialog"}

// Desktop reports whether a desktop session is there to show a window in:
// DISPLAY (X11) or WAYLAND_DISPLAY must be set. getenv nil means os.Getenv.
func Desktop(getenv func(string) string) (bool, string) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return false, "no desktop session (DISPLAY and WAYLAND_DISPLAY are not set)"
	}
	return true, ""
}

// dialogProgram finds the dialog program (program, else the first of
// dialogPrograms on PATH).
func dialogProgram(program string) (bool, string) {
	if _, err := findDialogProgram(program); err != nil {
		return false, err.Error()
	}
	return true, ""
}

func findDialogProgram(program string) (string, error) {
	if program != "" {
		p, err := exec.LookPath(program)
		if err != nil {
			return "", fmt.Errorf("dialog program %s not found", program)
		}
		return p, nil
	}
	for _, name := range dialogPrograms {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no dialog program installed (zenity, qarma or matedialog)")
}

// zenityText escapes text for zenity's --text: it expands backslash escapes
// and treats "_" as a mnemonic marker.
func zenityText(s string) string {
	return strings.NewReplacer(`\`, `\\`, "_", "__").Replace(s)
}

func zenityArgs(kind string, d dialogSpec) []string {
	secs := int(math.Ceil(d.timeout.Seconds()))
	args := []string{kind, "--title", d.title, "--text", zenityText(d.text), "--width", "440"}
	if secs > 0 {
		args = append(args, "--timeout", strconv.Itoa(secs))
	}
	return args
}

// Exit codes of zenity and its clones.
const (
	zenityOK      = 0
	zenityCancel  = 1
	zenityTimeout = 5
)

// askSecret runs `zenity --entry --hide-text` and reads its answer into a
// buffer of its own, zeroed after the answer is copied out. The process is
// killed when ctx ends.
func askSecret(ctx context.Context, d dialogSpec) ([]byte, error) {
	path, err := findDialogProgram(d.program)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	cmd := exec.CommandContext(ctx, path, append(zenityArgs("--entry", d), "--hide-text")...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	stderr := &tailBuffer{max: 1024}
	cmd.Stderr = stderr
	cmd.WaitDelay = exitGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %w", ErrUnavailable, path, err)
	}
	var buf [maxDialogAnswer + 2]byte // the answer, its newline, and one byte to detect a longer one
	n, rerr := readFull(stdout, buf[:])
	defer clear(buf[:])
	if rerr == nil { // more than the buffer holds: drain and refuse
		_, _ = io.Copy(io.Discard, stdout)
	}
	werr := cmd.Wait()
	if werr != nil {
		return nil, zenityError(werr, stderr.String())
	}
	if rerr == nil {
		return nil, fmt.Errorf("%w: answer longer than %d bytes", ErrUnavailable, maxDialogAnswer)
	}
	ans := buf[:n]
	if len(ans) > 0 && ans[len(ans)-1] == '\n' {
		ans = ans[:len(ans)-1]
	}
	out := make([]byte, len(ans))
	copy(out, ans)
	return out, nil
}

// readFull reads until buf is full (nil error) or the writer closes (io.EOF).
func readFull(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, io.EOF
		}
	}
	return n, nil
}

// askYesNo runs `zenity --question`: OK is true, Cancel (or closing) false.
func askYesNo(ctx context.Context, d dialogSpec) (bool, error) {
	path, err := findDialogProgram(d.program)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	cmd := exec.CommandContext(ctx, path, append(zenityArgs("--question", d), "--ok-label", "Allow", "--cancel-label", "Deny")...)
	stderr := &tailBuffer{max: 1024}
	cmd.Stderr = stderr
	cmd.WaitDelay = exitGrace
	err = cmd.Run()
	if err == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == zenityCancel && !noDisplay(stderr.String()) {
		return false, nil
	}
	return false, zenityError(err, stderr.String())
}

// zenityError maps how the program ended. Exit 1 is the user's Cancel,
// unless GTK said it could not open the display (it exits 1 then too).
func zenityError(err error, stderr string) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	switch {
	case noDisplay(stderr):
		return fmt.Errorf("%w: the dialog cannot open the display", ErrUnavailable)
	case ee.ExitCode() == zenityCancel:
		return ErrCancelled
	case ee.ExitCode() == zenityTimeout:
		return fmt.Errorf("%w: %w", ErrTimeout, errDialogTimeout)
	}
	return fmt.Errorf("%w: dialog program %v: %s", ErrUnavailable, err, strings.TrimSpace(stderr))
}

func noDisplay(stderr string) bool {
	s := strings.ToLower(stderr)
	return strings.Contains(s, "cannot open display") || strings.Contains(s, "failed to connect to wayland")
}
