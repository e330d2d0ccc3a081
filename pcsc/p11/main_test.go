//go:build cgo

package p11

import (
	"os"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc/pcsctest"
)

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }

func testLogger(t testing.TB) *zap.Logger { return zaptest.NewLogger(t) }
