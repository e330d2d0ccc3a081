package config

// DefaultPath is the system configuration file: /etc/cardagent/config.json.
func DefaultPath() string { return "/etc/cardagent/config.json" }

// defaultPinentry is Debian's and Fedora's pinentry (an alternatives link to
// the desktop's pinentry-gnome3, pinentry-qt, ...).
const defaultPinentry = "/usr/bin/pinentry"
