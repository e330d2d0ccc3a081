package pcsc

import (
	"bytes"
	"errors"
	"testing"
)

func TestAuthStatus(t *testing.T) {
	tests := []struct {
		sw      uint16
		puk     bool
		is      error
		retries int
	}{
		{0x9000, false, nil, -1},
		{0x63C2, false, nil, 2},
		{0x63C0, false, ErrPINBlocked, 0},
		{0x63C0, true, ErrPUKBlocked, 0},
		{0x6983, false, ErrPINBlocked, -1},
		{0x6983, true, ErrPUKBlocked, -1},
		{0x6A80, false, ErrPINFormat, -1},
		{0x6700, false, ErrPINFormat, -1},
	}
	for _, tt := range tests {
		err := AuthStatus(tt.sw, tt.puk)
		if tt.sw == 0x9000 {
			if err != nil {
				t.Errorf("%04X: %v", tt.sw, err)
			}
			continue
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%04X puk=%v: %v, want %v", tt.sw, tt.puk, err, tt.is)
		}
		var ae *AuthError
		if got := errors.As(err, &ae); got != (tt.retries >= 0) || (got && (ae.Retries != tt.retries || ae.PUK != tt.puk)) {
			t.Errorf("%04X: AuthError %+v, want retries %d", tt.sw, ae, tt.retries)
		}
	}
	var se *StatusError
	if err := AuthStatus(0x6A82, false); !errors.As(err, &se) || se.SW != 0x6A82 {
		t.Errorf("6A82: %v", err)
	}
}

type recordingTransmitter struct {
	sent [][]byte
	buf  []byte
	resp []byte
	err  error
}

func (r *recordingTransmitter) Transmit(cmd []byte) ([]byte, error) {
	r.sent = append(r.sent, append([]byte(nil), cmd...))
	r.buf = cmd
	return r.resp, r.err
}

func TestTransmitSecret(t *testing.T) {
	pin := PadSecret([]byte("123456"), 8)
	if !bytes.Equal(pin, []byte{'1', '2', '3', '4', '5', '6', 0xFF, 0xFF}) {
		t.Fatalf("PadSecret = % X", pin)
	}
	r := &recordingTransmitter{resp: []byte{0x63, 0xC2}}
	sw, err := TransmitSecret(r, 0x20, 0x00, 0x80, pin)
	if err != nil || sw != 0x63C2 {
		t.Fatalf("sw %04X err %v", sw, err)
	}
	want := append([]byte{0x00, 0x20, 0x00, 0x80, 0x08}, pin...)
	if len(r.sent) != 1 || !bytes.Equal(r.sent[0], want) {
		t.Errorf("sent % X, want % X", r.sent, want)
	}
	if !bytes.Equal(r.buf, make([]byte, len(want))) {
		t.Errorf("command buffer not zeroed: % X", r.buf)
	}
	// A transport error is returned, and nothing is sent again.
	r = &recordingTransmitter{err: ErrCardRemoved}
	if _, err := TransmitSecret(r, 0x20, 0x00, 0x80, pin); !errors.Is(err, ErrCardRemoved) || len(r.sent) != 1 {
		t.Errorf("transport error: %v after %d sends", err, len(r.sent))
	}
	Zero(pin)
	if !bytes.Equal(pin, make([]byte, 8)) {
		t.Errorf("Zero left % X", pin)
	}
}

func TestSetFromVerify(t *testing.T) {
	tests := []struct {
		sw   uint16
		want PINStatus
		err  bool
	}{
		{0x9000, PINStatus{Retries: -1, Verified: true}, false},
		{0x63C3, PINStatus{Retries: 3}, false},
		{0x63C0, PINStatus{Retries: 0, Blocked: true}, false},
		{0x6983, PINStatus{Retries: 0, Blocked: true}, false},
		{0x6A82, PINStatus{Retries: -1}, true},
	}
	for _, tt := range tests {
		st := PINStatus{Retries: -1}
		err := st.SetFromVerify(tt.sw)
		if (err != nil) != tt.err || st != tt.want {
			t.Errorf("%04X: %+v, %v; want %+v", tt.sw, st, err, tt.want)
		}
	}
}
