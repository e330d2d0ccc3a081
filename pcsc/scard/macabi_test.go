package scard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"
)

// packedReaderState is SCARD_READERSTATE as Apple's pcsclite.h declares
// it under #pragma pack(1) on 64-bit macOS (pointers 8 bytes, DWORD 4).
// encoding/binary lays a struct out field after field with no padding,
// exactly as pack(1) does, so it is an independent reference for the
// offsets macabi.go computes by hand.
type packedReaderState struct {
	Reader       uint64 // const char *szReader
	UserData     uint64 // void *pvUserData
	CurrentState uint32 // DWORD dwCurrentState
	EventState   uint32 // DWORD dwEventState
	ATRLen       uint32 // DWORD cbAtr
	ATR          [33]byte
}

func TestMacReaderStateLayout(t *testing.T) {
	if got := binary.Size(packedReaderState{}); got != 61 {
		t.Fatalf("packed SCARD_READERSTATE: binary.Size %d, want 61", got)
	}
	if macReaderStateSize != 61 {
		t.Fatalf("macReaderStateSize %d, want 61", macReaderStateSize)
	}
	offsets := []struct {
		name      string
		got, want int
	}{
		{"szReader", macRSReader, 0},
		{"pvUserData", macRSUserData, 8},
		{"dwCurrentState", macRSCurrentState, 16},
		{"dwEventState", macRSEventState, 20},
		{"cbAtr", macRSATRLen, 24},
		{"rgbAtr", macRSATR, 28},
		{"SCARD_IO_REQUEST size", macIORequestSize, 8},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("%s at %d, want %d", o.name, o.got, o.want)
		}
	}
}

func TestPutMacReaderStateMatchesPackedStruct(t *testing.T) {
	atr := []byte{0x3B, 0x88, 0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09}
	ref := packedReaderState{Reader: 0x0000_7FF8_1234_5678, CurrentState: 0x0003_0020, ATRLen: uint32(len(atr))}
	copy(ref.ATR[:], atr)
	var want bytes.Buffer
	if err := binary.Write(&want, binary.LittleEndian, ref); err != nil {
		t.Fatal(err)
	}
	got := bytes.Repeat([]byte{0xAA}, macReaderStateSize) // stale bytes must be cleared
	if err := putMacReaderState(got, ref.Reader, ref.CurrentState, atr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("reader state\n got % X\nwant % X", got, want.Bytes())
	}
}

// An array of packed structures has a 61-byte stride: the framework reads
// reader i at i*61, and writes its results there.
func TestMacReaderStateArray(t *testing.T) {
	names := []uint64{0x1000, 0x2000, 0x3000}
	buf := make([]byte, len(names)*macReaderStateSize)
	for i, n := range names {
		if err := putMacReaderState(buf[i*macReaderStateSize:], n, uint32(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	// What the framework writes back, field by field, through the
	// reference layout.
	for i := range names {
		var rs packedReaderState
		if err := binary.Read(bytes.NewReader(buf[i*macReaderStateSize:]), binary.LittleEndian, &rs); err != nil {
			t.Fatal(err)
		}
		if rs.Reader != names[i] || rs.CurrentState != uint32(i) || rs.ATRLen != 0 {
			t.Fatalf("reader %d read back as %+v", i, rs)
		}
		rs.EventState = flagChanged | flagPresent | uint32(i+1)<<16
		rs.ATRLen = uint32(3 + i)
		copy(rs.ATR[:], []byte{0x3B, 0x02, 0x14, 0x50, 0x51})
		var w bytes.Buffer
		if err := binary.Write(&w, binary.LittleEndian, rs); err != nil {
			t.Fatal(err)
		}
		copy(buf[i*macReaderStateSize:], w.Bytes())
	}
	for i := range names {
		ev, atr, err := macReaderStateResult(buf[i*macReaderStateSize:])
		if err != nil {
			t.Fatal(err)
		}
		if want := uint32(flagChanged | flagPresent | uint32(i+1)<<16); ev != want {
			t.Errorf("reader %d: event 0x%08X, want 0x%08X", i, ev, want)
		}
		if want := []byte{0x3B, 0x02, 0x14, 0x50, 0x51}[:3+i]; !bytes.Equal(atr, want) {
			t.Errorf("reader %d: ATR % X, want % X", i, atr, want)
		}
	}
}

func TestMacReaderStateErrors(t *testing.T) {
	if err := putMacReaderState(make([]byte, 60), 1, 0, nil); !errors.Is(err, errLayout) {
		t.Errorf("60-byte buffer: %v", err)
	}
	if err := putMacReaderState(make([]byte, 61), 1, 0, make([]byte, 34)); !errors.Is(err, errLayout) {
		t.Errorf("34-byte ATR: %v", err)
	}
	b := make([]byte, macReaderStateSize)
	binary.LittleEndian.PutUint32(b[macRSATRLen:], 34)
	if _, _, err := macReaderStateResult(b); !errors.Is(err, errLayout) {
		t.Errorf("cbAtr 34: %v", err)
	}
	if _, _, err := macReaderStateResult(b[:60]); !errors.Is(err, errLayout) {
		t.Errorf("60 bytes: %v", err)
	}
	binary.LittleEndian.PutUint32(b[macRSATRLen:], 0)
	if _, atr, err := macReaderStateResult(b); err != nil || atr != nil {
		t.Errorf("cbAtr 0: %v, % X", err, atr)
	}
}

func TestMacIORequest(t *testing.T) {
	b := make([]byte, macIORequestSize)
	putMacIORequest(b, protocolT1)
	if want := []byte{2, 0, 0, 0, 8, 0, 0, 0}; !bytes.Equal(b, want) {
		t.Fatalf("SCARD_IO_REQUEST for T=1: % X, want % X", b, want)
	}
}

func TestSplitMultiString(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"\x00", nil},
		{"\x00\x00", nil},
		{"Reader A\x00\x00", []string{"Reader A"}},
		{"Reader A\x00Reader B 01 00\x00\x00", []string{"Reader A", "Reader B 01 00"}},
		{"A\x00B", []string{"A", "B"}},        // no terminator: up to the end
		{"A\x00\x00B\x00\x00", []string{"A"}}, // stops at the empty string
		{"Ünïcödé reader\x00\x00", []string{"Ünïcödé reader"}},
	}
	for _, tt := range tests {
		if got := splitMultiString([]byte(tt.in)); !slices.Equal(got, tt.want) {
			t.Errorf("splitMultiString(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCString(t *testing.T) {
	b, err := cString("Gemalto PC Twin Reader")
	if err != nil || string(b) != "Gemalto PC Twin Reader\x00" {
		t.Fatalf("cString: %q, %v", b, err)
	}
	if _, err := cString("bad\x00name"); !errors.Is(err, errLayout) {
		t.Fatalf("NUL in name: %v", err)
	}
}

func TestMacTimeout(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want uint32
	}{
		{-1, 0xFFFFFFFF},
		{0, 0},
		{999 * time.Microsecond, 0},
		{1500 * time.Millisecond, 1500},
		{time.Duration(0xFFFFFFFF) * time.Millisecond, 0xFFFFFFFE},
		{1 << 62, 0xFFFFFFFE},
	}
	for _, tt := range tests {
		if got := macTimeout(tt.in); got != tt.want {
			t.Errorf("macTimeout(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestMacResultAndText(t *testing.T) {
	// SCARD_W_REMOVED_CARD as the int32 LONG the framework returns.
	if got := macResult(-2146434967); got != codeRemovedCard {
		t.Fatalf("macResult(-2146434967) = 0x%08X", got)
	}
	if got := macResult(0); got != codeSuccess {
		t.Fatalf("macResult(0) = 0x%08X", got)
	}
	if got := errorText(codeRemovedCard); got != "scard: card was removed" {
		t.Errorf("errorText: %q", got)
	}
	if got := errorText(0x80100099); got != "scard: PC/SC error 0x80100099" {
		t.Errorf("errorText of an unnamed code: %q", got)
	}
}

func FuzzMacReaderStateResult(f *testing.F) {
	b := make([]byte, macReaderStateSize)
	_ = putMacReaderState(b, 0x1000, flagPresent, []byte{0x3B, 0x00})
	f.Add(b)
	f.Add([]byte("Reader A\x00Reader B\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, atr, err := macReaderStateResult(b)
		if err != nil {
			return
		}
		if len(atr) > macMaxATR || ev != binary.LittleEndian.Uint32(b[macRSEventState:]) {
			t.Fatalf("event 0x%08X, ATR of %d bytes", ev, len(atr))
		}
		for _, s := range splitMultiString(b) {
			if s == "" || bytes.IndexByte([]byte(s), 0) >= 0 {
				t.Fatalf("multi-string part %q", s)
			}
		}
	})
}
