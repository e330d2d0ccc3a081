package pcsc_test

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

var selectPIV = pcsc.Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: 0x00, Data: []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}, Le: 0}

func openConn(t testing.TB, reader string) *pcsc.Conn {
	t.Helper()
	c, err := pcsc.Open(context.Background(), zaptest.NewLogger(t), reader)
	if err != nil {
		t.Fatalf("Open(%q): %v", reader, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnE2E(t *testing.T) {
	p := pcsctest.Require(t)
	insert(t, p, 0, testCard{apps: []string{pivAID}}, vcard.Options{})
	c := openConn(t, reader0)
	if c.Reader() != reader0 || !bytes.Equal(c.ATR(), echoATR) {
		t.Errorf("Reader, ATR = %q, % X", c.Reader(), c.ATR())
	}
	err := c.Transact(context.Background(), func(tx pcsc.Transmitter) error {
		resp, err := pcsc.Exchange(tx, selectPIV)
		if err != nil {
			return err
		}
		return resp.Err()
	})
	if err != nil {
		t.Fatalf("Transact with SELECT: %v", err)
	}

	// Shared mode: a second connection works while the first is open.
	c2 := openConn(t, reader0)
	if err := c2.Transact(context.Background(), func(tx pcsc.Transmitter) error {
		_, err := pcsc.Exchange(tx, selectPIV)
		return err
	}); err != nil {
		t.Errorf("second shared connection: %v", err)
	}

	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Transact(context.Background(), func(pcsc.Transmitter) error { return nil }); err == nil {
		t.Error("Transact after Close succeeded")
	}
}

func TestConnE2EOpenErrors(t *testing.T) {
	pcsctest.Require(t)
	waitPresent(t, reader1, false)
	cases := []struct {
		reader string
		want   error
	}{
		{reader1, pcsc.ErrNoCard},
		{"No Such Reader 00 00", pcsc.ErrNoReader},
	}
	for _, tc := range cases {
		if _, err := pcsc.Open(context.Background(), zaptest.NewLogger(t), tc.reader); !errors.Is(err, tc.want) {
			t.Errorf("Open(%q) = %v, want %v", tc.reader, err, tc.want)
		}
	}
}

// TestConnE2ECardPulled pulls the card in the middle of a transaction (the
// connection drops before the card answers): the driver gets ErrCardRemoved.
func TestConnE2ECardPulled(t *testing.T) {
	p := pcsctest.Require(t)
	var pull atomic.Bool
	insert(t, p, 0, testCard{apps: []string{pivAID}}, vcard.Options{BeforeAPDU: func([]byte) vcard.Fault {
		if pull.Load() {
			return vcard.Drop
		}
		return vcard.Pass
	}})
	c := openConn(t, reader0)
	var took time.Duration
	err := c.Transact(context.Background(), func(tx pcsc.Transmitter) error {
		if _, err := pcsc.Exchange(tx, selectPIV); err != nil {
			t.Errorf("first APDU: %v", err)
		}
		pull.Store(true)
		start := time.Now()
		_, err := pcsc.Exchange(tx, pcsc.Command{CLA: 0x00, INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: []byte{0x5C, 0x03, 0x5F, 0xC1, 0x05}, Le: 0})
		took = time.Since(start)
		return err
	})
	if !errors.Is(err, pcsc.ErrCardRemoved) {
		t.Fatalf("Transact with the card pulled = %v, want ErrCardRemoved", err)
	}
	t.Logf("card pulled mid-APDU: ErrCardRemoved after %v", took)
	if err := c.Transact(context.Background(), func(pcsc.Transmitter) error { return nil }); !errors.Is(err, pcsc.ErrCardRemoved) {
		t.Errorf("Transact after removal = %v, want ErrCardRemoved", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after removal = %v, want nil", err)
	}
}

// TestConnE2EServiceRestart: a connection made before pcscd restarted is
// dead; Transact says so with a typed error.
func TestConnE2EServiceRestart(t *testing.T) {
	p := pcsctest.Require(t)
	slot := insert(t, p, 0, testCard{}, vcard.Options{})
	c := openConn(t, reader0)
	if err := p.Restart(); err != nil {
		t.Fatalf("restarting pcscd: %v\n%s", err, p.Log())
	}
	<-slot.Done()
	err := c.Transact(context.Background(), func(tx pcsc.Transmitter) error {
		_, err := tx.Transmit([]byte{0x00, 0xA4, 0x04, 0x00})
		return err
	})
	if !errors.Is(err, pcsc.ErrServiceUnavailable) && !errors.Is(err, pcsc.ErrCardRemoved) {
		t.Fatalf("Transact after pcscd restart = %v, want ErrServiceUnavailable or ErrCardRemoved", err)
	}
	t.Logf("Transact after pcscd restart: %v", err)
	if err := c.Close(); err != nil {
		t.Errorf("Close after restart = %v, want nil", err)
	}
}

func TestIdentifyE2E(t *testing.T) {
	p := pcsctest.Require(t)
	cases := []struct {
		name string
		card testCard
		want pcsc.IdentifyResult
	}{
		{"PIV", testCard{apps: []string{pivAID}}, pcsc.IdentifyResult{Kind: pcsc.KindPIV, Applet: pivAID, Name: "PIV card"}},
		{"series 8", testCard{apps: []string{authenticAID}}, pcsc.IdentifyResult{Kind: pcsc.KindSeries8, Applet: authenticAID, Name: "NHS series 8 (Oberthur)"}},
		{"unknown", testCard{}, pcsc.IdentifyResult{Kind: pcsc.KindUnknown, Name: "unknown card"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			slot := insert(t, p, 1, tc.card, vcard.Options{})
			c := openConn(t, reader1)
			got, err := pcsc.Identify(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Identify = %+v, want %+v", got, tc.want)
			}
			c.Close()
			slot.Remove()
			waitPresent(t, reader1, false)
		})
	}
}

// BenchmarkTransmit measures one APDU round trip through libpcsclite, pcscd
// and vpcd to the virtual card: inside one transaction, and with a
// transaction of its own per APDU (what a driver's single-APDU call costs).
func BenchmarkTransmit(b *testing.B) {
	p := pcsctest.Require(b)
	insert(b, p, 0, testCard{}, vcard.Options{})
	c := openConn(b, reader0)
	apdu := []byte{0x00, 0xB0, 0x00, 0x00, 0x00}
	b.Run("APDU", func(b *testing.B) {
		err := c.Transact(context.Background(), func(tx pcsc.Transmitter) error {
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := tx.Transmit(apdu); err != nil {
					return err
				}
			}
			b.StopTimer()
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run("Transact", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			err := c.Transact(context.Background(), func(tx pcsc.Transmitter) error {
				_, err := tx.Transmit(apdu)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
