package pcsctest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main is the TestMain of a test binary whose tests use the private pcscd:
// it runs the tests, then each cleanup in order, then stops the pcscd if a
// test started one (Require), and, when every test passed, fails the run if
// a goroutine is left behind. It returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }
//
// A test binary that doubles as a child process dispatches on its
// environment before calling Main.
func Main(m *testing.M, cleanups ...func()) int {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	Shutdown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			code = 1
		}
	}
	return code
}
