package pcsc_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// TestMonitorE2EIdleCPU runs the monitor idle (a card present, nothing
// happening) for 3 s and measures this process's CPU time: a monitor that
// polled or spun would use far more than the loose bound.
func TestMonitorE2EIdleCPU(t *testing.T) {
	p := pcsctest.Require(t)
	insert(t, p, 0, testCard{}, vcard.Options{})
	w := startWatcher(t)
	w.expect(t, eventWait, want{pcsc.ReaderAdded, reader0}, want{pcsc.ReaderAdded, reader1}, want{pcsc.CardInserted, reader0})
	time.Sleep(200 * time.Millisecond) // let start-up work settle

	const idle = 3 * time.Second
	before := cpuTime(t)
	time.Sleep(idle)
	used := cpuTime(t) - before
	t.Logf("process CPU time over %v idle with the monitor running and a card present: %v", idle, used)
	if used > 50*time.Millisecond {
		t.Errorf("monitor used %v CPU in %v idle: it must block, not poll", used, idle)
	}
	w.expectNone(t, 0)
	w.stop()
}

func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
