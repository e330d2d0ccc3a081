package main

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const (
	agentPkg   = "github.com/cardagent/cardagent/cmd/cardagent"
	trayPkg    = "github.com/cardagent/cardagent/cmd/cardagent-tray"
	supervisor = "github.com/cardagent/cardagent/tray"
)

// gui is what only cardagent-tray may link: the tray's GUI binding, the
// systray library (cgo: GTK 3 and libayatana-appindicator3 on Linux) and
// the icons.
var gui = []string{
	"github.com/cardagent/cardagent/tray/trayui",
	"github.com/getlantern/systray",
	"github.com/cardagent/cardagent/tray/icons",
}

// deps lists pkg's dependencies (go list -deps) as built with env.
func deps(t *testing.T, pkg string, env ...string) []string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go is not on PATH")
		}
		t.Skip("go is not on PATH")
	}
	cmd := exec.Command(goTool, "list", "-deps", pkg)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps %s %v: %v\n%s", pkg, env, err, stderr)
	}
	return strings.Fields(string(out))
}

// TestTheAgentDoesNotLinkTheTray: cardagent, which serves the loopback
// API, never links the GUI library; cardagent-tray, which the agent
// starts, does. docs/tray.md says why.
func TestTheAgentDoesNotLinkTheTray(t *testing.T) {
	builds := []struct {
		name string
		env  []string
		gui  bool // the tray has its GUI in this build
	}{
		{"linux cgo", []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=1"}, true},
		{"linux without cgo", []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0"}, false},
		{"linux notray", []string{"GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=1", "GOFLAGS=-tags=notray"}, false},
		{"windows", []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"}, true},
		{"macos", []string{"GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=1"}, true},
	}
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			agent := deps(t, agentPkg, b.env...)
			if !slices.Contains(agent, supervisor) {
				t.Fatalf("cardagent does not list %s (the tray supervisor): is the list right?\n%v", supervisor, agent)
			}
			for _, p := range gui {
				if slices.Contains(agent, p) {
					t.Errorf("cardagent links %s", p)
				}
			}
			tray := deps(t, trayPkg, b.env...)
			if !slices.Contains(tray, gui[0]) {
				t.Errorf("cardagent-tray does not link %s", gui[0])
			}
			for _, p := range gui[1:] {
				if slices.Contains(tray, p) != b.gui {
					t.Errorf("cardagent-tray links %s: %v, want %v", p, !b.gui, b.gui)
				}
			}
		})
	}
}
