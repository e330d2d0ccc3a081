//go:build !linux && !windows && !darwin

package desktoplock

import (
	"context"
	"errors"
)

const systemMethod = "none on this system (configure session.lock_command)"

func systemAvailable() error {
	return errors.New("desktoplock: no system lock on this system: configure session.lock_command")
}

func lockSystem(context.Context) error {
	return errors.New("desktoplock: no system lock on this system: configure session.lock_command")
}
