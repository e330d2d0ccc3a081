package drivers

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/p11"
	"github.com/cardagent/cardagent/pcsc/vcard"
	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
	"github.com/cardagent/cardagent/pcsc/vcard/vpiv"
	"github.com/cardagent/cardagent/pcsc/vcard/vseries8"
)

// mute answers every APDU "instruction not supported", like a card with no applet we know.
type mute struct{ atr []byte }

func (m mute) ATR() []byte                   { return m.atr }
func (mute) Reset()                          {}
func (mute) Transmit([]byte) ([]byte, error) { return []byte{0x6D, 0x00}, nil }
func session(c vcard.Card) *pcsc.LocalSession {
	return &pcsc.LocalSession{T: c, ReaderName: "r", CardATR: c.ATR()}
}

func TestOpen(t *testing.T) {
	pki, err := testpki.New()
	if err != nil {
		t.Fatal(err)
	}
	pivCard, err := vpiv.NewNHS(pki, testpki.CardSpec{})
	if err != nil {
		t.Fatal(err)
	}
	s8Card, err := vseries8.NewNHS(pki, testpki.CardSpec{})
	if err != nil {
		t.Fatal(err)
	}
	jcop := []byte{0x3B, 0xF9, 0x18, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x45, 0x4A, 0x43, 0x4F, 0x50, 0x34, 0x31, 0x56, 0x32, 0x32, 0xAF}
	tests := []struct {
		name       string
		card       vcard.Card
		kind       pcsc.Kind
		driver     string
		unsupports bool
	}{
		{"piv", pivCard, pcsc.KindPIV, "piv", false},
		{"series8", s8Card, pcsc.KindSeries8, "series8", false},
		{"retired", mute{jcop}, pcsc.KindRetired, "", true},
		{"unknown", mute{[]byte{0x3B, 0x80, 0x80, 0x01, 0x01}}, pcsc.KindUnknown, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			card, id, err := Open(context.Background(), zaptest.NewLogger(t), session(tt.card), Options{})
			if id.Kind != tt.kind {
				t.Errorf("kind %q, want %q", id.Kind, tt.kind)
			}
			if tt.unsupports {
				if !errors.Is(err, pcsc.ErrUnsupportedCard) || card != nil {
					t.Errorf("card %v err %v, want ErrUnsupportedCard", card, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer card.Close()
			if got := card.Info().Driver; got != tt.driver {
				t.Errorf("driver %q, want %q", got, tt.driver)
			}
		})
	}
}

func TestUsePKCS11(t *testing.T) {
	tests := []struct {
		opts Options
		kind pcsc.Kind
		want bool
	}{
		{Options{}, pcsc.KindSeries8, false},
		{Options{PKCS11: p11.Config{Module: "/m.so"}}, pcsc.KindSeries8, true},
		{Options{PKCS11: p11.Config{Module: "/m.so"}}, pcsc.KindPIV, false},
		{Options{PKCS11: p11.Config{Module: "/m.so"}, PKCS11Kinds: []pcsc.Kind{pcsc.KindPIV}}, pcsc.KindPIV, true},
		{Options{PKCS11: p11.Config{Module: "/m.so"}, PKCS11Kinds: []pcsc.Kind{pcsc.KindPIV}}, pcsc.KindSeries8, false},
	}
	for _, tt := range tests {
		if got := tt.opts.usePKCS11(tt.kind); got != tt.want {
			t.Errorf("%+v usePKCS11(%s) = %v, want %v", tt.opts, tt.kind, got, tt.want)
		}
	}
}
