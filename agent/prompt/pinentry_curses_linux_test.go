package prompt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// openPTY opens a pseudo-terminal and returns its master and the slave's path.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	var n uint32
	var ioctlErr error
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	err = rc.Control(func(fd uintptr) {
		unlock := int32(0)
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
			ioctlErr = e
			return
		}
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
			ioctlErr = e
		}
	})
	if err != nil || ioctlErr != nil {
		t.Fatalf("setting up the pseudo-terminal: %v %v", err, ioctlErr)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

// TestRealPinentryCurses runs Debian's pinentry-curses on a pseudo-terminal:
// the real program accepts every command Pinentry sends, shows the
// description, and returns what is typed on its terminal.
func TestRealPinentryCurses(t *testing.T) {
	const path = "/usr/bin/pinentry-curses"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed", path)
	}
	t.Parallel()
	for _, tc := range []struct {
		name    string
		typed   string // typed once the prompt is drawn; "" types nothing
		cancel  bool   // cancel the context once the prompt is drawn
		wantPIN string
		wantErr error
	}{
		{name: "PIN typed", typed: marker + "\r", wantPIN: marker},
		{name: "context cancelled", cancel: true, wantErr: ErrCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			master, tty := openPTY(t)
			core, logs := observer.New(zapcore.DebugLevel)
			p := &Pinentry{Path: path, Args: []string{"--ttyname", tty, "--ttytype", "vt100"}, Log: zap.New(core), Timeout: 20 * time.Second}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()

			screen := make(chan []byte, 1)
			go func() { // read the terminal until the prompt is drawn, then act
				var buf []byte
				chunk := make([]byte, 4096)
				for !bytes.Contains(buf, []byte("PIN:")) || !bytes.Contains(buf, []byte("tries")) {
					n, err := master.Read(chunk)
					buf = append(buf, chunk[:n]...)
					if err != nil {
						break
					}
				}
				if tc.typed != "" {
					master.Write([]byte(tc.typed))
				}
				if tc.cancel {
					cancel()
				}
				screen <- buf
			}()

			pin, err := p.PIN(ctx, signIn)
			master.Close() // ends the reader if the prompt never appeared
			shownText := string(<-screen)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || pin != nil {
					t.Fatalf("PIN() = %q, %v; want %v", pin, err, tc.wantErr)
				}
			} else if err != nil || string(pin) != tc.wantPIN {
				t.Fatalf("PIN() = %q, %v; want %q (terminal showed %q)", pin, err, tc.wantPIN, shownText)
			}
			Zero(pin)
			for _, want := range []string{"signin.example.org", "Jane", "tries", "blocked"} {
				if !strings.Contains(shownText, want) {
					t.Errorf("terminal did not show %q: %q", want, shownText)
				}
			}
			if strings.Contains(shownText, marker) {
				t.Error("pinentry echoed the PIN on the terminal")
			}
			assertNoMarker(t, logs)
		})
	}
}
