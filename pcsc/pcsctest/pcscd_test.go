package pcsctest_test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/cardagent/cardagent/pcsc/scard"

	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
)

func TestMain(m *testing.M) { os.Exit(pcsctest.Main(m)) }

// echoCard answers every APDU with its own INS byte and 9000.
type echoCard struct{}

func (echoCard) ATR() []byte { return []byte{0x3B, 0x80, 0x80, 0x01, 0x01} }
func (echoCard) Reset()      {}
func (echoCard) Transmit(cmd []byte) ([]byte, error) {
	return []byte{cmd[1], 0x90, 0x00}, nil
}

// TestHarness checks the harness itself: pcscd lists the vpcd readers, an
// inserted virtual card is seen with its ATR, answers APDUs, and a restarted
// pcscd sees it again.
func TestHarness(t *testing.T) {
	p := pcsctest.Require(t)
	slot := p.Insert(t, 0, echoCard{}, vcard.Options{})

	connect := func() []byte {
		t.Helper()
		ctx, err := scard.EstablishContext()
		if err != nil {
			t.Fatalf("EstablishContext: %v\n%s", err, p.Log())
		}
		defer ctx.Release()
		var card *scard.Card
		deadline := time.Now().Add(3 * time.Second)
		for {
			card, err = ctx.Connect(pcsctest.ReaderNames[0], scard.ShareShared, scard.ProtocolAny)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		defer card.Disconnect(scard.LeaveCard)
		st, err := card.Status()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(st.Atr, echoCard{}.ATR()) {
			t.Errorf("ATR = % X, want % X", st.Atr, echoCard{}.ATR())
		}
		resp, err := card.Transmit([]byte{0x00, 0xA4, 0x04, 0x00})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if got := connect(); !bytes.Equal(got, []byte{0xA4, 0x90, 0x00}) {
		t.Fatalf("response % X", got)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	// vpcd dropped the card's connection with the old pcscd; insert again.
	<-slot.Done()
	p.Insert(t, 0, echoCard{}, vcard.Options{})
	if got := connect(); !bytes.Equal(got, []byte{0xA4, 0x90, 0x00}) {
		t.Fatalf("after restart: response % X", got)
	}
}
