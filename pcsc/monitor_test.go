package pcsc

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

var (
	atrA = []byte{0x3B, 0x80, 0x80, 0x01, 0x0A}
	atrB = []byte{0x3B, 0x80, 0x80, 0x01, 0x0B}
)

// recorder collects a monitor's events.
type recorder struct {
	mu     sync.Mutex
	evs    []Event
	signal chan struct{}
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) handle(ev Event) {
	r.mu.Lock()
	r.evs = append(r.evs, ev)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

// next waits until n more events than `from` arrived and returns them.
func (r *recorder) next(t *testing.T, from, n int, timeout time.Duration) []Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		evs := r.all()
		if len(evs) >= from+n {
			return evs[from : from+n]
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("waited %v for %d events, got %s", timeout, n, fmtEvents(evs[from:]))
		}
	}
}

func fmtEvents(evs []Event) string {
	var b strings.Builder
	b.WriteString("[")
	for i, e := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %q", e.Kind, e.Reader)
		if len(e.ATR) > 0 {
			fmt.Fprintf(&b, " % X", e.ATR)
		}
	}
	b.WriteString("]")
	return b.String()
}

func sameEvents(got, want []Event) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Kind != want[i].Kind || got[i].Reader != want[i].Reader || !bytes.Equal(got[i].ATR, want[i].ATR) || got[i].Time.IsZero() {
			return false
		}
	}
	return true
}

func ev(k EventKind, reader string, atr []byte) Event {
	return Event{Kind: k, Reader: reader, ATR: atr}
}

// startMonitor serves a monitor over f; the returned stop cancels it and
// checks that Serve returns nil promptly.
func startMonitor(t *testing.T, f *fakePCSC) (*Monitor, *recorder, func()) {
	t.Helper()
	rec := newRecorder()
	m := NewMonitor(zaptest.NewLogger(t), rec.handle)
	m.establish = f.establishContext
	m.serviceRetry = backoff{min: 5 * time.Millisecond, max: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve returned %v, want nil", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Serve did not return within 2s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return m, rec, stop
}

func TestMonitorEvents(t *testing.T) {
	const r1, r2, r3 = "Reader One", "Reader Two", "Reader Three"
	type step struct {
		name string
		do   func(f *fakePCSC)
		want []Event
	}
	cases := []struct {
		name  string
		setup func(f *fakePCSC)
		steps []step
	}{
		{
			name:  "initial enumeration",
			setup: func(f *fakePCSC) { f.insert(r1, atrA) },
			steps: []step{{name: "start", want: []Event{ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil), ev(CardInserted, r1, atrA)}}},
		},
		{
			name: "insert and remove",
			steps: []step{
				{name: "start", want: []Event{ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil)}},
				{name: "insert", do: func(f *fakePCSC) { f.insert(r2, atrB) }, want: []Event{ev(CardInserted, r2, atrB)}},
				{name: "remove", do: func(f *fakePCSC) { f.remove(r2) }, want: []Event{ev(CardRemoved, r2, atrB)}},
				{name: "insert again", do: func(f *fakePCSC) { f.insert(r2, atrA) }, want: []Event{ev(CardInserted, r2, atrA)}},
			},
		},
		{
			name:  "card swapped between two calls (event counter)",
			setup: func(f *fakePCSC) { f.insert(r1, atrA) },
			steps: []step{
				{name: "start", want: []Event{ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil), ev(CardInserted, r1, atrA)}},
				// Same ATR: only the event counter shows another card went in.
				{name: "swap same ATR", do: func(f *fakePCSC) { f.swap(r1, atrA) }, want: []Event{ev(CardRemoved, r1, atrA), ev(CardInserted, r1, atrA)}},
				{name: "swap other ATR", do: func(f *fakePCSC) { f.swap(r1, atrB) }, want: []Event{ev(CardRemoved, r1, atrA), ev(CardInserted, r1, atrB)}},
			},
		},
		{
			name: "mute card",
			steps: []step{
				{name: "start", want: []Event{ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil)}},
				{name: "insert mute", do: func(f *fakePCSC) { f.insertMute(r1) }, want: []Event{ev(CardMute, r1, nil)}},
				{name: "remove", do: func(f *fakePCSC) { f.remove(r1) }, want: []Event{ev(CardRemoved, r1, nil)}},
			},
		},
		{
			name:  "reader plugged in and unplugged (PnP)",
			setup: func(f *fakePCSC) { f.insert(r2, atrB) },
			steps: []step{
				{name: "start", want: []Event{ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil), ev(CardInserted, r2, atrB)}},
				{name: "plug", do: func(f *fakePCSC) { f.addReader(r3) }, want: []Event{ev(ReaderAdded, r3, nil)}},
				{name: "insert in new reader", do: func(f *fakePCSC) { f.insert(r3, atrA) }, want: []Event{ev(CardInserted, r3, atrA)}},
				{name: "unplug reader with card", do: func(f *fakePCSC) { f.removeReader(r2) }, want: []Event{ev(CardRemoved, r2, atrB), ev(ReaderRemoved, r2, nil)}},
			},
		},
		{
			name:  "no reader at start",
			setup: func(f *fakePCSC) { f.removeReader(r1); f.removeReader(r2) },
			steps: []step{
				{name: "plug", do: func(f *fakePCSC) { f.addReader(r3) }, want: []Event{ev(ReaderAdded, r3, nil)}},
				{name: "insert", do: func(f *fakePCSC) { f.insert(r3, atrA) }, want: []Event{ev(CardInserted, r3, atrA)}},
			},
		},
		{
			name:  "service lost and back",
			setup: func(f *fakePCSC) { f.insert(r1, atrA) },
			steps: []step{
				{name: "start", want: []Event{ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil), ev(CardInserted, r1, atrA)}},
				{name: "stop", do: func(f *fakePCSC) { f.stop() }, want: []Event{ev(CardRemoved, r1, atrA), ev(ReaderRemoved, r1, nil), ev(ReaderRemoved, r2, nil), ev(ServiceDown, "", nil)}},
				{name: "start", do: func(f *fakePCSC) { f.start() }, want: []Event{ev(ServiceUp, "", nil), ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil)}},
				{name: "insert", do: func(f *fakePCSC) { f.insert(r1, atrB) }, want: []Event{ev(CardInserted, r1, atrB)}},
			},
		},
		{
			name:  "service down at start",
			setup: func(f *fakePCSC) { f.stop() },
			steps: []step{
				{name: "start", want: []Event{ev(ServiceDown, "", nil)}},
				{name: "service starts", do: func(f *fakePCSC) { f.insert(r2, atrA); f.start() }, want: []Event{ev(ServiceUp, "", nil), ev(ReaderAdded, r1, nil), ev(ReaderAdded, r2, nil), ev(CardInserted, r2, atrA)}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			f := newFakePCSC(r1, r2)
			if tc.setup != nil {
				tc.setup(f)
			}
			_, rec, stop := startMonitor(t, f)
			n := 0
			for _, st := range tc.steps {
				if st.do != nil {
					st.do(f)
				}
				got := rec.next(t, n, len(st.want), 2*time.Second)
				if !sameEvents(got, st.want) {
					t.Fatalf("%s: events %s, want %s", st.name, fmtEvents(got), fmtEvents(st.want))
				}
				n += len(st.want)
			}
			time.Sleep(30 * time.Millisecond)
			stop()
			if extra := rec.all()[n:]; len(extra) > 0 {
				t.Errorf("unexpected events after the last step: %s", fmtEvents(extra))
			}
			if e, r := f.contexts.Load(), f.released.Load(); e != r {
				t.Errorf("%d contexts established, %d released", e, r)
			}
		})
	}
}

func TestMonitorSnapshot(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakePCSC("A", "B")
	f.insert("B", atrB)
	m, rec, stop := startMonitor(t, f)
	rec.next(t, 0, 3, 2*time.Second)
	want := []ReaderStatus{{Name: "A"}, {Name: "B", Present: true, ATR: atrB}}
	if got := m.Snapshot(); !sameStatus(got, want) {
		t.Fatalf("Snapshot = %+v, want %+v", got, want)
	}

	// The handler sees a snapshot that already includes its event, and
	// Snapshot is safe to call concurrently (run with -race).
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			for _, r := range m.Snapshot() {
				_ = len(r.ATR)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for i := 0; i < 20; i++ {
		f.insert("A", atrA)
		rec.next(t, 3+2*i, 1, 2*time.Second)
		f.remove("A")
		rec.next(t, 4+2*i, 1, 2*time.Second)
	}
	cancel()
	wg.Wait()
	want[0] = ReaderStatus{Name: "A"}
	if got := m.Snapshot(); !sameStatus(got, want) {
		t.Fatalf("Snapshot = %+v, want %+v", got, want)
	}

	f.stop()
	rec.next(t, 43, 4, 2*time.Second)
	if got := m.Snapshot(); len(got) != 0 {
		t.Errorf("Snapshot while the service is down = %+v, want empty", got)
	}
	stop()
}

func sameStatus(got, want []ReaderStatus) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Present != w.Present || g.Mute != w.Mute || !bytes.Equal(g.ATR, w.ATR) {
			return false
		}
	}
	return true
}

func TestMonitorSnapshotInHandler(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakePCSC("A")
	var m *Monitor
	seen := make(chan []ReaderStatus, 10)
	m = NewMonitor(zaptest.NewLogger(t), func(e Event) {
		if e.Kind == CardInserted {
			seen <- m.Snapshot()
		}
	})
	m.establish = f.establishContext
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Serve(ctx) }()
	f.insert("A", atrA)
	select {
	case s := <-seen:
		if len(s) != 1 || !s[0].Present || !bytes.Equal(s[0].ATR, atrA) {
			t.Errorf("Snapshot in handler = %+v, want card in A", s)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no CardInserted")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestMonitorShutdown cancels the monitor in every state it can be in: blocked
// in GetStatusChange, waiting for the service, and right after start (where
// a Cancel can come before the loop blocks and is lost, as in pcsc-lite).
func TestMonitorShutdown(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *fakePCSC)
		wait  time.Duration
	}{
		{"blocked in GetStatusChange", func(f *fakePCSC) { f.insert("A", atrA) }, 50 * time.Millisecond},
		{"service down", func(f *fakePCSC) { f.stop() }, 50 * time.Millisecond},
		{"at once", nil, 0},
		{"soon", nil, 200 * time.Microsecond},
		// The Cancel comes while the loop is past its ctx check but not yet
		// blocked: it is lost, and must be repeated.
		{"before the call blocks", func(f *fakePCSC) { f.enterDelay = 30 * time.Millisecond }, 45 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			for i := 0; i < 20; i++ {
				f := newFakePCSC("A")
				if tc.setup != nil {
					tc.setup(f)
				}
				_, _, stop := startMonitor(t, f)
				time.Sleep(tc.wait)
				stop() // fails the test if Serve does not return within 2 s
				if e, r := f.contexts.Load(), f.released.Load(); e != r {
					t.Fatalf("%d contexts established, %d released", e, r)
				}
			}
		})
	}
}

func TestMonitorServeTwice(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakePCSC("A")
	m, rec, stop := startMonitor(t, f)
	rec.next(t, 0, 1, 2*time.Second) // Serve is running
	if err := m.Serve(context.Background()); err == nil {
		t.Error("second concurrent Serve returned nil, want an error")
	}
	stop()
}

// TestMonitorSpinGuard runs the monitor over a GetStatusChange that never
// blocks (Wine's winscard): the monitor must back off instead of spinning,
// and still see changes.
func TestMonitorSpinGuard(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakePCSC("A", "B")
	f.setNonBlocking(true)
	_, rec, stop := startMonitor(t, f)
	rec.next(t, 0, 2, 2*time.Second)

	const window = time.Second
	start := f.gscCalls.Load()
	time.Sleep(window)
	calls := f.gscCalls.Load() - start
	// With 10 ms doubling to 1 s, a second holds about 7 calls; a hot loop
	// would make hundreds of thousands.
	t.Logf("%d GetStatusChange calls in %v with a non-blocking GetStatusChange", calls, window)
	if calls > 30 {
		t.Errorf("%d GetStatusChange calls in %v: the monitor spins", calls, window)
	}

	// Changes are still seen (within the capped 1 s delay).
	f.insert("B", atrB)
	got := rec.next(t, 2, 1, 3*time.Second)
	if !sameEvents(got, []Event{ev(CardInserted, "B", atrB)}) {
		t.Errorf("events %s, want CardInserted B", fmtEvents(got))
	}
	stop()
}

// TestMonitorBlocks checks the normal case: idle, the monitor makes no calls.
func TestMonitorBlocks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakePCSC("A")
	f.insert("A", atrA)
	_, rec, stop := startMonitor(t, f)
	rec.next(t, 0, 2, 2*time.Second)
	time.Sleep(20 * time.Millisecond)
	start := f.gscCalls.Load()
	time.Sleep(300 * time.Millisecond)
	if calls := f.gscCalls.Load() - start; calls != 0 {
		t.Errorf("%d GetStatusChange calls while idle, want 0 (blocked)", calls)
	}
	stop()
}

// TestMonitorServiceBackoff checks reconnection attempts are spaced out
// while the service is down.
func TestMonitorServiceBackoff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := newFakePCSC("A")
	f.stop()
	rec := newRecorder()
	m := NewMonitor(zaptest.NewLogger(t), rec.handle)
	m.establish = f.establishContext // default backoff: 100 ms doubling to 2 s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Serve(ctx) }()
	time.Sleep(1600 * time.Millisecond)
	// Attempts at 0, 0.1, 0.3, 0.7, 1.5 s: 5 by 1.6 s.
	if n := f.establish.Load(); n < 3 || n > 7 {
		t.Errorf("%d EstablishContext attempts in 1.6 s, want about 5", n)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Serve took %v to return while waiting to reconnect", d)
	}
	if got := rec.all(); !sameEvents(got, []Event{ev(ServiceDown, "", nil)}) {
		t.Errorf("events %s, want one ServiceDown", fmtEvents(got))
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 10 * time.Millisecond, max: 50 * time.Millisecond}
	var got []time.Duration
	for i := 0; i < 5; i++ {
		got = append(got, b.next())
	}
	want := []time.Duration{10, 20, 40, 50, 50}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	b.reset()
	if d := b.next(); d != 10*time.Millisecond {
		t.Errorf("after reset: %v, want 10ms", d)
	}
}
