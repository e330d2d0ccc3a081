//go:build notray || (!windows && !cgo)

package tray

import (
	"context"
	"errors"
)

// TraySupported says whether this build has the notification-area icon.
const TraySupported = false

// ErrNoTray is returned by RunProcess in a build without the tray.
var ErrNoTray = errors.New("this cardagent was built without the tray icon (it needs a cgo build with libayatana-appindicator3 on Linux, and not the notray tag)")

func runUI(context.Context, func(ui UI, clicks <-chan Click) error) error { return ErrNoTray }
