//go:build notray || (!windows && !cgo)

package trayui

import (
	"context"

	"github.com/cardagent/cardagent/tray"
)

// Supported says whether this build has the notification-area icon.
const Supported = false

// Run returns tray.ErrNoTray: this build has no notification-area icon.
func Run(context.Context, func(ui tray.UI, clicks <-chan tray.Click) error) error {
	return tray.ErrNoTray
}
