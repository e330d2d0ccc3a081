package vpiv_test

import (
	"testing"

	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
)

// script encodes APDUs as the fuzz input: each is a length byte and the APDU.
func script(tb testing.TB, apdus ...string) []byte {
	var out []byte
	for _, a := range apdus {
		b := unhex(tb, a)
		out = append(out, byte(len(b)))
		out = append(out, b...)
	}
	return out
}

// FuzzTransmit feeds APDU sequences to a card: it must never panic, always
// answer a status word with at most 256 data bytes, and keep its counters
// within their limits.
func FuzzTransmit(f *testing.F) {
	rsaCreds := issue(f, testpki.CardSpec{DaysLeft: 400})
	ecCreds := issue(f, testpki.CardSpec{DaysLeft: 400, KeyType: testpki.P256})

	f.Add(script(f, selPIV, getCHUID, get9A, getResp, getResp, getResp))
	f.Add(script(f, selPIV, ver("111111"), ver("111111"), ver("111111"), verEmpty, reset(vpiv.DefaultPUK, "654321")))
	f.Add(script(f, selRID, ver(vpiv.DefaultPIN), "00 87 11 9A 26 7C 24 82 00 81 20"+
		"0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20 00"))
	f.Add(script(f, selPIV, ver(vpiv.DefaultPIN), "10 87 07 9A 04 7C 82 01 06", "00 87 07 9A 02 82 00 00"))
	f.Add(script(f, "80 CA 9F 7F 00", selCM, "00 FD 00 00 00", "00 DB 3F FF 02 5C 01"))
	f.Add([]byte{3, 0, 0xA4, 4})

	f.Fuzz(func(t *testing.T, in []byte) {
		creds := rsaCreds
		if len(in) > 0 && in[0]&1 == 1 {
			creds = ecCreds
		}
		c, err := vpiv.New(vpiv.NHSConfig(creds))
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; len(in) > 0 && n < 32; n++ {
			l := int(in[0])
			in = in[1:]
			if l > len(in) {
				l = len(in)
			}
			apdu := in[:l]
			in = in[l:]
			resp, err := c.Transmit(apdu)
			if err != nil {
				t.Fatalf("Transmit(% X): %v", apdu, err)
			}
			if len(resp) < 2 || len(resp) > 258 {
				t.Fatalf("Transmit(% X) answered %d bytes", apdu, len(resp))
			}
			if p := c.PINTries(); p < 0 || p > vpiv.DefaultRetries {
				t.Fatalf("PIN tries %d", p)
			}
			if p := c.PUKTries(); p < 0 || p > vpiv.DefaultRetries {
				t.Fatalf("PUK tries %d", p)
			}
		}
	})
}
