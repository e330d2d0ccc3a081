package desktoplock

import "context"

const systemMethod = "pmset displaysleepnow"

// systemAvailable needs /usr/bin/pmset.
func systemAvailable() error { return executable("/usr/bin/pmset") }

// lockSystem turns the display off with `pmset displaysleepnow`. The Mac
// asks for the password when the display wakes only if "Require password
// after screen saver begins or display is turned off" is "Immediately"
// (MDM: com.apple.screensaver askForPassword true, askForPasswordDelay 0);
// docs/deployment.md says so.
func lockSystem(ctx context.Context) error {
	return run(ctx, []string{"/usr/bin/pmset", "displaysleepnow"})
}
