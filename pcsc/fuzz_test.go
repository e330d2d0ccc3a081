package pcsc

import (
	"bytes"
	"errors"
	"testing"
)

// Fuzz targets for the parsers of card data in this package that had none:
// BER-TLV and the APDU exchange (61xx / 6Cxx handling). Seed corpora are in
// testdata/fuzz (go run ./test/fuzzseeds writes them from the virtual cards);
// scripts/fuzz runs every target for longer.

// FuzzParseTLV: ParseTLV never panics; it fails only with ErrMalformedTLV;
// what it accepts has tags of one to three bytes and values inside the
// input, re-encodes with AppendTLV into bytes that parse back to the same
// objects, and FindTLV finds the first object of each tag.
func FuzzParseTLV(f *testing.F) {
	f.Add([]byte{0x53, 0x03, 0x30, 0x01, 0x00})
	f.Add([]byte{0x5F, 0xC1, 0x05, 0x82, 0x00, 0x02, 0xAB, 0xCD})
	f.Add([]byte{0x00, 0xFF, 0x7C, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := ParseTLV(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedTLV) {
				t.Fatalf("error %v is not ErrMalformedTLV", err)
			}
			return
		}
		var enc []byte
		total := 0
		for _, o := range objs {
			if o.Tag > 0xFFFFFF {
				t.Fatalf("tag %X of more than three bytes accepted", o.Tag)
			}
			total += len(o.Value)
			enc = AppendTLV(enc, o.Tag, o.Value)
		}
		if total > len(b) {
			t.Fatalf("values of %d bytes from %d bytes of input", total, len(b))
		}
		back, err := ParseTLV(enc)
		if err != nil || len(back) != len(objs) {
			t.Fatalf("re-encoded % X does not parse back: %v", enc, err)
		}
		for i := range back {
			if back[i].Tag != objs[i].Tag || !bytes.Equal(back[i].Value, objs[i].Value) {
				t.Fatalf("object %d: %X % X re-encoded as %X % X", i, objs[i].Tag, objs[i].Value, back[i].Tag, back[i].Value)
			}
		}
		if len(objs) > 0 {
			v, ok := FindTLV(objs, objs[0].Tag)
			if !ok || !bytes.Equal(v, objs[0].Value) {
				t.Fatal("FindTLV misses the first object")
			}
		}
	})
}

// stuckCard answers from a script: each answer is a length byte and that
// many bytes; once the script is used up it repeats its last answer for
// ever (a card stuck in one state). An answer of length 0xFF is a
// transport error instead.
type stuckCard struct {
	script []byte
	last   []byte
	sent   int
	limit  int  // beyond it the card fails, so that an endless loop ends the test
	failed bool // a transport error was returned
	after  int  // commands sent after the transport error
}

func (c *stuckCard) Transmit(cmd []byte) ([]byte, error) {
	c.sent++
	if c.sent > c.limit {
		return nil, ErrCardUnresponsive
	}
	if c.failed {
		c.after++
	}
	if len(c.script) > 0 {
		n := int(c.script[0])
		c.script = c.script[1:]
		if n == 0xFF {
			c.failed = true
			return nil, ErrCardRemoved
		}
		n = min(n, len(c.script))
		c.last = bytes.Clone(c.script[:n])
		c.script = c.script[n:]
	}
	return bytes.Clone(c.last), nil
}

// FuzzExchange feeds arbitrary card answers to Exchange with a command of
// 0 to 510 data bytes (so also chained): it ends after a bounded number of
// APDUs even when the card repeats itself for ever, collects no more than
// its response bound, and sends nothing after a transport error.
func FuzzExchange(f *testing.F) {
	f.Add(byte(0), []byte{2, 0x90, 0x00})
	f.Add(byte(3), []byte{4, 1, 2, 0x61, 0x02, 4, 3, 4, 0x90, 0x00})
	f.Add(byte(200), []byte{2, 0x90, 0x00, 2, 0x6C, 0x10, 3, 9, 0x90, 0x00})
	f.Add(byte(1), []byte{2, 0x61, 0x00})
	f.Add(byte(1), []byte{2, 0x90, 0x00, 0xFF})
	f.Fuzz(func(t *testing.T, size byte, script []byte) {
		// Two chained parts, one 6Cxx repeat, at most maxGetResponse GET
		// RESPONSE: a card answering "61 00" for ever once made it loop.
		const limit = 1000
		card := &stuckCard{script: script, last: []byte{0x6F, 0x00}, limit: limit}
		cmd := Command{CLA: 0x00, INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: bytes.Repeat([]byte{0xA5}, 2*int(size)), Le: 0}
		resp, err := Exchange(card, cmd)
		if card.sent > limit {
			t.Fatalf("Exchange does not end: %d APDUs sent for one command", card.sent)
		}
		if card.after > 0 {
			t.Fatalf("%d APDUs sent after a transport error", card.after)
		}
		if err == nil && len(resp.Data) > maxResponse+256 {
			t.Fatalf("response of %d bytes", len(resp.Data))
		}
	})
}
