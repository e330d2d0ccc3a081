package pcsc_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

// TestMain stops the private pcscd the end-to-end tests started, then checks
// that no test left a goroutine behind.
func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }

// testCard is a tiny virtual card: SELECT by name answers 9000 for the AIDs
// in apps (P2 as the caller sends it) and 6A82 otherwise; any other command
// is echoed as its INS byte and 9000.
type testCard struct {
	atr  []byte
	apps []string // AIDs, upper-case hex
}

var echoATR = []byte{0x3B, 0x80, 0x80, 0x01, 0x01}

func (c testCard) ATR() []byte {
	if c.atr == nil {
		return echoATR
	}
	return c.atr
}

func (testCard) Reset() {}

func (c testCard) Transmit(cmd []byte) ([]byte, error) {
	if len(cmd) < 4 {
		return []byte{0x67, 0x00}, nil
	}
	if cmd[1] != 0xA4 || cmd[2] != 0x04 {
		return []byte{cmd[1], 0x90, 0x00}, nil
	}
	if len(cmd) < 5 || len(cmd) < 5+int(cmd[4]) {
		return []byte{0x67, 0x00}, nil
	}
	aid := strings.ToUpper(hex.EncodeToString(cmd[5 : 5+int(cmd[4])]))
	for _, a := range c.apps {
		if a == aid {
			return []byte{0x90, 0x00}, nil
		}
	}
	return []byte{0x6A, 0x82}, nil
}

const (
	pivAID       = "A000000308000010000100"
	authenticAID = "A000000077010303000000F100000002"
)

// waitPresent waits (test-side polling) until ListReaders shows reader
// with (present) or without a card.
func waitPresent(t testing.TB, reader string, present bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		rs, err := pcsc.ListReaders(context.Background())
		if err == nil {
			for _, r := range rs {
				if r.Name == reader && r.Present == present {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader %q: card present=%v not seen within 3s (last: %+v, %v)", reader, present, rs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// insert puts card into vpcd slot n once the reader is empty (pcscd notices
// a removal only at its next presence poll: a card inserted before that
// could be taken for the old one) and waits until pcscd sees it.
func insert(t testing.TB, p *pcsctest.PCSCD, n int, card vcard.Card, opts vcard.Options) *vcard.Slot {
	t.Helper()
	reader := pcsctest.ReaderNames[n]
	waitPresent(t, reader, false)
	s := p.Insert(t, n, card, opts)
	waitPresent(t, reader, true)
	return s
}

// watcher runs a Monitor and records its events.
type watcher struct {
	mon    *pcsc.Monitor
	mu     sync.Mutex
	evs    []pcsc.Event
	signal chan struct{}
	next   int // events before next were already consumed
	stop   func()
}

func startWatcher(t *testing.T) *watcher {
	t.Helper()
	w := &watcher{signal: make(chan struct{}, 1)}
	w.mon = pcsc.NewMonitor(zaptest.NewLogger(t), func(e pcsc.Event) {
		w.mu.Lock()
		w.evs = append(w.evs, e)
		w.mu.Unlock()
		select {
		case w.signal <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.mon.Serve(ctx) }()
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve returned %v, want nil", err)
				}
			case <-time.After(eventWait):
				t.Error("Serve did not return within 2s of cancel")
			}
		})
	}
	t.Cleanup(w.stop)
	return w
}

// nextEvent returns the next event, failing the test after timeout.
func (w *watcher) nextEvent(t *testing.T, timeout time.Duration) pcsc.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		if w.next < len(w.evs) {
			e := w.evs[w.next]
			w.next++
			w.mu.Unlock()
			return e
		}
		w.mu.Unlock()
		select {
		case <-w.signal:
		case <-deadline:
			t.Fatalf("no event within %v", timeout)
		}
	}
}

// want is an expected event: its kind and reader.
type want struct {
	kind   pcsc.EventKind
	reader string
}

// expect checks the next events are exactly ws, in order.
func (w *watcher) expect(t *testing.T, timeout time.Duration, ws ...want) []pcsc.Event {
	t.Helper()
	var got []pcsc.Event
	for _, x := range ws {
		e := w.nextEvent(t, timeout)
		got = append(got, e)
		if e.Kind != x.kind || e.Reader != x.reader {
			t.Fatalf("event %d: got %s %q, want %s %q (so far %v)", len(got), e.Kind, e.Reader, x.kind, x.reader, kinds(got))
		}
	}
	return got
}

// expectNone checks no event arrives within d.
func (w *watcher) expectNone(t *testing.T, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next < len(w.evs) {
		t.Errorf("unexpected events: %v", kinds(w.evs[w.next:]))
	}
}

func kinds(evs []pcsc.Event) []string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%s %q", e.Kind, e.Reader))
	}
	return s
}

// eventWait bounds how long an end-to-end test waits for one PC/SC event.
// vpcd polls card presence every 400 ms and a loaded CI machine adds more;
// this is a liveness bound, not a latency target (latency is reported, not asserted).
const eventWait = 5 * time.Second
