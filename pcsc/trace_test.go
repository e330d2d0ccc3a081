package pcsc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// traceMarker is a PIN that must never show up in a trace (letters too, as
// older NHS PINs may have them).
const traceMarker = "Zq7Xw9k2"

// markerForms are the ways the marker could appear in a trace.
func markerForms(secret []byte) []string {
	h := hex.EncodeToString(secret)
	sp := HexString(secret)
	return []string{string(secret), h, strings.ToUpper(h), sp, strings.ToLower(sp)}
}

// echoTransmitter answers every command with a fixed response.
type echoTransmitter struct {
	resp []byte
	err  error
	got  [][]byte
}

func (e *echoTransmitter) Transmit(cmd []byte) ([]byte, error) {
	e.got = append(e.got, bytes.Clone(cmd))
	return e.resp, e.err
}

func padWith(b []byte, n int, pad byte) []byte {
	out := bytes.Repeat([]byte{pad}, n)
	copy(out, b)
	return out
}

func apdu(hdr string, data []byte, le ...byte) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(hdr, " ", ""))
	if err != nil {
		panic(err)
	}
	if len(data) > 0 {
		b = append(b, byte(len(data)))
		b = append(b, data...)
	}
	return append(b, le...)
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// TestTraceRedaction checks, for every PIN- or key-bearing command format of
// PIV and series 8, that the trace shows the header and lengths but never
// the secret.
func TestTraceRedaction(t *testing.T) {
	m := []byte(traceMarker)
	piv8 := padWith(m, 8, 0xFF)
	s8 := padWith(m, 64, 0xFF)
	puk16 := padWith(cat(m, m), 16, 0xFF)
	mgmt := cat(m, m, m) // a 24-byte "management key"
	extended := cat([]byte{0x00, 0x20, 0x00, 0x81, 0x00, 0x00, 0x40}, s8)
	for _, tc := range []struct {
		name string
		cmd  []byte
		want string
	}{
		{"PIV VERIFY", apdu("00 20 00 80", piv8), "00 20 00 80 08 <redacted 8 bytes>"},
		{"PIV CHANGE REFERENCE DATA", apdu("00 24 00 80", cat(piv8, piv8)), "00 24 00 80 10 <redacted 16 bytes>"},
		{"PIV RESET RETRY COUNTER", apdu("00 2C 00 80", cat(piv8, piv8)), "00 2C 00 80 10 <redacted 16 bytes>"},
		{"PIV management key witness", apdu("00 87 03 9B", cat([]byte{0x7C, 0x0A, 0x80, 0x08}, m), 0x00), "00 87 03 9B 0C <redacted 12 bytes> 00"},
		{"YubiKey SET MANAGEMENT KEY", apdu("00 FF FF FF", cat([]byte{0x03, 0x9B, 0x18}, mgmt)), "00 FF FF FF 1B <redacted 27 bytes>"},
		{"PUT DATA printed information", apdu("00 DB 3F FF", cat(printedInfo, []byte{0x53, 0x08}, m)), "00 DB 3F FF 0F <redacted 15 bytes>"},
		{"series 8 VERIFY", apdu("00 20 00 81", s8), "00 20 00 81 40 <redacted 64 bytes>"},
		{"series 8 CHANGE", apdu("00 24 00 81", cat(s8, s8)), "00 24 00 81 80 <redacted 128 bytes>"},
		{"series 8 unblock", apdu("00 2C 00 01", cat(puk16, s8)), "00 2C 00 01 50 <redacted 80 bytes>"},
		{"chained VERIFY", apdu("10 20 00 81", s8), "10 20 00 81 40 <redacted 64 bytes>"},
		{"VERIFY with BER-TLV data (21)", apdu("00 21 00 81", cat([]byte{0x5F, 0x2E, 0x08}, piv8)), "00 21 00 81 0B <redacted 11 bytes>"},
		{"extended VERIFY", extended, "00 20 00 81 00 00 40 <redacted 64 bytes>"},
		{"malformed VERIFY", cat([]byte{0x00, 0x20, 0x00, 0x81, 0x30}, s8), "00 20 00 81 <redacted 65 bytes>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tr := NewTracer(&echoTransmitter{resp: []byte{0x90, 0x00}}, &buf)
			if _, err := tr.Transmit(tc.cmd); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if !strings.Contains(out, "> "+tc.want+"\n") {
				t.Errorf("trace:\n%s\nwant the command as %q", out, tc.want)
			}
			for _, f := range markerForms(m) {
				if strings.Contains(out, f) {
					t.Errorf("trace contains the secret as %q:\n%s", f, out)
				}
			}
		})
	}
}

// TestTraceClear checks that non-secret commands and answers are traced in
// full, with timestamps and the response time.
func TestTraceClear(t *testing.T) {
	var buf bytes.Buffer
	sig := bytes.Repeat([]byte{0xAB}, 256)
	tr := NewTracer(&echoTransmitter{resp: cat(sig, []byte{0x90, 0x00})}, &buf)
	clock := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	tr.now = func() time.Time { clock = clock.Add(1500 * time.Microsecond); return clock }
	pso := apdu("00 2A 9E 9A", []byte{0x30, 0x31, 0x30, 0x0D}, 0x00)
	resp, err := tr.Transmit(pso)
	if err != nil || !bytes.Equal(resp[:256], sig) {
		t.Fatalf("Transmit: % X, %v", resp, err)
	}
	tr.Note("applet %s", "AuthentIC")
	want := "15:04:05.001500 > 00 2A 9E 9A 04 30 31 30 0D 00\n" +
		"15:04:05.003000 < " + HexString(cat(sig, []byte{0x90, 0x00})) + " [1.50 ms]\n" +
		"# applet AuthentIC\n"
	if got := buf.String(); got != want {
		t.Errorf("trace:\n%s\nwant:\n%s", got, want)
	}
	// Empty VERIFY (PIN status) and GENERAL AUTHENTICATE on other keys are not secret.
	for _, cmd := range [][]byte{apdu("00 20 00 81", nil), apdu("00 87 07 9A", []byte{0x7C, 0x03, 0x82, 0x01, 0x00}, 0x00)} {
		if got := FormatCommand(cmd); got != HexString(cmd) {
			t.Errorf("FormatCommand(% X) = %q", cmd, got)
		}
	}
}

// TestTraceRedactsResponses: the printed-information object may hold a
// management key; its answer (and GET RESPONSE continuations) is redacted.
func TestTraceRedactsResponses(t *testing.T) {
	m := []byte(traceMarker)
	var buf bytes.Buffer
	card := &echoTransmitter{resp: cat([]byte{0x53, 0x08}, m, []byte{0x61, 0x10})}
	tr := NewTracer(card, &buf)
	tr.Transmit(apdu("00 CB 3F FF", printedInfo, 0x00))
	card.resp = cat(m, []byte{0x90, 0x00})
	tr.Transmit(apdu("00 C0 00 00", nil, 0x10))
	tr.Transmit(apdu("00 CB 3F FF", []byte{0x5C, 0x03, 0x5F, 0xC1, 0x02}, 0x00)) // CHUID: not secret
	out := buf.String()
	for _, f := range markerForms(m) {
		if strings.Count(out, f) > 1 { // only the CHUID answer shows it
			t.Errorf("trace contains the secret as %q:\n%s", f, out)
		}
	}
	if n := strings.Count(out, "< <redacted 10 bytes> 61 10") + strings.Count(out, "< <redacted 8 bytes> 90 00"); n != 2 {
		t.Errorf("trace:\n%s\nwant both parts of the answer redacted", out)
	}
}

func TestTraceTransportError(t *testing.T) {
	var buf bytes.Buffer
	tr := NewTracer(&echoTransmitter{err: ErrCardRemoved}, &buf)
	_, err := tr.Transmit(apdu("00 A4 00 00", []byte{0x3F, 0x00}, 0x00))
	if !errors.Is(err, ErrCardRemoved) {
		t.Fatalf("Transmit: %v", err)
	}
	if !regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{6} < error: card removed \[\d+\.\d\d ms\]$`).MatchString(buf.String()) {
		t.Errorf("trace:\n%s", buf.String())
	}
}

// TestTraceExchange: a tracer under Exchange sees the chained parts of a
// long VERIFY redacted too.
func TestTraceExchange(t *testing.T) {
	secret := bytes.Repeat([]byte(traceMarker), 40) // 320 bytes: chained
	var buf bytes.Buffer
	card := &echoTransmitter{resp: []byte{0x90, 0x00}}
	if _, err := Exchange(NewTracer(card, &buf), Command{INS: 0x20, P2: 0x81, Data: secret, Le: -1}); err != nil {
		t.Fatal(err)
	}
	if len(card.got) != 2 {
		t.Fatalf("%d APDUs, want 2", len(card.got))
	}
	out := buf.String()
	if !strings.Contains(out, "> 10 20 00 81 FF <redacted 255 bytes>") || !strings.Contains(out, "> 00 20 00 81 41 <redacted 65 bytes>") {
		t.Errorf("trace:\n%s", out)
	}
	for _, f := range markerForms([]byte(traceMarker)) {
		if strings.Contains(out, f) {
			t.Errorf("trace contains %q", f)
		}
	}
}

// FuzzFormatCommand: whatever the command, a secret command's data never reaches the text.
func FuzzFormatCommand(f *testing.F) {
	f.Add(apdu("00 20 00 80", padWith([]byte(traceMarker), 8, 0xFF)))
	f.Add([]byte{0x00, 0x2C, 0x00, 0x01, 0x00, 0x00})
	f.Add([]byte{0x00, 0x87, 0x03, 0x9B, 0x00})
	f.Add([]byte{0x00, 0xA4})
	f.Fuzz(func(t *testing.T, cmd []byte) {
		s := FormatCommand(cmd)
		if len(cmd) > 4 && secretCommand(cmd) {
			if !strings.Contains(s, "<redacted ") {
				t.Fatalf("secret command % X formatted as %q", cmd, s)
			}
			// Nothing beyond header + Lc (+ Le) may be shown: at most 4+3+2 hex bytes.
			if n := len(strings.Fields(strings.Split(s, "<")[0])); n > 7 {
				t.Fatalf("secret command % X shows %d bytes before the redaction: %q", cmd, n, s)
			}
		} else if s != HexString(cmd) {
			t.Fatalf("FormatCommand(% X) = %q", cmd, s)
		}
	})
}
