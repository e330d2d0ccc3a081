package config

import (
	"errors"
	"os"
)

// ErrUntrustedFile is wrapped by the *TrustError returned for a
// configuration or policy file that other users could change.
var ErrUntrustedFile = errors.New("file other users could change")

// TrustError says which file was refused, what on its path is wrong (the
// file or a parent directory), and how to fix it.
type TrustError struct {
	What, File string // "configuration file", "/etc/cardagent/config.json"
	Path       string // the file itself or the directory at fault
	Why, Fix   string
}

func (e *TrustError) Error() string {
	at := e.Path
	if at == e.File {
		at = "it"
	}
	return "refusing " + e.What + " " + e.File + ": " + at + " " + e.Why + " (whoever can change it decides which pages may sign in and which code the agent loads); " + e.Fix
}

func (e *TrustError) Unwrap() error { return ErrUntrustedFile }

// Owners a file may have. A configuration file may belong to root or to
// the user running the agent (a per-user file named with --config); an IT
// policy only to root. Tests that cannot run as root add their own uid.
var policyOwners = []uint32{0}

func configOwners() []uint32 {
	uid := os.Getuid()
	if uid <= 0 {
		return []uint32{0}
	}
	return []uint32{0, uint32(uid)}
}
