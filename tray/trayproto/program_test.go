package trayproto

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestFindProgram(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses executable bits and symbolic links")
	}
	root := t.TempDir()
	mk := func(p string, mode os.FileMode) string {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	agentNextTo := mk("usr/bin/cardagent", 0o755)
	trayNextTo := mk("usr/bin/cardagent-tray", 0o755)
	agentAlone := mk("opt/a/cardagent", 0o755)
	mk("opt/b/cardagent", 0o755)
	mk("opt/b/cardagent-tray", 0o644) // not executable
	agentNotExec := filepath.Join(root, "opt/b/cardagent")
	onPath := mk("path/cardagent-tray", 0o755)
	winTray := mk("win/cardagent-tray.exe", 0o755)
	winAgent := mk("win/cardagent.exe", 0o755)
	realDir := filepath.Dir(trayNextTo)
	link := filepath.Join(root, "links/cardagent")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(agentNextTo, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, self, path, goos string
		want                   string // "" for an error
	}{
		{"next to the agent, before PATH", agentNextTo, filepath.Join(root, "path"), "linux", trayNextTo},
		{"on PATH", agentAlone, filepath.Join(root, "path"), "linux", onPath},
		{"not installed", agentAlone, t.TempDir(), "linux", ""},
		{"not executable", agentNotExec, t.TempDir(), "linux", ""},
		{"next to the real file of a link", link, t.TempDir(), "darwin", filepath.Join(realDir, "cardagent-tray")},
		{"windows adds .exe", winAgent, t.TempDir(), "windows", winTray},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			got, err := findProgram(TrayProgram, tc.goos, func() (string, error) { return tc.self, nil }, exec.LookPath)
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), "cardagent-tray is not installed") || !strings.Contains(err.Error(), filepath.Dir(tc.self)) {
					t.Errorf("got %q, %v; want an error naming where it looked", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %s", got, err, tc.want)
			}
		})
	}
}
