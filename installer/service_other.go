//go:build !linux && !darwin && !windows

package installer

import "errors"

func newController(string) (Controller, error) {
	return nil, errors.New("cardagent service is not supported on this system: start `cardagent run` from the desktop's autostart")
}

// NewRegistry returns the HKLM registry (Windows only; nil elsewhere).
func NewRegistry() Registry { return nil }
