package series8

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

// checkPIN checks a PIN's format locally (minLen to maxLen printable ASCII
// characters: NHS PINs are digits today, older ones may hold letters) and
// returns it padded with FF to 64 bytes. A PIN the card could never accept
// gives pcsc.ErrPINFormat, so a typo never costs a try. The caller zeroes
// the result.
func (c *Card) checkPIN(pin []byte) ([]byte, error) {
	if len(pin) < c.opts.minPIN || len(pin) > c.opts.maxPIN {
		return nil, fmt.Errorf("%w: a PIN has %d to %d characters", pcsc.ErrPINFormat, c.opts.minPIN, c.opts.maxPIN)
	}
	for _, ch := range pin {
		if ch < 0x21 || ch > 0x7E {
			return nil, fmt.Errorf("%w: a PIN holds only letters, digits and punctuation", pcsc.ErrPINFormat)
		}
	}
	return pcsc.PadSecret(pin, pinPadLen), nil
}

// checkPUK checks the PUK: exactly 16 characters (a hypothesis: no public
// source says what NHS series 8 PUKs look like; 16 bytes is the AWP unblock
// code's size and OpenSC's PUK limit) and returns it padded with FF to 64
// bytes, the form the card's SO PIN 84 is verified with. A PUK of another
// length gives pcsc.ErrPINFormat without spending a try. The caller zeroes
// the result.
func checkPUK(puk []byte) ([]byte, error) {
	if len(puk) != pukPadLen {
		return nil, fmt.Errorf("%w: a PUK has %d characters", pcsc.ErrPINFormat, pukPadLen)
	}
	return pcsc.PadSecret(puk, pinPadLen), nil
}

// verifyPIN sends VERIFY 00 20 00 81 with the padded PIN. It is sent exactly once.
func verifyPIN(t pcsc.Transmitter, padded []byte) error {
	sw, err := pcsc.TransmitSecret(t, insVerify, 0x00, pinRef, padded)
	if err != nil {
		return fmt.Errorf("verifying PIN: %w", err)
	}
	return pcsc.AuthStatus(sw, false)
}

// logout ends the PIN's verified state (80 2E 00 21), so a PIN we verified
// does not linger for other programs. A card that refuses is logged, not
// an error: the operation itself succeeded.
func (c *Card) logout(t pcsc.Transmitter) error {
	resp, err := pcsc.Exchange(t, pcsc.Command{CLA: 0x80, INS: insLogout, P2: 0x21, Le: -1})
	if err != nil {
		return fmt.Errorf("logging out: %w", err)
	}
	if !resp.OK() {
		c.log.Warn("card refused logout; the PIN may stay verified until the card is reset", zap.Stringer("sw", swString(resp.SW)))
	}
	return nil
}

// PINStatus reads the user PIN's state with an empty VERIFY (00 20 00 81),
// which spends no try: 9000 means verified, 63Cx gives the tries left, 63C0
// or 6983 blocked.
func (c *Card) PINStatus(ctx context.Context) (pcsc.PINStatus, error) {
	st := pcsc.PINStatus{Retries: -1, MinLen: c.opts.minPIN, MaxLen: c.opts.maxPIN}
	err := c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := c.begin(t); err != nil {
			return err
		}
		resp, err := pcsc.Exchange(t, pcsc.Command{INS: insVerify, P2: pinRef, Le: -1})
		if err != nil {
			return err
		}
		return st.SetFromVerify(resp.SW)
	})
	if err != nil {
		return pcsc.PINStatus{}, fmt.Errorf("reading PIN status: %w", err)
	}
	return st, nil
}

// ChangePIN changes the user PIN with CHANGE REFERENCE DATA 00 24 00 01 80
// (old and new PIN each padded with FF to 64 bytes; the PIN named 01,
// without the local bit, as OpenSC sends it). Both PINs are format-checked
// first. A wrong old PIN is a *pcsc.AuthError; the PIN is never sent twice.
// The driver logs out afterwards. oldPIN and newPIN are not modified; the
// driver's padded copies are zeroed.
func (c *Card) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	oldP, err := c.checkPIN(oldPIN)
	if err != nil {
		return fmt.Errorf("changing PIN: current PIN: %w", err)
	}
	defer pcsc.Zero(oldP)
	newP, err := c.checkPIN(newPIN)
	if err != nil {
		return fmt.Errorf("changing PIN: new PIN: %w", err)
	}
	defer pcsc.Zero(newP)
	err = c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := c.begin(t); err != nil {
			return err
		}
		sw, err := pcsc.TransmitSecret(t, insChangeRef, 0x00, pinRefChange, oldP, newP)
		if err != nil {
			return err
		}
		if err := pcsc.AuthStatus(sw, false); err != nil {
			return err
		}
		return c.logout(t)
	})
	if err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	c.log.Info("PIN changed")
	return nil
}

// UnblockPIN sets a new PIN with the PUK the way OpenSC's oberthur driver
// does (card-oberthur.c, auth_pin_reset_oberthur_style): VERIFY the local
// SO PIN 84 with the PUK padded with FF to 64 bytes; SELECT the PUK file
// 2000 in DF 5011 and READ BINARY its 16-byte unblock code; RESET RETRY
// COUNTER 00 2C 00 01 50 with the code and the new PIN padded with FF to 64
// bytes, which also resets the PIN's retry counter. It then ends the SO
// PIN's verified state (80 2E 00 24). A wrong PUK is a *pcsc.AuthError with
// PUK set; a blocked PUK is pcsc.ErrPUKBlocked. The PUK, the unblock code
// and the new PIN are zeroed after use.
func (c *Card) UnblockPIN(ctx context.Context, puk, newPIN []byte) error {
	pukP, err := checkPUK(puk)
	if err != nil {
		return fmt.Errorf("unblocking PIN: PUK: %w", err)
	}
	defer pcsc.Zero(pukP)
	newP, err := c.checkPIN(newPIN)
	if err != nil {
		return fmt.Errorf("unblocking PIN: new PIN: %w", err)
	}
	defer pcsc.Zero(newP)
	err = c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := c.begin(t); err != nil {
			return err
		}
		sw, err := pcsc.TransmitSecret(t, insVerify, 0x00, soPINRef, pukP)
		if err != nil {
			return err
		}
		pcsc.Zero(pukP)
		if err := pcsc.AuthStatus(sw, true); err != nil {
			return err
		}
		err = c.resetRetryCounter(t, newP)
		if isTransport(err) {
			return err
		}
		if lerr := c.logoutSO(t); err == nil {
			err = lerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("unblocking PIN: %w", err)
	}
	c.log.Info("PIN unblocked")
	return nil
}

// resetRetryCounter reads the unblock code from file 2000 (the SO PIN is
// verified, DF 5011 selected) and sends RESET RETRY COUNTER with it and the
// padded new PIN.
func (c *Card) resetRetryCounter(t pcsc.Transmitter, newP []byte) error {
	f, err := selectFID(t, fidPUKFile)
	if err != nil {
		return fmt.Errorf("PUK file: %w", err)
	}
	if f.Type != typeTransparent || f.Size < pukPadLen {
		return fmt.Errorf("%w: PUK file 2000 of type %02X and %d bytes", errMalformed, f.Type, f.Size)
	}
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insReadBinary, Le: pukPadLen})
	if err != nil {
		return err
	}
	defer pcsc.Zero(resp.Data)
	if !resp.OK() {
		return fmt.Errorf("reading PUK file: %w", resp.Err())
	}
	if len(resp.Data) != pukPadLen {
		return fmt.Errorf("%w: PUK file gave %d bytes", errMalformed, len(resp.Data))
	}
	sw, err := pcsc.TransmitSecret(t, insUnblock, 0x00, pinRefChange, resp.Data, newP)
	if err != nil {
		return err
	}
	return pcsc.AuthStatus(sw, false)
}

// logoutSO ends the SO PIN's verified state (80 2E 00 24), so the unblock
// code stays unreadable for other programs. A card that refuses is logged,
// not an error.
func (c *Card) logoutSO(t pcsc.Transmitter) error {
	resp, err := pcsc.Exchange(t, pcsc.Command{CLA: 0x80, INS: insLogout, P2: 0x24, Le: -1})
	if err != nil {
		return fmt.Errorf("logging out the PUK: %w", err)
	}
	if !resp.OK() {
		c.log.Warn("card refused to log out the PUK; it may stay verified until the card is reset", zap.Stringer("sw", swString(resp.SW)))
	}
	return nil
}
