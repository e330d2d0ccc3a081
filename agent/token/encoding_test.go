package token_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cardagent/cardagent/agent/token"
)

func TestDecodeBinary(t *testing.T) {
	tests := []struct {
		in   string
		want []byte // nil: refused
	}{
		{"", []byte{}},
		{"AQID", []byte{1, 2, 3}},
		{"-_8", []byte{0xfb, 0xff}},
		{"AQI", []byte{1, 2}},
		{"AQI=", nil},     // padding
		{"+/8", nil},      // standard alphabet
		{"AQ\r\nID", nil}, // CR LF: Go's decoder would skip them
		{"AQ\nID", nil},   // LF alone
		{"AQ ID", nil},    // space
		{"AQJ", nil},      // non-zero trailing bits
		{"A", nil},        // impossible length
		{"AQID\x00", nil}, // NUL
		{"AQIDé", nil},    // not ASCII
	}
	for _, tt := range tests {
		got, err := token.DecodeBinary(tt.in)
		if tt.want == nil {
			if !errors.Is(err, token.ErrEncoding) {
				t.Errorf("DecodeBinary(%q) = %x, %v; want ErrEncoding", tt.in, got, err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("DecodeBinary(%q) = %x, %v; want %x", tt.in, got, err, tt.want)
		}
	}
}

func TestBinaryJSON(t *testing.T) {
	b, err := json.Marshal(struct{ V token.Binary }{token.Binary{0xfb, 0xff, 0xfe}})
	if err != nil || string(b) != `{"V":"-__-"}` {
		t.Errorf("marshal: %s, %v", b, err)
	}
	var v struct{ V token.Binary }
	if err := json.Unmarshal([]byte(`{"V":"-__-"}`), &v); err != nil || !bytes.Equal(v.V, []byte{0xfb, 0xff, 0xfe}) {
		t.Errorf("unmarshal: %x, %v", v.V, err)
	}
	if err := json.Unmarshal([]byte(`{"V":"+//+"}`), &v); err == nil {
		t.Error("standard base64 accepted")
	}
}
