package pcsc_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// TestTransmitAllocation: an APDU through the real pcscd allocates about
// its answer, not a 64 KiB response buffer each time (ebfe/scard's own
// Transmit does). The virtual card runs in this process too, so the figure
// includes its side; the bound is far below 64 KiB and far above both.
func TestTransmitAllocation(t *testing.T) {
	p := pcsctest.Require(t)
	insert(t, p, 0, testCard{apps: []string{pivAID}}, vcard.Options{})
	c := openConn(t, reader0)
	const n = 200
	run := func() {
		err := c.Transact(context.Background(), func(tx pcsc.Transmitter) error {
			for i := 0; i < n; i++ {
				if _, err := pcsc.Exchange(tx, selectPIV); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	run() // the connection's buffer, and anything else allocated once
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	run()
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per APDU (card side included)", per)
	if per > 8<<10 {
		t.Errorf("%d bytes allocated per APDU, want under 8 KiB", per)
	}
}
