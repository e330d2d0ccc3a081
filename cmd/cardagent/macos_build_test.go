package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// listedPackage is the part of `go list -json` this test reads.
type listedPackage struct {
	ImportPath string
	Standard   bool
	CgoFiles   []string
	Imports    []string
	Incomplete bool
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// TestMacOSAgentNeedsNoCgo: the macOS agent is built here without cgo
// (scripts/test cross-builds it for arm64 and amd64), so none of its
// dependencies may need cgo: PC/SC goes through purego to the PCSC
// framework (pcsc/scard), the same-user check through a sysctl
// (agent/peer/peer_darwin.go). A cgo package in the list would either break
// that build or, worse, be silently left out of it. docs/macos.md.
func TestMacOSAgentNeedsNoCgo(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go is not on PATH")
		}
		t.Skip("go is not on PATH")
	}
	for _, arch := range []string{"arm64", "amd64"} {
		t.Run(arch, func(t *testing.T) {
			cmd := exec.Command(goTool, "list", "-deps", "-e", "-json", agentPkg)
			cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH="+arch, "CGO_ENABLED=0", "GOFLAGS=")
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("go list: %v\n%s", err, ee.Stderr)
				}
				t.Fatal(err)
			}
			var all []string
			dec := json.NewDecoder(strings.NewReader(string(out)))
			for {
				var p listedPackage
				if err := dec.Decode(&p); err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				all = append(all, p.ImportPath)
				if p.Error != nil || len(p.DepsErrors) > 0 || p.Incomplete {
					t.Errorf("%s does not build for darwin/%s without cgo: %+v %+v", p.ImportPath, arch, p.Error, p.DepsErrors)
				}
				if len(p.CgoFiles) > 0 || slices.Contains(p.Imports, "C") {
					t.Errorf("%s uses cgo: %v", p.ImportPath, p.CgoFiles)
				}
			}
			// What must be there, and what must not: the cgo PC/SC binding
			// of Linux and Windows, the cgo PKCS#11 binding, the tray's GUI.
			for _, p := range []string{"github.com/cardagent/cardagent/pcsc/scard", "github.com/ebitengine/purego"} {
				if !slices.Contains(all, p) {
					t.Errorf("darwin/%s: %s is not a dependency: is the list right?", arch, p)
				}
			}
			for _, p := range []string{"github.com/ebfe/scard", "github.com/miekg/pkcs11", "github.com/getlantern/systray", "runtime/cgo"} {
				if slices.Contains(all, p) {
					t.Errorf("darwin/%s: the agent depends on %s", arch, p)
				}
			}
		})
	}
}
