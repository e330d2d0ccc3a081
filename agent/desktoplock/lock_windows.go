package desktoplock

import (
	"context"
	"fmt"

	"golang.org/x/sys/windows"
)

const systemMethod = "LockWorkStation"

var procLockWorkStation = windows.NewLazySystemDLL("user32.dll").NewProc("LockWorkStation")

// systemAvailable finds LockWorkStation in user32.dll.
func systemAvailable() error {
	if err := procLockWorkStation.Find(); err != nil {
		return fmt.Errorf("desktoplock: %w", err)
	}
	return nil
}

// lockSystem calls user32's LockWorkStation, which locks the session the
// agent runs in (like Windows+L) and returns at once.
func lockSystem(context.Context) error {
	if err := procLockWorkStation.Find(); err != nil {
		return fmt.Errorf("desktoplock: %w", err)
	}
	if r, _, err := procLockWorkStation.Call(); r == 0 {
		return fmt.Errorf("desktoplock: LockWorkStation: %w", err)
	}
	return nil
}
