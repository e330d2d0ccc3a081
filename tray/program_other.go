//go:build !windows

package tray

import "os/exec"

// noConsole does nothing: only Windows opens console windows.
func noConsole(*exec.Cmd) {}
