//go:build cgo

package p11

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pcsctest.Shutdown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func testLogger(t testing.TB) *zap.Logger { return zaptest.NewLogger(t) }
