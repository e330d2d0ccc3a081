package peer

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func listen(t *testing.T, opts ListenerOptions) (*Listener, *observer.ObservedLogs) {
	t.Helper()
	inner, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	opts.Log = zap.New(core)
	l := NewListener(inner, opts)
	t.Cleanup(func() { l.Close() })
	return l, logs
}

func dial(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedSoon says whether the server closed c within a few seconds
// (without sending anything).
func closedSoon(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	return n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func acceptAsync(l net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

// TestListenerRealCheck: with the real check, our own connection is
// accepted as a *Conn.
func TestListenerRealCheck(t *testing.T) {
	l, _ := listen(t, ListenerOptions{})
	dial(t, l)
	select {
	case c := <-acceptAsync(l):
		if _, ok := c.(*Conn); !ok {
			t.Fatalf("accepted %T", c)
		}
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("our own connection was not accepted")
	}
}

// TestListenerRefuses: a refused connection is closed at once, without
// Accept being called, and the refusals are logged once per interval.
func TestListenerRefuses(t *testing.T) {
	var calls atomic.Int32
	l, logs := listen(t, ListenerOptions{Check: func(netip.AddrPort, netip.AddrPort) error {
		calls.Add(1)
		return ErrOtherUser
	}})
	for i := range 5 {
		c, err := net.Dial("tcp4", l.Addr().String())
		if errors.Is(err, syscall.ECONNRESET) {
			continue // reset before connect returned: closed at once too
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !closedSoon(c) {
			t.Fatalf("refused connection %d left open", i)
		}
	}
	// The client may see its connection closed a moment before the
	// listener's goroutine has counted and logged the refusal: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 5 || logs.FilterMessage("connection from another user or an unknown process refused").Len() == 0 {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if calls.Load() != 5 {
		t.Errorf("%d checks, want 5", calls.Load())
	}
	lines := logs.FilterMessage("connection from another user or an unknown process refused").All()
	if len(lines) != 1 {
		t.Fatalf("%d log lines for 5 refusals in one interval, want 1", len(lines))
	}
}

func TestRefusalLogAggregates(t *testing.T) {
	var r refusalLog
	t0 := time.Unix(1000, 0)
	if n, ok := r.add(t0); !ok || n != 1 {
		t.Fatalf("first: %d %v", n, ok)
	}
	for i := range 99 {
		if _, ok := r.add(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatal("logged within the interval")
		}
	}
	if n, ok := r.add(t0.Add(RefusalLogInterval)); !ok || n != 100 {
		t.Fatalf("after the interval: %d %v, want 100 true", n, ok)
	}
}

// TestListenerMaxConns: past MaxConns open connections a checked one gets
// Overflow and is closed; closing one frees its place.
func TestListenerMaxConns(t *testing.T) {
	var overflows atomic.Int32
	l, _ := listen(t, ListenerOptions{
		Check:    func(netip.AddrPort, netip.AddrPort) error { return nil },
		MaxConns: 2,
		Overflow: func(c net.Conn) { overflows.Add(1); c.Write([]byte("busy")) },
	})
	var open []net.Conn
	for range 2 {
		dial(t, l)
		c := <-acceptAsync(l)
		if c == nil {
			t.Fatal("not accepted")
		}
		open = append(open, c)
	}
	if l.Open() != 2 {
		t.Fatalf("Open() = %d", l.Open())
	}
	c3 := dial(t, l)
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c3); string(b) != "busy" {
		t.Fatalf("third connection read %q, want the overflow answer then EOF", b)
	}
	if overflows.Load() != 1 {
		t.Fatalf("%d overflows", overflows.Load())
	}
	open[0].Close()
	open[0].Close() // twice frees one place only
	if l.Open() != 1 {
		t.Fatalf("Open() = %d after a close", l.Open())
	}
	dial(t, l)
	if c := <-acceptAsync(l); c == nil {
		t.Fatal("no place after a close")
	}
}

// TestListenerMaxPending: while MaxPending checks are busy nothing more is
// accepted (the connections wait in the kernel's backlog); Close ends
// everything.
func TestListenerMaxPending(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int32
	l, _ := listen(t, ListenerOptions{
		MaxPending: 3,
		Check: func(netip.AddrPort, netip.AddrPort) error {
			calls.Add(1)
			<-release
			return nil
		},
	})
	for range 8 {
		dial(t, l)
	}
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d checks in flight, want 3", n)
	}
	close(release)
	for i := range 8 {
		select {
		case c := <-acceptAsync(l):
			if c == nil {
				t.Fatalf("accept %d failed", i)
			}
			c.Close()
		case <-time.After(5 * time.Second):
			t.Fatalf("connection %d never accepted", i)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// TestListenerCloseWhileFull: Close returns while every check slot is busy
// and connections wait to be accepted.
func TestListenerCloseWhileFull(t *testing.T) {
	l, _ := listen(t, ListenerOptions{MaxPending: 1, Check: func(netip.AddrPort, netip.AddrPort) error { return nil }})
	c := dial(t, l)
	dial(t, l)
	time.Sleep(100 * time.Millisecond) // one checked and waiting for Accept, the slot free again
	done := make(chan error)
	go func() { done <- l.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
	if !closedSoon(c) {
		t.Fatal("a connection waiting for Accept was left open by Close")
	}
}
