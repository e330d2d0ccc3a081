package doctor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"time"
)

// StatusNotifierWatcher is the D-Bus name of the tray host Linux desktops
// run for StatusNotifierItem (AppIndicator) icons.
const StatusNotifierWatcher = "org.kde.StatusNotifierWatcher"

// DesktopTray checks a Linux desktop for a tray host: a graphical session
// and a StatusNotifierWatcher on the session bus.
type DesktopTray struct {
	Getenv func(string) string
	// HasOwner asks the session bus whether name has an owner.
	HasOwner func(ctx context.Context, name string) (bool, error)
}

// Check implements TrayHost.
func (d DesktopTray) Check(ctx context.Context) (bool, string) {
	getenv := d.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "" {
		return false, "No graphical session here (DISPLAY and WAYLAND_DISPLAY are unset), so no tray icon."
	}
	has := d.HasOwner
	if has == nil {
		has = dbusHasOwner
	}
	ok, err := has(ctx, StatusNotifierWatcher)
	switch {
	case err != nil:
		return false, "Could not ask the session bus for a tray host: " + err.Error() + "."
	case !ok:
		return false, "The desktop has no tray host (no " + StatusNotifierWatcher + " on D-Bus; GNOME needs the AppIndicator extension)."
	}
	return true, "The desktop shows tray icons (" + StatusNotifierWatcher + " found)."
}

// dbusHasOwner asks the session bus with dbus-send (package dbus-bin).
func dbusHasOwner(ctx context.Context, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dbus-send", "--session", "--print-reply=literal",
		"--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
		"org.freedesktop.DBus.NameHasOwner", "string:"+name).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		return false, errors.New("dbus-send is not installed")
	}
	if err != nil {
		return false, errors.New(strings.TrimSpace(string(out)))
	}
	return strings.Contains(string(out), "true"), nil
}

// AlwaysTray is a system whose desktop always has a tray (Windows
// notification area, macOS menu bar).
type AlwaysTray string

// Check implements TrayHost.
func (a AlwaysTray) Check(context.Context) (bool, string) { return true, string(a) }
