//go:build !windows

package logfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cardagent/cardagent/agent/logfile"
)

// TestLogRefusesLink: a symbolic link where the log file goes is not
// followed (the file it names is neither appended to nor truncated), on
// open and on rotation.
func TestLogRefusesLink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, logfile.DefaultName)); err != nil {
		t.Fatal(err)
	}
	if w, err := logfile.Open(logfile.Options{Dir: dir}); err == nil {
		w.Close()
		t.Fatal("opened a log file that is a symbolic link")
	}
	// Rotation: a link put in place of the file after it was opened.
	dir2 := t.TempDir()
	w, err := logfile.Open(logfile.Options{Dir: dir2, MaxBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	path := filepath.Join(dir2, logfile.DefaultName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 3000) + "\n")
	w.Write(line)
	w.Write(line) // rotates: the link is renamed away and a new file is made without following anything
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Fatalf("the link's target was written: %q", b)
	}
}

// TestLogDirectoryChecks: a log directory that is a link, or belongs to
// another user, is refused; one of ours open to others is tightened to 0700.
func TestLogDirectoryChecks(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	w, err := logfile.Open(logfile.Options{Dir: open})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Errorf("log directory mode %v, want 0700", fi.Mode().Perm())
	}

	link := filepath.Join(base, "link")
	if err := os.Symlink(open, link); err != nil {
		t.Fatal(err)
	}
	if w, err := logfile.Open(logfile.Options{Dir: link}); err == nil {
		w.Close()
		t.Error("a log directory that is a link was accepted")
	}

	if os.Getuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	other := filepath.Join(base, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err = logfile.Open(logfile.Options{Dir: other})
	if err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("another user's log directory: %v", err)
	}
}
