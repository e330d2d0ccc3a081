//go:build !windows && !darwin

package logfile

import (
	"errors"
	"os"
	"path/filepath"
)

// DefaultDir is the user's log directory: $XDG_STATE_HOME/cardagent, or
// ~/.local/state/cardagent (the XDG base directory for logs).
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "cardagent"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no home directory for the log: set XDG_STATE_HOME or HOME")
	}
	return filepath.Join(home, ".local", "state", "cardagent"), nil
}
