//go:build !linux && !darwin && !windows

package config

// DefaultPath is the system configuration file: /etc/cardagent/config.json.
func DefaultPath() string { return "/etc/cardagent/config.json" }

// defaultPinentry is where the BSDs' ports install pinentry.
const defaultPinentry = "/usr/local/bin/pinentry"
