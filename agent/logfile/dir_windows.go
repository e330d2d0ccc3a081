package logfile

import (
	"errors"
	"os"
	"path/filepath"
)

// DefaultDir is the user's log directory: %LOCALAPPDATA%\cardagent\logs.
func DefaultDir() (string, error) {
	d := os.Getenv("LOCALAPPDATA")
	if d == "" || !filepath.IsAbs(d) {
		return "", errors.New("LOCALAPPDATA is not set: no directory for the log")
	}
	return filepath.Join(d, "cardagent", "logs"), nil
}
