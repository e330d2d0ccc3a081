package pcsc

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// selectCard is a tiny in-process card: it answers SELECT by name for the
// AIDs it has (with the status word given), 6A82 for the others, and
// records every APDU it was sent.
type selectCard struct {
	apps map[string][]byte // AID (upper hex) -> response
	// rejectP2_0C answers 6A86 to SELECT with P2=0C, as some cards do.
	rejectP2_0C bool
	// fail makes every APDU fail with this transport error.
	fail error
	sent [][]byte
}

func (c *selectCard) Transmit(cmd []byte) ([]byte, error) {
	c.sent = append(c.sent, append([]byte(nil), cmd...))
	if c.fail != nil {
		return nil, c.fail
	}
	if len(cmd) < 4 {
		return []byte{0x67, 0x00}, nil
	}
	switch cmd[1] {
	case 0xA4:
	case 0xC0: // GET RESPONSE after 61xx
		return []byte{0x6F, 0x00, 0x90, 0x00}, nil
	default:
		return []byte{0x6D, 0x00}, nil
	}
	if cmd[2] != 0x04 || len(cmd) < 5 || len(cmd) < 5+int(cmd[4]) {
		return []byte{0x6A, 0x86}, nil
	}
	if cmd[3] == 0x0C && c.rejectP2_0C {
		return []byte{0x6A, 0x86}, nil
	}
	aid := aidHex(cmd[5 : 5+int(cmd[4])])
	if resp, ok := c.apps[aid]; ok {
		return resp, nil
	}
	return []byte{0x6A, 0x82}, nil
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestIdentify(t *testing.T) {
	var (
		anyATR      = []byte{0x3B, 0x80, 0x80, 0x01, 0x01}
		idemiaATR   = mustHex("3B D6 97 00 81 B1 FE 45 1F 87 80 31 C1 52 41 1A 2B")
		oberthurATR = mustHex("3B 7D 18 00 00 00 31 80 71 8E 64 77 E3 01 00 82 90 00")
		jcopATR     = mustHex("3B F9 18 00 00 81 31 FE 45 4A 43 4F 50 34 31 56 32 32 AF")
		pivHex      = "A000000308000010000100"
		authentic   = "A000000077010303000000F100000002"
		iasECC      = "A000000077010800070000FE00000100"
	)
	cases := []struct {
		name     string
		atr      []byte
		card     *selectCard
		want     IdentifyResult
		wantErr  error
		maxAPDUs int
	}{
		{
			name: "PIV",
			atr:  idemiaATR,
			card: &selectCard{apps: map[string][]byte{pivHex: {0x61, 0x11, 0x4F, 0x06, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00, 0x90, 0x00}}},
			want: IdentifyResult{Kind: KindPIV, Applet: pivHex, Name: "PIV card"},
		},
		{
			name: "PIV with GET RESPONSE",
			atr:  anyATR,
			card: &selectCard{apps: map[string][]byte{pivHex: {0x61, 0x02}}},
			want: IdentifyResult{Kind: KindPIV, Applet: pivHex, Name: "PIV card"},
		},
		{
			name: "series 8 AuthentIC",
			atr:  oberthurATR,
			card: &selectCard{apps: map[string][]byte{authentic: {0x90, 0x00}}},
			want: IdentifyResult{Kind: KindSeries8, Applet: authentic, Name: "NHS series 8 (Oberthur)"},
		},
		{
			name: "series 8 IAS-ECC rejecting P2=0C",
			atr:  anyATR,
			card: &selectCard{apps: map[string][]byte{iasECC: {0x90, 0x00}}, rejectP2_0C: true},
			want: IdentifyResult{Kind: KindSeries8, Applet: iasECC, Name: "NHS series 8 (Oberthur)"},
		},
		{
			name: "series 8 ATR, no known applet",
			atr:  oberthurATR,
			card: &selectCard{},
			want: IdentifyResult{Kind: KindSeries8, Name: "NHS series 8 (Oberthur)"},
		},
		{
			name: "Idemia ATR without PIV is unknown",
			atr:  idemiaATR,
			card: &selectCard{},
			want: IdentifyResult{Kind: KindUnknown, Name: "unknown card"},
		},
		{
			name: "unknown card",
			atr:  anyATR,
			card: &selectCard{},
			want: IdentifyResult{Kind: KindUnknown, Name: "unknown card"},
		},
		{
			name: "retired JCOP41 needs no APDU",
			atr:  jcopATR,
			card: &selectCard{},
			want: IdentifyResult{Kind: KindRetired, Name: "retired NHS series 5/6 (JCOP41)"}, maxAPDUs: -1,
		},
		{
			name:    "card removed",
			atr:     oberthurATR,
			card:    &selectCard{fail: ErrCardRemoved},
			want:    IdentifyResult{Kind: KindSeries8, Name: "NHS series 8 (Oberthur)"},
			wantErr: ErrCardRemoved,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &LocalSession{T: tc.card, ReaderName: "R", CardATR: tc.atr}
			got, err := Identify(context.Background(), s)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Identify error = %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Identify = %+v, want %+v", got, tc.want)
			}
			if tc.maxAPDUs == -1 && len(tc.card.sent) != 0 {
				t.Errorf("%d APDUs sent, want none", len(tc.card.sent))
			}
			assertOnlySelect(t, tc.card.sent)
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		card := &selectCard{}
		_, err := Identify(ctx, &LocalSession{T: card, CardATR: anyATR})
		if err == nil || len(card.sent) != 0 {
			t.Errorf("Identify on a cancelled context = %v after %d APDUs", err, len(card.sent))
		}
	})
}

// assertOnlySelect fails unless every APDU is a SELECT by name or a GET
// RESPONSE: identification must never verify a PIN or write.
func assertOnlySelect(t *testing.T, sent [][]byte) {
	t.Helper()
	for _, cmd := range sent {
		if len(cmd) < 4 || cmd[0] != 0x00 || !(cmd[1] == 0xA4 && cmd[2] == 0x04 || cmd[1] == 0xC0) {
			t.Errorf("identification sent % X: only SELECT by name and GET RESPONSE are allowed", cmd)
		}
	}
}

// scriptCard answers APDUs with successive chunks of a fuzzer's input.
type scriptCard struct {
	data []byte
	sent [][]byte
}

func (c *scriptCard) Transmit(cmd []byte) ([]byte, error) {
	c.sent = append(c.sent, append([]byte(nil), cmd...))
	if len(c.sent) > 100 {
		return nil, errors.New("too many APDUs")
	}
	if len(c.data) == 0 {
		return []byte{0x6A, 0x82}, nil
	}
	n := int(c.data[0]) % 24
	c.data = c.data[1:]
	n = min(n, len(c.data))
	resp := c.data[:n]
	c.data = c.data[n:]
	return bytes.Clone(resp), nil
}

// FuzzIdentify feeds arbitrary card answers to Identify: it must not panic,
// must stop, and must never send anything but SELECT / GET RESPONSE.
func FuzzIdentify(f *testing.F) {
	f.Add([]byte{2, 0x90, 0x00})
	f.Add([]byte{2, 0x61, 0x05, 7, 1, 2, 3, 4, 5, 0x90, 0x00})
	f.Add([]byte{2, 0x6A, 0x86, 2, 0x6A, 0x82, 2, 0x90, 0x00})
	f.Add([]byte{0, 1, 0x61})
	f.Fuzz(func(t *testing.T, data []byte) {
		card := &scriptCard{data: data}
		res, _ := Identify(context.Background(), &LocalSession{T: card, CardATR: []byte{0x3B, 0x00}})
		if res.Kind == "" || res.Name == "" {
			t.Errorf("empty result %+v", res)
		}
		assertOnlySelect(t, card.sent)
	})
}
