package piv

import (
	"bytes"
	"testing"

	"github.com/cardagent/cardagent/pcsc"
)

// Fuzz targets for every parser of card data. The seeds are small; run
// longer with, e.g., go test -fuzz FuzzParseCertContainer ./pcsc/piv/.

func FuzzParseCHUID(f *testing.F) {
	f.Add(pcsc.AppendTLV(nil, 0x53, append(pcsc.AppendTLV(nil, 0x30, make([]byte, 25)), pcsc.AppendTLV(nil, 0x34, bytes.Repeat([]byte{1}, 16))...)))
	f.Add([]byte{0x53, 0x00})
	f.Add([]byte{0x53, 0x84, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCHUID(b)
		if err != nil {
			return
		}
		if c.GUID != nil && len(c.GUID) != 16 {
			t.Fatalf("GUID of %d bytes", len(c.GUID))
		}
		if c.FASCN != nil && len(c.FASCN) != 25 {
			t.Fatalf("FASC-N of %d bytes", len(c.FASCN))
		}
	})
}

func FuzzParseCertContainer(f *testing.F) {
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x05}
	f.Add(container(der, 0x00))
	f.Add(container(gz(der), 0x01))
	f.Add([]byte{0x53, 0x04, 0x70, 0x02, 0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		cert, err := parseCertContainer(b)
		if err != nil {
			return
		}
		if len(cert) == 0 || len(cert) > maxCertSize {
			t.Fatalf("certificate of %d bytes", len(cert))
		}
	})
}

func FuzzParseAPT(f *testing.F) {
	f.Add(pcsc.AppendTLV(nil, 0x61, append(pcsc.AppendTLV(nil, 0x4F, []byte{0, 0, 0x10, 0, 1, 0}), pcsc.AppendTLV(nil, 0x50, []byte("PIV"))...)))
	f.Add([]byte{})
	f.Add([]byte{0x61, 0x03, 0xAC, 0x01, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseAPT(b)
		if err != nil {
			return
		}
		for _, c := range []byte(info.Label) {
			if c < 0x20 || c >= 0x7F {
				t.Fatalf("label holds byte %02X", c)
			}
		}
		_ = appletName(info)
	})
}

func FuzzParseKeyHistory(f *testing.F) {
	f.Add(pcsc.AppendTLV(nil, 0x53, []byte{0xC1, 0x01, 0x02, 0xC2, 0x01, 0x00, 0xFE, 0x00}))
	f.Add([]byte{0x53, 0x03, 0xC1, 0x01, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseKeyHistory(b)
		if err != nil {
			return
		}
		if h.OnCard < 0 || h.OnCard > 20 || h.OffCard < 0 || h.OffCard > 20 {
			t.Fatalf("key history %+v", h)
		}
	})
}

func FuzzParseAuthResponse(f *testing.F) {
	f.Add(pcsc.AppendTLV(nil, 0x7C, pcsc.AppendTLV(nil, 0x82, []byte{1, 2, 3})))
	f.Add([]byte{0x7C, 0x02, 0x82, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseAuthResponse(b)
		if err == nil && len(r) == 0 {
			t.Fatal("empty response accepted")
		}
	})
}
