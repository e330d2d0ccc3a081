package main

import (
	"context"
	"debug/pe"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The Windows programs the MSI carries: the agent's console and windowless
// builds, and the tray, which must be a GUI-subsystem program (no console
// window behind the icon).
func TestWindowsSubsystems(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("go is not on PATH")
		}
		t.Skip("go is not on PATH")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		pkg, name string
		gui       bool
		subsystem uint16
	}{
		{agentPkg, "cardagent.exe", false, pe.IMAGE_SUBSYSTEM_WINDOWS_CUI},
		{trayPkg, "cardagent-tray.exe", true, pe.IMAGE_SUBSYSTEM_WINDOWS_GUI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := goBuild(context.Background(), tc.pkg, "windows", "amd64", "1.2.3", filepath.Join(dir, tc.name), tc.gui)
			if err != nil {
				t.Fatal(err)
			}
			f, err := pe.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, ok := f.OptionalHeader.(*pe.OptionalHeader64)
			if !ok {
				t.Fatalf("%s is not a 64-bit program", tc.name)
			}
			if h.Subsystem != tc.subsystem {
				t.Errorf("%s: subsystem %d, want %d", tc.name, h.Subsystem, tc.subsystem)
			}
		})
	}
}
