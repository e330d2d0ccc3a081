package pcsc_test

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

var (
	reader0 = pcsctest.ReaderNames[0]
	reader1 = pcsctest.ReaderNames[1]
)

// TestMonitorE2EReaders: the monitor and ListReaders see vpcd's two readers
// and the card in one of them.
func TestMonitorE2EReaders(t *testing.T) {
	p := pcsctest.Require(t)
	atr := []byte{0x3B, 0x80, 0x80, 0x01, 0x02}
	insert(t, p, 1, testCard{atr: atr}, vcard.Options{})

	w := startWatcher(t)
	got := w.expect(t, eventWait, want{pcsc.ReaderAdded, reader0}, want{pcsc.ReaderAdded, reader1}, want{pcsc.CardInserted, reader1})
	if !bytes.Equal(got[2].ATR, atr) {
		t.Errorf("CardInserted ATR % X, want % X", got[2].ATR, atr)
	}
	wantStatus := []pcsc.ReaderStatus{{Name: reader0}, {Name: reader1, Present: true, ATR: atr}}
	if snap := w.mon.Snapshot(); !equalStatus(snap, wantStatus) {
		t.Errorf("Snapshot = %+v, want %+v", snap, wantStatus)
	}
	listed, err := pcsc.ListReaders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !equalStatus(listed, wantStatus) {
		t.Errorf("ListReaders = %+v, want %+v", listed, wantStatus)
	}
	w.stop()
}

func equalStatus(a, b []pcsc.ReaderStatus) bool {
	return slices.EqualFunc(a, b, func(x, y pcsc.ReaderStatus) bool {
		return x.Name == y.Name && x.Present == y.Present && x.Mute == y.Mute && bytes.Equal(x.ATR, y.ATR)
	})
}

// bareWatcher is the baseline for latency: a plain SCardGetStatusChange
// loop on one reader, recording when it saw the card come and go.
type bareWatcher struct {
	mu                sync.Mutex
	inserts, removals []time.Time
	stop              chan struct{}
	done              chan struct{}
}

func startBareWatcher(t *testing.T, reader string) *bareWatcher {
	t.Helper()
	ctx, err := scard.EstablishContext()
	if err != nil {
		t.Fatal(err)
	}
	b := &bareWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(b.done)
		defer ctx.Release()
		rs := []scard.ReaderState{{Reader: reader, CurrentState: scard.StateUnaware}}
		first := true
		for {
			select {
			case <-b.stop:
				return
			default:
			}
			err := ctx.GetStatusChange(rs, 100*time.Millisecond) // the timeout only lets the loop stop
			if err == scard.ErrTimeout {
				continue
			}
			if err != nil {
				return
			}
			now := time.Now()
			ev := rs[0].EventState &^ scard.StateChanged
			was, is := rs[0].CurrentState&scard.StatePresent != 0, ev&scard.StatePresent != 0
			b.mu.Lock()
			switch {
			case first:
				close(ready)
				first = false
			case !was && is:
				b.inserts = append(b.inserts, now)
			case was && !is:
				b.removals = append(b.removals, now)
			}
			b.mu.Unlock()
			rs[0].CurrentState = ev
		}
	}()
	t.Cleanup(func() { close(b.stop); <-b.done })
	select {
	case <-ready:
	case <-time.After(eventWait):
		t.Fatal("bare watcher did not start")
	}
	return b
}

// seen returns the first time in ts at or after t0.
func (b *bareWatcher) seen(ts *[]time.Time, t0 time.Time) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range *ts {
		if !x.Before(t0) {
			return x, true
		}
	}
	return time.Time{}, false
}

func (b *bareWatcher) wait(t *testing.T, ts *[]time.Time, t0 time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(eventWait)
	for {
		if x, ok := b.seen(ts, t0); ok {
			return x
		}
		if time.Now().After(deadline) {
			t.Fatal("bare watcher saw no change within 2s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMonitorE2EInsertRemove inserts and removes a virtual card ten times
// and reports how long the monitor takes to report each, beside a bare
// SCardGetStatusChange loop (most of the delay is vpcd's presence polling).
// Events must arrive within 2 s; the figures are reported, not asserted.
func TestMonitorE2EInsertRemove(t *testing.T) {
	p := pcsctest.Require(t)
	waitPresent(t, reader0, false)
	waitPresent(t, reader1, false)
	w := startWatcher(t)
	w.expect(t, eventWait, want{pcsc.ReaderAdded, reader0}, want{pcsc.ReaderAdded, reader1})
	bare := startBareWatcher(t, reader0)

	const cycles = 10
	var insMon, insBare, remMon, remBare []time.Duration
	for i := 0; i < cycles; i++ {
		t0 := time.Now()
		slot := p.Insert(t, 0, testCard{}, vcard.Options{})
		e := w.expect(t, eventWait, want{pcsc.CardInserted, reader0})[0]
		if !bytes.Equal(e.ATR, echoATR) {
			t.Fatalf("CardInserted ATR % X, want % X", e.ATR, echoATR)
		}
		insMon = append(insMon, e.Time.Sub(t0))
		insBare = append(insBare, bare.wait(t, &bare.inserts, t0).Sub(t0))

		t1 := time.Now()
		if err := slot.Remove(); err != nil {
			t.Fatal(err)
		}
		e = w.expect(t, eventWait, want{pcsc.CardRemoved, reader0})[0]
		remMon = append(remMon, e.Time.Sub(t1))
		remBare = append(remBare, bare.wait(t, &bare.removals, t1).Sub(t1))
	}
	w.expectNone(t, 50*time.Millisecond)
	t.Logf("insertion to event over %d cycles: monitor median %v max %v; bare GetStatusChange median %v max %v",
		cycles, median(insMon), slices.Max(insMon), median(insBare), slices.Max(insBare))
	t.Logf("removal to event over %d cycles: monitor median %v max %v; bare GetStatusChange median %v max %v",
		cycles, median(remMon), slices.Max(remMon), median(remBare), slices.Max(remBare))
	var extra []time.Duration
	for i := range insMon {
		extra = append(extra, insMon[i]-insBare[i], remMon[i]-remBare[i])
	}
	t.Logf("monitor's added latency over the bare loop: median %v max %v", median(extra), slices.Max(extra))
	w.stop()
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestMonitorE2EServiceRestart restarts pcscd under a running monitor: it
// reports the card and readers gone and the service down, then the service
// back with its readers, and events resume, all without a new Monitor.
func TestMonitorE2EServiceRestart(t *testing.T) {
	p := pcsctest.Require(t)
	slot := insert(t, p, 0, testCard{}, vcard.Options{})
	w := startWatcher(t)
	w.expect(t, eventWait, want{pcsc.ReaderAdded, reader0}, want{pcsc.ReaderAdded, reader1}, want{pcsc.CardInserted, reader0})

	start := time.Now()
	if err := p.Restart(); err != nil {
		t.Fatalf("restarting pcscd: %v\n%s", err, p.Log())
	}
	restarted := time.Since(start)
	w.expect(t, 5*time.Second,
		want{pcsc.CardRemoved, reader0},
		want{pcsc.ReaderRemoved, reader0},
		want{pcsc.ReaderRemoved, reader1},
		want{pcsc.ServiceDown, ""},
	)
	up := w.expect(t, 5*time.Second, want{pcsc.ServiceUp, ""}, want{pcsc.ReaderAdded, reader0}, want{pcsc.ReaderAdded, reader1})
	t.Logf("pcscd restart took %v; ServiceUp %v after it began", restarted, up[0].Time.Sub(start))

	// vpcd dropped the card with the old pcscd: insert it again.
	<-slot.Done()
	p.Insert(t, 0, testCard{}, vcard.Options{})
	w.expect(t, eventWait, want{pcsc.CardInserted, reader0})
	if snap := w.mon.Snapshot(); len(snap) != 2 || !snap[0].Present {
		t.Errorf("Snapshot after restart = %+v", snap)
	}
	w.expectNone(t, 50*time.Millisecond)
	w.stop()
}
