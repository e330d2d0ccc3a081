package pcsc

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"
	"go.uber.org/zap/zaptest"
)

// useFake points establishContext at f for the test.
func useFake(t *testing.T, f *fakePCSC) {
	t.Helper()
	old := establishContext
	establishContext = f.establishContext
	t.Cleanup(func() { establishContext = old })
}

// echo answers an APDU with its INS byte and 9000.
func echo(cmd []byte) ([]byte, error) { return []byte{cmd[1], 0x90, 0x00}, nil }

func TestOpenErrors(t *testing.T) {
	cancelledCtx, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name   string
		setup  func(f *fakePCSC)
		ctx    context.Context
		reader string
		want   error
	}{
		{"service down", func(f *fakePCSC) { f.stop() }, context.Background(), "A", ErrServiceUnavailable},
		{"unknown reader", nil, context.Background(), "Z", ErrNoReader},
		{"empty reader", nil, context.Background(), "A", ErrNoCard},
		{"mute card", func(f *fakePCSC) { f.insertMute("A") }, context.Background(), "A", ErrCardUnresponsive},
		{"cancelled", func(f *fakePCSC) { f.insert("A", atrA) }, cancelledCtx, "A", ErrCancelled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePCSC("A")
			if tc.setup != nil {
				tc.setup(f)
			}
			useFake(t, f)
			c, err := Open(tc.ctx, zaptest.NewLogger(t), tc.reader)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, %v; want %v", c, err, tc.want)
			}
			if e, r := f.contexts.Load(), f.released.Load(); e != r {
				t.Errorf("%d contexts established, %d released", e, r)
			}
		})
	}
}

func openFake(t *testing.T, f *fakePCSC, reader string) (*Conn, *fakeCard) {
	t.Helper()
	useFake(t, f)
	c, err := Open(context.Background(), zaptest.NewLogger(t), reader)
	if err != nil {
		t.Fatal(err)
	}
	c.removalWait = 100 * time.Millisecond
	t.Cleanup(func() { c.Close() })
	return c, c.card.(*fakeCard)
}

func TestConnTransact(t *testing.T) {
	f := newFakePCSC("A")
	f.insert("A", atrA)
	f.reader("A").transmit = echo
	c, k := openFake(t, f, "A")
	if c.Reader() != "A" || !bytes.Equal(c.ATR(), atrA) {
		t.Fatalf("Reader, ATR = %q, % X", c.Reader(), c.ATR())
	}
	var kept Transmitter
	err := c.Transact(context.Background(), func(tx Transmitter) error {
		kept = tx
		resp, err := tx.Transmit([]byte{0x00, 0xA4, 0x04, 0x00})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp, []byte{0xA4, 0x90, 0x00}) {
			t.Errorf("response % X", resp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	begins, ends, disp := k.begins, k.ends, k.lastDisp
	f.mu.Unlock()
	if begins != 1 || ends != 1 || disp != scard.LeaveCard {
		t.Errorf("begins %d, ends %d, disposition %v; want 1, 1, LeaveCard", begins, ends, disp)
	}
	if _, err := kept.Transmit([]byte{0, 0xA4, 0, 0}); err == nil {
		t.Error("a Transmitter kept after its transaction still works")
	}

	// fn's own error comes back unchanged.
	sentinel := errors.New("driver error")
	if err := c.Transact(context.Background(), func(Transmitter) error { return sentinel }); err != sentinel {
		t.Errorf("Transact = %v, want fn's error", err)
	}
}

func TestConnResetByOtherProgram(t *testing.T) {
	f := newFakePCSC("A")
	f.insert("A", atrA)
	f.reader("A").transmit = echo
	c, k := openFake(t, f, "A")
	f.do(func() { f.reader("A").resets++ })
	calls := 0
	err := c.Transact(context.Background(), func(tx Transmitter) error {
		calls++
		_, err := tx.Transmit([]byte{0x00, 0xA4, 0x04, 0x00})
		return err
	})
	if err != nil || calls != 1 {
		t.Fatalf("Transact = %v, fn called %d times; want nil, 1", err, calls)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if k.reconnects != 1 || k.begins != 2 {
		t.Errorf("reconnects %d, begins %d; want 1, 2", k.reconnects, k.begins)
	}
}

func TestConnTransactErrors(t *testing.T) {
	apdu := []byte{0x00, 0xB0, 0x00, 0x00, 0x00}
	cases := []struct {
		name string
		// before runs before Transact; transmit is the card's APDU handler.
		before   func(f *fakePCSC, c *Conn)
		transmit func(f *fakePCSC) func([]byte) ([]byte, error)
		ctx      func() context.Context
		want     error
		fnCalled bool
	}{
		{
			name:   "card removed before",
			before: func(f *fakePCSC, c *Conn) { f.remove("A") },
			want:   ErrCardRemoved,
		},
		{
			name:   "card swapped before",
			before: func(f *fakePCSC, c *Conn) { f.swap("A", atrB) },
			want:   ErrCardRemoved,
		},
		{
			name: "card pulled mid-APDU, reader already knows",
			transmit: func(f *fakePCSC) func([]byte) ([]byte, error) {
				return func([]byte) ([]byte, error) { f.remove("A"); return nil, nil }
			},
			want: ErrCardRemoved, fnCalled: true,
		},
		{
			name: "card pulled mid-APDU, reader notices later",
			transmit: func(f *fakePCSC) func([]byte) ([]byte, error) {
				return func([]byte) ([]byte, error) {
					go func() { time.Sleep(30 * time.Millisecond); f.remove("A") }()
					return []byte{}, nil // what vpcd answers when the card went away
				}
			},
			want: ErrCardRemoved, fnCalled: true,
		},
		{
			name: "card mute",
			transmit: func(f *fakePCSC) func([]byte) ([]byte, error) {
				return func([]byte) ([]byte, error) { return nil, scard.ErrNotTransacted }
			},
			want: ErrCardUnresponsive, fnCalled: true,
		},
		{
			name:   "service restarted",
			before: func(f *fakePCSC, c *Conn) { f.stop(); f.start() },
			want:   ErrServiceUnavailable,
		},
		{
			name:   "service down",
			before: func(f *fakePCSC, c *Conn) { f.stop() },
			want:   ErrServiceUnavailable,
		},
		{
			name: "cancelled",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			want: ErrCancelled,
		},
		{
			name:   "closed",
			before: func(f *fakePCSC, c *Conn) { c.Close() },
			want:   errClosed,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakePCSC("A")
			f.insert("A", atrA)
			f.reader("A").transmit = echo
			if tc.transmit != nil {
				f.reader("A").transmit = tc.transmit(f)
			}
			c, k := openFake(t, f, "A")
			if tc.before != nil {
				tc.before(f, c)
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			called := false
			err := c.Transact(ctx, func(tx Transmitter) error {
				called = true
				_, err := tx.Transmit(apdu)
				return err
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Transact = %v, want %v", err, tc.want)
			}
			if called != tc.fnCalled {
				t.Errorf("fn called = %v, want %v", called, tc.fnCalled)
			}
			f.mu.Lock()
			inTx := k.inTx
			f.mu.Unlock()
			if inTx {
				t.Error("transaction left open")
			}
		})
	}
}

func TestConnClose(t *testing.T) {
	t.Run("normal", func(t *testing.T) {
		f := newFakePCSC("A")
		f.insert("A", atrA)
		c, k := openFake(t, f, "A")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !k.disconnected || k.lastDisp != scard.LeaveCard {
			t.Errorf("disconnected %v with %v; want LeaveCard", k.disconnected, k.lastDisp)
		}
		if e, r := f.contexts.Load(), f.released.Load(); e != r {
			t.Errorf("%d contexts established, %d released", e, r)
		}
	})
	t.Run("card already gone", func(t *testing.T) {
		f := newFakePCSC("A")
		f.insert("A", atrA)
		c, _ := openFake(t, f, "A")
		f.remove("A")
		if err := c.Close(); err != nil {
			t.Errorf("Close after removal = %v, want nil", err)
		}
	})
	t.Run("service gone", func(t *testing.T) {
		f := newFakePCSC("A")
		f.insert("A", atrA)
		c, _ := openFake(t, f, "A")
		f.stop()
		if err := c.Close(); err != nil {
			t.Errorf("Close after service loss = %v, want nil", err)
		}
	})
}

// TestConnSerialises checks concurrent Transact calls never overlap.
func TestConnSerialises(t *testing.T) {
	f := newFakePCSC("A")
	f.insert("A", atrA)
	f.reader("A").transmit = echo
	c, _ := openFake(t, f, "A")
	inside := make(chan struct{}, 1)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			errs <- c.Transact(context.Background(), func(tx Transmitter) error {
				select {
				case inside <- struct{}{}:
				default:
					return errors.New("two transactions at once")
				}
				time.Sleep(time.Millisecond)
				<-inside
				_, err := tx.Transmit([]byte{0, 0xA4, 0, 0})
				return err
			})
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
