package desktoplock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCommand: the configured command runs, with its arguments, once per
// Lock; a failing one is an error naming it with the start of its output.
func TestCommand(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the test command is a shell script")
	}
	dir := t.TempDir()
	rec := filepath.Join(dir, "locks")
	script := filepath.Join(dir, "lock.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	l := Locker{Command: []string{script, rec, "now"}}
	for range 2 {
		if err := l.Lock(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	if want := rec + " now\n" + rec + " now\n"; string(got) != want {
		t.Errorf("command ran with %q, want %q", got, want)
	}
	if m := l.Method(); !strings.Contains(m, script) {
		t.Errorf("Method() = %q", m)
	}

	fail := filepath.Join(dir, "fail.sh")
	if err := os.WriteFile(fail, []byte("#!/bin/sh\necho no screen locker >&2\nexit 3\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	err = Locker{Command: []string{fail}}.Lock(context.Background())
	if err == nil || !strings.Contains(err.Error(), fail) || !strings.Contains(err.Error(), "no screen locker") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("failing command: %v", err)
	}

	// A locker that holds the screen until the user unlocks (slock, i3lock
	// -n) outlives the context: Lock says so and never kills it (that would
	// unlock the screen).
	marks := filepath.Join(dir, "marks")
	hold := filepath.Join(dir, "hold.sh")
	if err := os.WriteFile(hold, []byte("#!/bin/sh\necho locked >> \"$1\"\nsleep 3\necho unlocked >> \"$1\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := (Locker{Command: []string{hold, marks}}).Lock(ctx); !errors.Is(err, ErrStillRunning) {
		t.Errorf("a locker still running when the context ended: %v, want ErrStillRunning", err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("a locker still running held Lock for %v", d)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(marks)
		if string(b) == "locked\nunlocked\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the locker was not left to run to its end: %q", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A locker that forks into the background and exits 0 (i3lock without
	// -n): its status decides, though its child keeps the output pipe.
	forks := filepath.Join(dir, "forks.sh")
	if err := os.WriteFile(forks, []byte("#!/bin/sh\nsleep 3 &\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (Locker{Command: []string{forks}}).Lock(ctx); err != nil {
		t.Errorf("a locker that forked and exited 0: %v", err)
	}

	// Output is bounded.
	chatty := filepath.Join(dir, "chatty.sh")
	if err := os.WriteFile(chatty, []byte("#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x\nexit 1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (Locker{Command: []string{chatty}}).Lock(context.Background()); err == nil || len(err.Error()) > maxOutput+len(chatty)+100 {
		t.Errorf("chatty command's error is %d bytes", len(err.Error()))
	}
}

// TestNoSystemLockInTests: without a command, a test binary never locks the
// desktop it runs on.
func TestNoSystemLockInTests(t *testing.T) {
	if err := (Locker{}).Lock(context.Background()); !errors.Is(err, ErrSystemLockInTest) {
		t.Fatalf("Lock() without a command in a test = %v, want ErrSystemLockInTest", err)
	}
	if (Locker{}).Method() != systemMethod {
		t.Errorf("Method() = %q", Locker{}.Method())
	}
}

// TestAvailable: a configured command must be an executable file; nothing
// is run to find out.
func TestAvailable(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("execute permission bits are a Unix notion")
	}
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	script := filepath.Join(dir, "lock.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntouch "+ran+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string // "" for available
	}{
		{script, ""},
		{plain, "not executable"},
		{dir, "not a file"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		err := Locker{Command: []string{tc.path}}.Available()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Available(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("Available ran the command")
	}
}
