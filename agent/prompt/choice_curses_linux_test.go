package prompt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// TestRealPinentryCursesChoose runs the card choice through Debian's
// pinentry-curses on a pseudo-terminal: the real program takes CONFIRM with
// the OK and Cancel labels, shows the card, and its Cancel button goes on to
// the next card, whose OK button picks it.
func TestRealPinentryCursesChoose(t *testing.T) {
	const path = "/usr/bin/pinentry-curses"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed", path)
	}
	t.Parallel()
	master, tty := openPTY(t)
	p := &Pinentry{Path: path, Args: []string{"--ttyname", tty, "--ttytype", "vt100"}, Timeout: 20 * time.Second}

	type screen struct{ first, second []byte }
	shown := make(chan screen, 1)
	go func() {
		var s screen
		chunk := make([]byte, 4096)
		// until is the reader's wait for the prompt of card n, then it presses keys.
		until := func(buf *[]byte, want ...string) bool {
			for {
				ok := true
				for _, w := range want {
					ok = ok && bytes.Contains(*buf, []byte(w))
				}
				if ok {
					return true
				}
				n, err := master.Read(chunk)
				*buf = append(*buf, chunk[:n]...)
				switch {
				case errors.Is(err, os.ErrClosed):
					return false
				case err != nil:
					// EIO between two pinentry processes: no one has the
					// terminal open until the next one starts.
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
		if until(&s.first, "Next card", "Use this card", "Jane") {
			master.Write([]byte("\t\r")) // to Cancel ("Next card"), press it
			if until(&s.second, "John", "Cancel") {
				master.Write([]byte("\r")) // OK ("Use this card") has the focus
			}
		}
		shown <- s
	}()

	i, err := p.Choose(context.Background(), twoCards)
	master.Close()
	s := <-shown
	if err != nil || i != 1 {
		t.Fatalf("Choose = %d, %v; want 1 (first screen %q, second %q)", i, err, s.first, s.second)
	}
	if !bytes.Contains(s.first, []byte("signin.example.org")) {
		t.Errorf("the first prompt did not show the origin: %q", s.first)
	}
}
