package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const (
	module     = "github.com/cardagent/cardagent"
	agentPkg   = module + "/cmd/cardagent"
	trayPkg    = module + "/cmd/cardagent-tray"
	supervisor = module + "/agent/trayhost"
	// trayProcess is the tray process's own code.
	trayProcess = module + "/tray"
)

// gui is what only cardagent-tray may link: the tray's GUI binding, the
// systray library (cgo: GTK 3 and libayatana-appindicator3 on Linux) and
// the icons.
var gui = []string{
	module + "/tray/trayui",
	"github.com/getlantern/systray",
	module + "/tray/icons",
}

// trayAgentPackages are the only packages under agent/ that cardagent-tray
// may link: leaf packages with no card code (the status types it is sent,
// the certificate facts and expiry rule it shows, the sanitiser for card
// text, its log setup). The card service, the drivers and PC/SC are the
// agent's alone.
var trayAgentPackages = []string{
	module + "/agent/wire",
	module + "/agent/certinfo",
	module + "/agent/expiry",
	module + "/agent/safetext",
	module + "/agent/logfile",
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
// API, never links the GUI library nor the tray process's code;
// cardagent-tray, which the agent starts, does, and links no card code:
// nothing under pcsc/, and under agent/ only trayAgentPackages. docs/tray.md
// says why.
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
			for _, p := range append(gui, trayProcess) {
				if slices.Contains(agent, p) {
					t.Errorf("cardagent links %s", p)
				}
			}
			tray := deps(t, trayPkg, b.env...)
			if !slices.Contains(tray, trayProcess) {
				t.Fatalf("cardagent-tray does not list %s: is the list right?\n%v", trayProcess, tray)
			}
			for _, p := range tray {
				switch {
				case p == module+"/pcsc" || strings.HasPrefix(p, module+"/pcsc/"):
					t.Errorf("cardagent-tray links the PC/SC stack: %s", p)
				case p == supervisor:
					t.Errorf("cardagent-tray links the agent's side of the tray: %s", p)
				case p == module+"/agent" || strings.HasPrefix(p, module+"/agent/") && !slices.Contains(trayAgentPackages, p):
					t.Errorf("cardagent-tray links %s, which is neither the tray's nor a leaf package (trayAgentPackages)", p)
				}
			}
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

// TestTheTrayDoesNotLoadPCSCLite: the tray binary, as built for Linux with
// its GUI, does not need the PC/SC library (libpcsclite), which only the
// agent talks to. ldd lists what the dynamic loader would load.
func TestTheTrayDoesNotLoadPCSCLite(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("ldd and libpcsclite are Linux's")
	}
	goTool, err := exec.LookPath("go")
	if err == nil {
		_, err = exec.LookPath("ldd")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	ldd := func(pkg, name string) string {
		t.Helper()
		exe := filepath.Join(dir, name)
		build := exec.Command(goTool, "build", "-o", exe, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		out, err := exec.Command("ldd", exe).CombinedOutput()
		if err != nil {
			t.Fatalf("ldd %s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	// The agent does load it: the check can tell.
	if out := ldd(agentPkg, "cardagent"); !strings.Contains(out, "libpcsclite") {
		t.Fatalf("ldd does not show libpcsclite for cardagent either: is the check right?\n%s", out)
	}
	out := ldd(trayPkg, "cardagent-tray")
	if strings.Contains(out, "libpcsclite") {
		t.Errorf("cardagent-tray loads libpcsclite:\n%s", out)
	}
	if !strings.Contains(out, "libgtk-3") {
		t.Errorf("cardagent-tray does not load GTK: built without its icon?\n%s", out)
	}
}
