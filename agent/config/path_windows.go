package config

import (
	"os"
	"path/filepath"
)

// DefaultPath is the system configuration file:
// %ProgramData%\cardagent\config.json (C:\ProgramData\cardagent\config.json).
func DefaultPath() string {
	dir := os.Getenv("ProgramData")
	if dir == "" || !filepath.IsAbs(dir) {
		dir = `C:\ProgramData`
	}
	return filepath.Join(dir, "cardagent", "config.json")
}

// defaultPinentry is Gpg4win's pinentry.
const defaultPinentry = `C:\Program Files (x86)\Gpg4win\bin\pinentry.exe`
