package pcsc

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestConnAPDUTimeout: a card that never answers an APDU (SCardTransmit
// blocks, as it does for ever with vpcd) fails the transaction with
// ErrCardUnresponsive after the APDU timeout; nothing more is sent on the
// connection, Close returns at once, and the PC/SC handles are released
// once the blocked call returns (the card is pulled).
func TestConnAPDUTimeout(t *testing.T) {
	f := newFakePCSC("A")
	f.insert("A", atrA)
	pulled := make(chan struct{})
	var sent atomic.Int32
	f.reader("A").transmit = func(cmd []byte) ([]byte, error) {
		sent.Add(1)
		if cmd[1] == 0x87 {
			<-pulled
			return nil, errors.New("card pulled")
		}
		return echo(cmd)
	}
	c, k := openFake(t, f, "A")
	c.SetAPDUTimeout(100 * time.Millisecond)

	if err := c.Transact(context.Background(), func(tx Transmitter) error {
		_, err := tx.Transmit([]byte{0, 0xA4, 0, 0})
		return err
	}); err != nil {
		t.Fatalf("answered APDU: %v", err)
	}
	start := time.Now()
	err := c.Transact(context.Background(), func(tx Transmitter) error {
		if _, err := tx.Transmit([]byte{0, 0x87, 0, 0}); err != nil {
			return err
		}
		_, err := tx.Transmit([]byte{0, 0x20, 0, 0})
		t.Error("a command was sent after the unanswered one")
		return err
	})
	if took := time.Since(start); !errors.Is(err, ErrNoAnswer) || !errors.Is(err, ErrCardUnresponsive) || took > 2*time.Second {
		t.Fatalf("Transact = %v after %v, want ErrNoAnswer after about 100 ms", err, took)
	}
	// The connection is spent: nothing more reaches the card.
	n := sent.Load()
	if err := c.Transact(context.Background(), func(Transmitter) error { return nil }); !errors.Is(err, ErrCardUnresponsive) {
		t.Errorf("next Transact = %v, want ErrCardUnresponsive", err)
	}
	if sent.Load() != n {
		t.Error("an APDU was sent on a stuck connection")
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Close blocked behind the unanswered command")
	}
	if f.released.Load() != 0 {
		t.Error("context released while a call is still blocked on it")
	}
	close(pulled) // the card is pulled: the blocked call returns
	deadline := time.Now().Add(2 * time.Second)
	for f.released.Load() != f.contexts.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("%d contexts established, %d released", f.contexts.Load(), f.released.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.c.f.mu.Lock()
	disconnected := k.disconnected
	k.c.f.mu.Unlock()
	if !disconnected {
		t.Error("card not disconnected once the call returned")
	}
}
