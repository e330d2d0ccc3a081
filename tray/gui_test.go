package tray_test

import (
	"github.com/cardagent/cardagent/tray"
	"github.com/cardagent/cardagent/tray/trayui"
)

// The tray children of the idle test run the real UI. trayui imports tray,
// so only an external test file can hand it over.
func init() { tray.SetGUIForTest(trayui.Run) }
