//go:build !windows

package agentsupervisor

import "errors"

// ErrRunning means another supervisor already runs in this session.
var ErrRunning = errors.New("cardagent is already running in this session")

// SessionLock is a no-op outside Windows: systemd and launchd start one
// agent per session themselves.
func SessionLock() (release func(), err error) { return func() {}, nil }
