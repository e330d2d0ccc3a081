package series8

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseFCI(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want fci
		err  bool
	}{
		{"DF", "6F 15 82 01 38 83 02 3F 00 85 02 00 02 86 08 24 24 00 24 00 FF FF FF",
			fci{Type: typeDF, FID: 0x3F00, Size: 2, Access: h("24 24 00 24 00 FF FF FF")}, false},
		{"transparent, 62 template", "62 0E 82 01 01 83 02 20 01 80 02 05 10 86 01 00",
			fci{Type: typeTransparent, FID: 0x2001, Size: 0x510, Access: h("00")}, false},
		{"linear", "6F 0F 82 05 04 21 00 8D 02 83 02 30 00 80 02 01 1A",
			fci{Type: typeLinear, FID: 0x3000, Size: 0x11A, RecLen: 0x8D}, false},
		{"RSA public, bits in 85", "82 01 12 83 02 10 01 85 02 08 00",
			fci{Type: typeRSAPublic, FID: 0x1001, Size: 2048}, false},
		{"DF without size", "6F 07 82 01 38 83 02 50 11", fci{Type: typeDF, FID: 0x5011}, false},
		{"no type", "6F 04 83 02 3F 00", fci{}, true},
		{"no FID", "6F 03 82 01 01", fci{}, true},
		{"EF without size", "6F 07 82 01 01 83 02 20 01", fci{}, true},
		{"size too long", "6F 0D 82 01 01 83 02 20 01 80 04 00 00 00 01", fci{}, true},
		{"truncated", "6F 14 82 01", fci{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFCI(h(tc.in))
			if tc.err {
				if err == nil {
					t.Fatalf("parsed %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tc.want.Type || got.FID != tc.want.FID || got.Size != tc.want.Size || got.RecLen != tc.want.RecLen || !bytes.Equal(got.Access, tc.want.Access) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseObjectList(t *testing.T) {
	got, err := parseObjectList(h("FF 10 01 08 00 00 00 00 00 00 FF 20 01 05 3A FF 30 01 08 00 FF FF"))
	if err != nil {
		t.Fatal(err)
	}
	want := []listEntry{{0x1001, 2048}, {0x2001, 0x53A}, {0x3001, 2048}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %v, want %v", i, got[i], want[i])
		}
	}
	if _, err := parseObjectList(h("FF 10 01 08 00 FF 20")); !errors.Is(err, errMalformed) {
		t.Errorf("partial entry: %v", err)
	}
	if _, err := parseObjectList(bytes.Repeat(h("FF 10 01 08 00"), maxListEntries+1)); !errors.Is(err, errMalformed) {
		t.Errorf("huge list: %v", err)
	}
}

func TestParseContainer(t *testing.T) {
	rec := make([]byte, 141)
	copy(rec, h("10 01 30 01 20 01 00 00 00 00 00 00 00 26"))
	copy(rec[14:], "{5E8E5000-0000-4000-8000-0123456789AB}")
	c, err := parseContainer(rec)
	if err != nil {
		t.Fatal(err)
	}
	if c.Exchange != (keyFIDs{0x1001, 0x3001, 0x2001}) || c.Signature.present() || c.GUID != "{5E8E5000-0000-4000-8000-0123456789AB}" {
		t.Errorf("got %+v", c)
	}
	c, err = parseContainer(h("FF FF FF FF FF FF 10 02 30 02 FF FF"))
	if err != nil || c.Exchange.present() || c.Signature != (keyFIDs{Pub: 0x1002, Prv: 0x3002}) || c.GUID != "" {
		t.Errorf("got %+v, %v", c, err)
	}
	for _, bad := range []string{"10 01 30 01", "30 01 10 01 20 01 00 00 00 00 00 00"} {
		if _, err := parseContainer(h(bad)); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestParseInfo(t *testing.T) {
	info, err := parseInfo(h("00 01 00 0E 41 75 74 68 65 6E 74 69 63 61 74 69 6F 6E 00 03 01 02 03 00 02 30 00"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Flags != 1 || info.Label != "Authentication" || !bytes.Equal(info.ID, []byte{1, 2, 3}) {
		t.Errorf("got %+v", info)
	}
	for _, bad := range []string{"00", "00 01 00 05 41", "00 01 00 00", "00 01 00 00 00 09 01"} {
		if _, err := parseInfo(h(bad)); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestDERLength(t *testing.T) {
	for in, want := range map[string]int{"30 03 01 02 03": 5, "30 81 80": 131, "30 82 05 10": 0x514, "31 03": -1, "30 80": -1, "30 84 00 00 00 01": -1, "30": -1} {
		got, ok := derLength(h(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("derLength(%s) = %d, want %d", in, got, want)
		}
	}
}

func TestCPLCSerial(t *testing.T) {
	cplc := make([]byte, 45)
	copy(cplc, []byte{0x9F, 0x7F, 0x2A})
	if cplcSerial(cplc) != nil {
		t.Error("all-zero serial accepted")
	}
	copy(cplc[15:], []byte{1, 2, 3, 4})
	if got := cplcSerial(cplc); !bytes.Equal(got, []byte{1, 2, 3, 4}) {
		t.Errorf("serial % X", got)
	}
	if cplcSerial(cplc[:18]) != nil || cplcSerial(append([]byte{0x9F, 0x7E}, cplc[2:]...)) != nil {
		t.Error("short or mistagged CPLC accepted")
	}
}

func FuzzParseFCI(f *testing.F) {
	f.Add(h("6F 15 82 01 38 83 02 3F 00 85 02 00 02 86 08 24 24 00 24 00 FF FF FF"))
	f.Add(h("6F 0F 82 05 04 21 00 8D 02 83 02 30 00 80 02 01 1A"))
	f.Add(h("82 01 12 83 02 10 01 85 02 08 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseFCI(b)
		if err == nil && got.Size < 0 {
			t.Fatalf("negative size %d", got.Size)
		}
	})
}

func FuzzParseObjectList(f *testing.F) {
	f.Add(h("FF 10 01 08 00 00 00 00 00 00 FF 20 01 05 3A"))
	f.Add(h("FF 30 01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseObjectList(b)
		if err == nil && len(got) > len(b)/5 {
			t.Fatalf("%d entries from %d bytes", len(got), len(b))
		}
	})
}

func FuzzParseContainer(f *testing.F) {
	f.Add(h("10 01 30 01 20 01 00 00 00 00 00 00 00 04 7B 41 42 7D"))
	f.Add(h("FF FF FF FF FF FF 10 02 30 02 FF FF 00 FF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseContainer(b)
		if err != nil {
			return
		}
		for _, k := range []keyFIDs{c.Exchange, c.Signature} {
			if !validFID(k.Prv, classPrivateRSA) || !validFID(k.Cert, classCert) || !validFID(k.Pub, classPublicRSA) {
				t.Fatalf("accepted container %+v", c)
			}
		}
		if len(c.GUID) > len(b) {
			t.Fatalf("GUID longer than the record")
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	f.Add(h("00 01 00 0E 41 75 74 68 65 6E 74 69 63 61 74 69 6F 6E 00 03 01 02 03 00 02 30 00"))
	f.Add(h("00 00 00 00 00 00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseInfo(b)
		if err == nil && len(info.Label)+len(info.ID) > len(b) {
			t.Fatalf("parsed more than the input: %+v", info)
		}
	})
}

func FuzzDERLength(f *testing.F) {
	f.Add(h("30 82 05 10"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, ok := derLength(b); ok && n < 2 {
			t.Fatalf("length %d", n)
		}
	})
}
