package logfile

import (
	"errors"
	"os"
	"path/filepath"
)

// DefaultDir is the user's log directory: ~/Library/Logs/cardagent
// (Console.app shows it).
func DefaultDir() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", errors.New("no home directory for the log")
	}
	return filepath.Join(home, "Library", "Logs", "cardagent"), nil
}
