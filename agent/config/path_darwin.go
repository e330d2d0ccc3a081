package config

// DefaultPath is the system configuration file:
// /Library/Application Support/cardagent/config.json.
func DefaultPath() string { return "/Library/Application Support/cardagent/config.json" }

// defaultPinentry is where Homebrew (Apple silicon) installs pinentry-mac.
const defaultPinentry = "/opt/homebrew/bin/pinentry-mac"
