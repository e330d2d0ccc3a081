package logfile_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/config"
	"github.com/cardagent/cardagent/agent/logfile"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// totalSize adds up every file in dir.
func totalSize(t *testing.T, dir string) (int64, []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err) // also called from goroutines: no Fatal
		return 0, nil
	}
	var n int64
	var names []string
	for _, e := range entries {
		fi, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue // rotated away while we looked
		}
		if err != nil {
			t.Error(err)
			continue
		}
		n += fi.Size()
		names = append(names, e.Name())
	}
	return n, names
}

func TestFloodStaysUnderCap(t *testing.T) {
	dir := t.TempDir()
	const maxBytes, backups = 64 << 10, 3
	w, err := logfile.Open(logfile.Options{Dir: dir, MaxBytes: maxBytes, Backups: backups})
	if err != nil {
		t.Fatal(err)
	}
	log, err := logfile.NewLogger(w, nil, "", "debug")
	if err != nil {
		t.Fatal(err)
	}
	// 8 goroutines, 40000 entries, about 5 MB: 20 times the cap.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				log.Info("card event", zap.Int("goroutine", g), zap.Int("i", i), zap.String("reader", "Virtual PCD 00 00"),
					zap.String("padding", strings.Repeat("x", 50)))
				if i%1000 == 0 {
					if n, _ := totalSize(t, dir); n > w.MaxTotal() {
						t.Errorf("mid-flood total %d > cap %d", n, w.MaxTotal())
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n, names := totalSize(t, dir)
	if n > w.MaxTotal() || n < w.MaxTotal()/2 {
		t.Errorf("total %d bytes, want at most %d (and most of it used)", n, w.MaxTotal())
	}
	want := []string{"cardagent.log", "cardagent.log.1", "cardagent.log.2", "cardagent.log.3"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("files %v, want %v", names, want)
	}
	// Every line of every file is a whole JSON entry (rotation never splits one).
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["msg"] != "card event" {
				t.Fatalf("%s: bad line %q: %v", name, sc.Text(), err)
			}
		}
		f.Close()
	}
	if fi, _ := os.Stat(filepath.Join(dir, "cardagent.log")); fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestRotationOrderAndReopen(t *testing.T) {
	dir := t.TempDir()
	opts := logfile.Options{Dir: dir, MaxBytes: 4096, Backups: 2}
	w, err := logfile.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	line := func(i int) []byte { return []byte(fmt.Sprintf("%04d %s\n", i, strings.Repeat("y", 1018))) } // 1 KiB
	for i := range 10 {
		if _, err := w.Write(line(i)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			ids = append(ids, l[:4])
		}
		return strings.Join(ids, ",")
	}
	// 4 lines fit in a file; the newest lines are in the live file.
	if got := read("cardagent.log"); got != "0008,0009" {
		t.Errorf("live file %s", got)
	}
	if got := read("cardagent.log.1"); got != "0004,0005,0006,0007" {
		t.Errorf(".1 %s", got)
	}
	if got := read("cardagent.log.2"); got != "0000,0001,0002,0003" {
		t.Errorf(".2 %s", got)
	}
	// Reopening appends, and rotates when the file is already full.
	w, err = logfile.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 13; i++ {
		w.Write(line(i))
	}
	w.Close()
	if got := read("cardagent.log"); got != "0012" {
		t.Errorf("after reopen: live %s", got)
	}
	if got := read("cardagent.log.1"); got != "0008,0009,0010,0011" {
		t.Errorf("after reopen: .1 %s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "cardagent.log.3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a third backup exists: %v", err)
	}
	// A single entry larger than the file cap is cut, not written whole.
	w, _ = logfile.Open(opts)
	if n, err := w.Write(bytes.Repeat([]byte("z"), 10000)); err != nil || n != 10000 {
		t.Errorf("big write: %d %v", n, err)
	}
	w.Close()
	if n, _ := totalSize(t, dir); n > 4096*3 {
		t.Errorf("total %d over the cap after a huge entry", n)
	}
	if _, err := w.Write([]byte("late\n")); err == nil {
		t.Error("write after Close succeeded")
	}
}

func TestLevelAndConsole(t *testing.T) {
	dir := t.TempDir()
	var console bytes.Buffer
	log, closeLog, err := logfile.OpenLogger(logfile.Options{Dir: dir}, &console, "console", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("quiet")
	log.Warn("loud", zap.String("reader", "r1"))
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, logfile.DefaultName))
	if strings.Contains(string(b), "quiet") || !strings.Contains(string(b), `"msg":"loud"`) {
		t.Errorf("file: %s", b)
	}
	if !strings.Contains(console.String(), "WARN") || strings.Contains(console.String(), "quiet") {
		t.Errorf("console: %s", console.String())
	}
	for _, tt := range []struct{ format, level string }{{"console", "verbose"}, {"xml", "info"}, {"json", "panic"}} {
		if _, err := logfile.NewLogger(&console, &console, tt.format, tt.level); err == nil {
			t.Errorf("format %q level %q accepted", tt.format, tt.level)
		}
	}
	if _, err := logfile.Open(logfile.Options{Dir: dir, MaxBytes: 10}); err == nil {
		t.Error("tiny MaxBytes accepted")
	}
	// A log directory that cannot be made: console only, and it says so.
	console.Reset()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	log, closeLog, err = logfile.OpenLogger(logfile.Options{Dir: filepath.Join(blocker, "sub")}, &console, "console", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("still logging")
	closeLog()
	if !strings.Contains(console.String(), "no log file") || !strings.Contains(console.String(), "still logging") {
		t.Errorf("fallback console: %s", console.String())
	}
}

// TestConsoleFallback: with ConsoleFallback the console gets nothing while
// the file is open, and everything when there is no file.
func TestConsoleFallback(t *testing.T) {
	dir := t.TempDir()
	var console bytes.Buffer
	log, closeLog, err := logfile.OpenLogger(logfile.Options{Dir: dir, ConsoleFallback: true}, &console, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("card ready")
	closeLog()
	if b, _ := os.ReadFile(filepath.Join(dir, logfile.DefaultName)); !strings.Contains(string(b), "card ready") || console.Len() != 0 {
		t.Errorf("file %q, console %q: want the entry in the file only", b, console.String())
	}
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	log, closeLog, err = logfile.OpenLogger(logfile.Options{Dir: filepath.Join(blocker, "sub"), ConsoleFallback: true}, &console, "json", "info")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("card ready")
	closeLog()
	if !strings.Contains(console.String(), "no log file") || !strings.Contains(console.String(), "card ready") {
		t.Errorf("console without a file: %q", console.String())
	}
}

// TestNoPINInLogFile logs what the agent logs around a PIN (a refused PIN
// format, a wrong PIN) at debug level and checks the file never holds the PIN.
func TestNoPINInLogFile(t *testing.T) {
	const marker = "739146"
	dir := t.TempDir()
	log, closeLog, err := logfile.OpenLogger(logfile.Options{Dir: dir}, nil, "", "debug")
	if err != nil {
		t.Fatal(err)
	}
	pin := []byte(marker + "x")
	policy := config.Default().PIN
	ferr := policy.Check(pin)
	log.Debug("PIN refused before reaching the card", zap.Error(ferr))
	log.Warn("sign-in failed", zap.Error(fmt.Errorf("authenticating: %w", ferr)), zap.String("origin", "https://signin.example.org"))
	log.Info("PIN entered", zap.Int("length", len(pin)))
	closeLog()
	b, err := os.ReadFile(filepath.Join(dir, logfile.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || bytes.Contains(b, []byte(marker)) {
		t.Fatalf("log file holds the marker PIN (or nothing): %s", b)
	}
}

func TestDefaultDir(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		t.Skip("XDG layout")
	}
	t.Setenv("XDG_STATE_HOME", "/tmp/state")
	d, err := logfile.DefaultDir()
	if err != nil {
		t.Fatal(err)
	}
	if d != "/tmp/state/cardagent" {
		t.Errorf("DefaultDir %q", d)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, _ := logfile.DefaultDir(); d != "/home/u/.local/state/cardagent" {
		t.Errorf("DefaultDir without XDG_STATE_HOME: %q", d)
	}
}
