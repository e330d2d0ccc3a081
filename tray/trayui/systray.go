//go:build !notray && (windows || cgo)

package trayui

import (
	"context"
	"runtime"

	"github.com/getlantern/systray"

	"github.com/cardagent/cardagent/tray"
	"github.com/cardagent/cardagent/tray/icons"
)

// Supported says whether this build has the notification-area icon.
const Supported = true

// Run runs the systray event loop on the calling goroutine (it must be
// the main one: GTK and Cocoa want the main thread, which systray locks in
// its init) and calls run with the UI once the icon exists. It returns
// when run returns. It is tray.ProcessOptions.RunUI.
func Run(ctx context.Context, run func(ui tray.UI, clicks <-chan tray.Click) error) error {
	done := make(chan error, 1)
	// ctx may end before the icon is ready, and none may ever be (no
	// notification area): quitLoop ends systray's loop in either case.
	stop := context.AfterFunc(ctx, quitLoop())
	defer stop()
	systray.Run(func() {
		ui := newSystrayUI()
		go func() {
			done <- run(ui, ui.clicks)
			systray.Quit()
		}()
	}, nil)
	select {
	case err := <-done:
		return err
	default:
		return nil
	}
}

// systrayUI is the icon and menu, made with github.com/getlantern/systray.
// Menu items cannot be removed, so the menu has a fixed set of items that
// are shown, hidden, enabled and disabled.
type systrayUI struct {
	desktop
	clicks chan tray.Click

	status, card              *systray.MenuItem
	certs                     [tray.MaxCertificates]*systray.MenuItem
	cards                     [tray.MaxCards]*systray.MenuItem
	renew, changePIN, unblock *systray.MenuItem
	diagnostics, about, quit  *systray.MenuItem
	state                     tray.State
}

func newSystrayUI() *systrayUI {
	u := &systrayUI{clicks: make(chan tray.Click, 4)}
	systray.SetTitle("")
	systray.SetTooltip("cardagent")
	u.status = systray.AddMenuItem("cardagent", "")
	u.status.Disable()
	u.card = systray.AddMenuItem("", "")
	u.card.Disable()
	u.card.Hide()
	for i := range u.certs {
		u.certs[i] = systray.AddMenuItem("", "")
		u.certs[i].Disable()
		u.certs[i].Hide()
	}
	for i := range u.cards {
		u.cards[i] = systray.AddMenuItem("", "")
		u.cards[i].Disable()
		u.cards[i].Hide()
	}
	systray.AddSeparator()
	u.renew = u.add("Renew certificate...", tray.ClickRenew)
	u.changePIN = u.add("Change PIN...", tray.ClickChangePIN)
	u.unblock = u.add("Unblock card...", tray.ClickUnblock)
	systray.AddSeparator()
	u.diagnostics = u.add("Open diagnostics", tray.ClickDiagnostics)
	u.about = u.add("About cardagent", tray.ClickAbout)
	u.quit = u.add("Quit cardagent", tray.ClickQuit)
	return u
}

func (u *systrayUI) add(title string, c tray.Click) *systray.MenuItem {
	it := systray.AddMenuItem(title, "")
	go func() {
		for range it.ClickedCh {
			select {
			case u.clicks <- c:
			default: // the app is busy: a double click is dropped
			}
		}
	}()
	return it
}

// Apply shows v. On Linux the status notifier protocol has no tooltip: the
// first menu line says the same words.
func (u *systrayUI) Apply(v tray.View) {
	if v.State != u.state {
		u.state = v.State
		switch runtime.GOOS {
		case "windows":
			systray.SetIcon(icons.ICO(string(v.State)))
		case "darwin":
			systray.SetTemplateIcon(icons.Template(string(v.State)), icons.PNG(string(v.State)))
		default:
			systray.SetIcon(icons.PNG(string(v.State)))
		}
	}
	systray.SetTooltip(v.Tooltip)
	u.status.SetTitle(v.Menu.Status)
	setLine(u.card, v.Menu.Card)
	for i, it := range u.certs {
		line := ""
		if i < len(v.Menu.Certificates) {
			line = v.Menu.Certificates[i]
		}
		setLine(it, line)
	}
	for i, it := range u.cards {
		line := ""
		if i < len(v.Menu.Cards) {
			line = v.Menu.Cards[i]
		}
		setLine(it, line)
	}
	setItem(u.renew, v.Menu.Renew)
	setItem(u.changePIN, v.Menu.ChangePIN)
	setItem(u.unblock, v.Menu.Unblock)
	setItem(u.diagnostics, v.Menu.Diagnostics)
	setItem(u.about, v.Menu.About)
	setItem(u.quit, v.Menu.Quit)
}

func setLine(it *systray.MenuItem, text string) {
	if text == "" {
		it.Hide()
		return
	}
	it.SetTitle(text)
	it.Show()
}

func setItem(it *systray.MenuItem, m tray.Item) {
	if !m.Visible {
		it.Hide()
		return
	}
	it.SetTitle(m.Title)
	if m.Enabled {
		it.Enable()
	} else {
		it.Disable()
	}
	it.Show()
}
