package tray

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

// The test binary doubles as a child process: envTestChild names which
// (fakeChild), envTestLog where it writes what it saw.
const (
	envTestChild = "CARDAGENT_TRAY_TEST_CHILD"
	envTestLog   = "CARDAGENT_TRAY_TEST_LOG"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envTestChild); mode != "" {
		os.Exit(fakeChild(mode))
	}
	os.Exit(pcsctest.Main(m))
}

// fakeChild is the test binary acting as a child process: the real tray
// ("gui") or the agent that runs it ("agent"), both for the idle test.
func fakeChild(mode string) int {
	switch mode {
	case "gui":
		return guiChild()
	case "agent":
		return agentChild()
	}
	return 9
}

// guiRunUI is the real tray UI, trayui.Run, which package tray cannot
// import (trayui imports it): gui_test.go, an external test file, sets it.
var guiRunUI RunUI

// SetGUIForTest sets guiRunUI (for gui_test.go).
func SetGUIForTest(run RunUI) { guiRunUI = run }

// guiChild runs the real tray process (the idle test's tray).
func guiChild() int {
	if p := os.Getenv(envTestLog); p != "" {
		_ = os.WriteFile(p+".pid", []byte(fmt.Sprint(os.Getpid())), 0o600)
	}
	log, _ := zap.NewDevelopment()
	err := RunProcess(context.Background(), ProcessOptions{
		Log:        log,
		RunUI:      guiRunUI,
		DebugState: os.Getenv(EnvDebugState),
		StatePath:  os.Getenv(envTestLog) + ".notified.json",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "tray:", err)
		return 1
	}
	return 0
}
