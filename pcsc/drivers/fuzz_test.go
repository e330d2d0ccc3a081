package drivers

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

// fuzzATRs are the ATRs a fuzzed card may show: Idemia PIV, Oberthur series
// 8, and a retired JCOP card (pcsc/identify.go's hints).
var fuzzATRs = []string{
	"3BD6970081B1FE451F878031C152411A2B",
	"3BDB960080B1FE451F830031C064BAFC10000790000F",
	"3BF91800008131FE454A434F503431563232AF",
}

// scriptedCard answers from a script of answers, each a 2-byte big-endian
// length (at most 258) and that many bytes. Once the script is used up it
// answers 6A 82 (not found). It records every command.
type scriptedCard struct {
	script []byte
	sent   [][]byte
}

// fuzzMaxAPDUs bounds the APDUs one fuzzed card may be sent before the
// driver is taken to loop for ever.
const fuzzMaxAPDUs = 20_000

func (c *scriptedCard) Transmit(cmd []byte) ([]byte, error) {
	c.sent = append(c.sent, bytes.Clone(cmd))
	if len(c.sent) > fuzzMaxAPDUs {
		return nil, pcsc.ErrCardUnresponsive
	}
	if len(c.script) < 2 {
		return []byte{0x6A, 0x82}, nil
	}
	n := min(int(c.script[0])<<8|int(c.script[1]), 258)
	c.script = c.script[2:]
	n = min(n, len(c.script))
	resp := bytes.Clone(c.script[:n])
	c.script = c.script[n:]
	return resp, nil
}

// writes are instructions that change a card (or spend a PIN try) and that
// reading a card must never send.
var writes = map[byte]string{
	0x24: "CHANGE REFERENCE DATA", 0x2C: "RESET RETRY COUNTER", 0x87: "GENERAL AUTHENTICATE",
	0x2A: "PERFORM SECURITY OPERATION", 0xDB: "PUT DATA", 0xDA: "PUT DATA", 0xD6: "UPDATE BINARY",
	0xDC: "UPDATE RECORD", 0xE2: "APPEND RECORD", 0xE0: "CREATE FILE", 0xE4: "DELETE FILE",
	0x47: "GENERATE KEY PAIR", 0x46: "GENERATE KEY PAIR", 0x44: "ACTIVATE FILE", 0x04: "DEACTIVATE FILE",
	0xFD: "YubiKey GET VERSION", 0xF8: "YubiKey GET SERIAL", 0xF7: "YubiKey ATTEST", 0xFE: "YubiKey",
}

// FuzzOpen feeds arbitrary card answers to the driver choice and the PIV and
// series 8 drivers as the agent uses them at insertion (identify, open, read
// the certificates, read the PIN tries) and then at sign-in (one signature
// with a PIN). Whatever the card answers: no panic, a bounded number of
// APDUs, nothing written and no PIN sent while reading, and at sign-in the
// PIN asked for once and sent in at most one VERIFY.
func FuzzOpen(f *testing.F) {
	f.Add(byte(0), []byte{0, 2, 0x90, 0x00})
	f.Add(byte(1), []byte{0, 2, 0x6A, 0x82, 0, 2, 0x90, 0x00, 0, 4, 0x6F, 0x00, 0x90, 0x00})
	f.Add(byte(2), []byte{})
	f.Fuzz(func(t *testing.T, atrIndex byte, script []byte) {
		atr, _ := hex.DecodeString(fuzzATRs[int(atrIndex)%len(fuzzATRs)])
		card := &scriptedCard{script: script}
		sess := &pcsc.LocalSession{T: card, ReaderName: "fuzz", CardATR: atr}
		ctx := context.Background()
		c, _, err := Open(ctx, zap.NewNop(), sess, Options{})
		if err == nil {
			defer c.Close()
			_ = c.Info()
			_, _ = c.Certificates(ctx)
			_, _ = c.PINStatus(ctx)
		}
		if len(card.sent) > fuzzMaxAPDUs {
			t.Fatalf("reading the card does not end: %d APDUs", len(card.sent))
		}
		for _, cmd := range card.sent {
			if len(cmd) < 4 {
				t.Fatalf("command of %d bytes", len(cmd))
			}
			if name, ok := writes[cmd[1]]; ok {
				t.Fatalf("reading the card sent %s: % X", name, cmd)
			}
			if cmd[1] == 0x20 && len(cmd) > 5 {
				t.Fatalf("reading the card sent a VERIFY with data: % X", cmd)
			}
		}
		if err != nil {
			return
		}
		asked := 0
		key, err := c.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) {
			asked++
			return []byte("123456"), nil
		})
		if err != nil {
			return
		}
		before := len(card.sent)
		digest := sha256.Sum256([]byte("cardagent fuzz"))
		_, _ = key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if asked > 1 {
			t.Fatalf("PIN asked %d times for one signature", asked)
		}
		verifies := 0
		for _, cmd := range card.sent[before:] {
			if cmd[1] == 0x20 && len(cmd) > 5 {
				verifies++
			}
		}
		if verifies > 1 {
			t.Fatalf("%d VERIFY commands with the PIN for one signature", verifies)
		}
		if len(card.sent)-before > fuzzMaxAPDUs {
			t.Fatalf("signing does not end: %d APDUs", len(card.sent)-before)
		}
	})
}
