//go:build cgo && linux

package p11

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ebfe/scard"

	"github.com/cardagent/cardagent/pcsc/pcsctest"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

func TestZZReinsert(t *testing.T) {
	for _, disp := range []scard.Disposition{scard.LeaveCard, scard.ResetCard} {
		p := pcsctest.Require(t)
		vc, _ := vpiv.NewNHS(testCreds(t).pki, testpki.CardSpec{KeyType: testpki.P256})
		var pull atomic.Bool
		s := p.Insert(t, 0, vc, vcard.Options{BeforeAPDU: func(cmd []byte) vcard.Fault {
			if pull.Load() {
				return vcard.Drop
			}
			return vcard.Pass
		}})
		ctx, _ := scard.EstablishContext()
		state := func() uint32 {
			rs := []scard.ReaderState{{Reader: pcsctest.ReaderNames[0], CurrentState: scard.StateUnaware}}
			ctx.GetStatusChange(rs, 0)
			return uint32(rs[0].EventState)
		}
		time.Sleep(300 * time.Millisecond)
		card, err := ctx.Connect(pcsctest.ReaderNames[0], scard.ShareShared, scard.ProtocolAny)
		t.Logf("%v: connect %v", disp, err)
		card.BeginTransaction()
		pull.Store(true)
		_, err = card.Transmit([]byte{0, 0xA4, 4, 0, 1, 0xA0})
		t.Logf("transmit %v", err)
		t.Logf("end transaction: %v", card.EndTransaction(disp))
		card.Disconnect(scard.LeaveCard)
		<-s.Done()
		time.Sleep(600 * time.Millisecond)
		t.Logf("after pull: %#x", state())
		p.Insert(t, 0, vc, vcard.Options{})
		time.Sleep(1500 * time.Millisecond)
		t.Logf("1.5 s after reinsert: %#x", state())
		s2 := p.Insert(t, 1, vc, vcard.Options{})
		time.Sleep(600 * time.Millisecond)
		rs := []scard.ReaderState{{Reader: pcsctest.ReaderNames[1], CurrentState: scard.StateUnaware}}
		ctx.GetStatusChange(rs, 0)
		t.Logf("slot 1: %#x", rs[0].EventState)
		s2.Remove()
		ctx.Release()
		if disp == scard.ResetCard {
			p.Restart()
			p.Insert(t, 0, vc, vcard.Options{})
			time.Sleep(800 * time.Millisecond)
			ctx, _ = scard.EstablishContext()
			t.Logf("after pcscd restart and reinsert: %#x", state())
			ctx.Release()
		}
	}
}
