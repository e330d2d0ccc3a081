//go:build !linux

package pcsctest

import (
	"errors"
	"testing"
	"time"
)

// PCSCD is a private pcscd; it only runs on Linux (vpcd, unshare).
type PCSCD struct {
	Dir  string
	Port int
}

// ReaderNames are the names vpcd's two slots get in pcscd.
var ReaderNames = [2]string{"Virtual PCD 00 00", "Virtual PCD 00 01"}

// Reason says why a private pcscd cannot run here.
func Reason() string { return "the virtual-card test harness runs on Linux only" }

// Require skips: end-to-end tests through pcscd and vpcd run on Linux.
func Require(tb testing.TB) *PCSCD {
	tb.Helper()
	tb.Skip(Reason())
	return nil
}

// Shutdown does nothing off Linux.
func Shutdown() {}

// Start fails off Linux.
func Start() (*PCSCD, error) { return nil, errors.New(Reason()) }

func (p *PCSCD) Addr(slot int) string { return "" }
func (p *PCSCD) Socket() string       { return "" }
func (p *PCSCD) Stop()                {}
func (p *PCSCD) Kill()                {}
func (p *PCSCD) Restart() error       { return errors.New(Reason()) }
func (p *PCSCD) Log() string          { return "" }

// AwaitCard fails off Linux.
func (p *PCSCD) AwaitCard(int, bool, time.Duration) error { return errors.New(Reason()) }

// WaitCard skips off Linux.
func (p *PCSCD) WaitCard(tb testing.TB, slot int, present bool) { tb.Skip(Reason()) }
