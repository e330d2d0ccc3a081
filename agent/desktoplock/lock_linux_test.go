package desktoplock

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestValidSessionID(t *testing.T) {
	for id, want := range map[string]bool{"2": true, "c1": true, "": false, "-h": false, "1 2": false, "a/b": false, string(make([]byte, 65)): false} {
		if got := validSessionID(id); got != want {
			t.Errorf("validSessionID(%q) = %v, want %v", id, got, want)
		}
	}
}

// TestSystemProgramIgnoresPATH: the system's lock programs are looked for
// in the system's directories only, never on the user's PATH.
func TestSystemProgramIgnoresPATH(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loginctl"), []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	p, err := systemProgram("loginctl")
	if err == nil && filepath.Dir(p) == dir {
		t.Errorf("systemProgram found %s on PATH", p)
	}
	if _, err := exec.LookPath("loginctl"); err != nil {
		t.Fatal("the decoy is not on PATH: the test proves nothing")
	}
}
