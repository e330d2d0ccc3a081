//go:build !notray && (windows || cgo)

package trayui

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/ncruces/zenity"

	"github.com/cardagent/cardagent/tray"
)

// desktop implements the UI's message boxes, notifications and opener with
// github.com/ncruces/zenity (native on Windows and macOS, the zenity
// program on Linux) and the OS's opener.
type desktop struct{}

func (desktop) Notify(title, text string) error {
	return zenity.Notify(text, zenity.Title(title), zenity.WarningIcon)
}

func (desktop) Message(kind tray.MessageKind, title, text string) error {
	opts := []zenity.Option{zenity.Title(title), zenity.Width(420)}
	var err error
	switch kind {
	case tray.MessageError:
		err = zenity.Error(text, opts...)
	case tray.MessageWarning:
		err = zenity.Warning(text, opts...)
	default:
		err = zenity.Info(text, opts...)
	}
	if errors.Is(err, zenity.ErrCanceled) {
		return nil // closed by the user
	}
	return err
}

// Open opens target (an https URL or a local file) with the desktop's
// default program, and does not wait for it.
func (desktop) Open(target string) error {
	cmd := openCommand(runtime.GOOS, target)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("opening %s: %w", target, err)
	}
	go func() { _ = cmd.Wait() }() // reap the opener; a browser it starts outlives it
	return nil
}

// openCommand is the OS's "open with the default program" command.
func openCommand(goos, target string) *exec.Cmd {
	switch goos {
	case "windows":
		return exec.Command("rundll32", "url.dll,FileProtocolHandler", target)
	case "darwin":
		return exec.Command("open", target)
	}
	return exec.Command("xdg-open", target)
}
