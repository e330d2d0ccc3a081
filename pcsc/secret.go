package pcsc

import "fmt"

// PadSecret returns a new n-byte buffer holding b padded with 0xFF, the PIN
// and PUK format of PIV (n = 8) and Oberthur AuthentIC (n = 64). b must not
// be longer than n. The caller zeroes both buffers after use.
func PadSecret(b []byte, n int) []byte {
	out := make([]byte, n)
	k := copy(out, b)
	for i := k; i < n; i++ {
		out[i] = 0xFF
	}
	return out
}

// Zero overwrites secret buffers.
func Zero(bs ...[]byte) {
	for _, b := range bs {
		clear(b)
	}
}

// TransmitSecret sends a short command APDU (CLA 00) carrying a secret (PIN,
// PUK) in a buffer of its own, which it zeroes afterwards: Exchange would copy
// the secret into an encoding buffer nobody clears. Such commands never need
// chaining or GET RESPONSE: their answer is a bare status word, returned here.
//
// It never resends: a transport error is returned as is, so a PIN is never
// submitted twice.
func TransmitSecret(t Transmitter, ins, p1, p2 byte, data ...[]byte) (uint16, error) {
	n := 0
	for _, d := range data {
		n += len(d)
	}
	raw := make([]byte, 0, 5+n)
	raw = append(raw, 0x00, ins, p1, p2, byte(n))
	for _, d := range data {
		raw = append(raw, d...)
	}
	defer Zero(raw)
	resp, err := t.Transmit(raw)
	if err != nil {
		return 0, err
	}
	r, err := ParseResponse(resp)
	if err != nil {
		return 0, err
	}
	return r.SW, nil
}

// AuthStatus maps the status word of a command that checked the PIN (puk
// false) or the PUK: 9000 is nil; 63Cx a wrong secret with x tries left
// (*AuthError); 6983 blocked; 6700/6A80 a length or character the card
// refused, before counting a try (ErrPINFormat); anything else a *StatusError.
func AuthStatus(sw uint16, puk bool) error {
	switch {
	case sw == 0x9000:
		return nil
	case sw&0xFFF0 == 0x63C0:
		return &AuthError{Retries: int(sw & 0x0F), PUK: puk}
	case sw == 0x6983:
		if puk {
			return ErrPUKBlocked
		}
		return ErrPINBlocked
	case sw == 0x6700 || sw == 0x6A80:
		return fmt.Errorf("%w: the card refused the length or characters (%w)", ErrPINFormat, &StatusError{SW: sw})
	}
	return &StatusError{SW: sw}
}

// SetFromVerify fills st from the answer to an empty VERIFY (no data), which
// spends no try: 9000 means verified, 63Cx x tries left (63C0 blocked), 6983
// blocked. Any other status word is returned as a *StatusError.
func (st *PINStatus) SetFromVerify(sw uint16) error {
	switch {
	case sw == 0x9000:
		st.Verified = true
	case sw&0xFFF0 == 0x63C0:
		st.Retries = int(sw & 0x0F)
		st.Blocked = st.Retries == 0
	case sw == 0x6983:
		st.Retries, st.Blocked = 0, true
	default:
		return &StatusError{SW: sw}
	}
	return nil
}
