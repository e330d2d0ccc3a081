// Package trayui is the tray process's graphical side.
//
// It has the notification-area icon and menu (github.com/getlantern/systray:
// cgo with GTK 3 and libayatana-appindicator3 on Linux, Cocoa on macOS,
// plain Win32 on Windows) and the desktop's message boxes, notifications and
// opener.
//
// Only cmd/cardagent-tray links it. The agent (cmd/cardagent), which serves
// the loopback API, never does: it starts with no GTK in its address space,
// runs on a server without GTK installed, and starts in a few milliseconds.
// cmd/cardagent/deps_test.go keeps it that way.
//
// Builds without cgo (other than Windows) or with the notray tag get a
// stub whose Run returns tray.ErrNoTray.
package trayui
