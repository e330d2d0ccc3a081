//go:build !notray

package trayui

import (
	"github.com/getlantern/systray"
	"golang.org/x/sys/windows"
)

var procPostThreadMessage = windows.NewLazySystemDLL("user32.dll").NewProc("PostThreadMessageW")

// quitLoop returns a function that ends systray's message loop, which runs
// on the calling (main) thread. systray.Quit posts WM_CLOSE to its window,
// and when the icon could not be registered (no notification area, as
// under Wine without a desktop) systray has no window: the message goes
// nowhere and the loop runs on. WM_QUIT posted to the thread ends it.
func quitLoop() func() {
	tid := windows.GetCurrentThreadId()
	return func() {
		systray.Quit()
		const wmQuit = 0x0012
		procPostThreadMessage.Call(uintptr(tid), wmQuit, 0, 0)
	}
}
