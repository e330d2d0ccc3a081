//go:build !notray && !windows && cgo

package trayui

import "github.com/getlantern/systray"

// quitLoop returns a function that ends systray's loop (GTK, Cocoa), also
// before the icon is ready.
func quitLoop() func() { return systray.Quit }
