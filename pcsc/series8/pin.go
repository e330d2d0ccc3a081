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

// checkPUK checks the PUK: exactly 16 bytes, the size of the AWP unblock
// code (a hypothesis: OpenSC pads shorter codes with FF to 16 bytes, but no
// public source says what NHS series 8 PUKs look like). A PUK of another
// length gives pcsc.ErrPINFormat without spending a try.
func checkPUK(puk []byte) ([]byte, error) {
	if len(puk) != pukPadLen {
		return nil, fmt.Errorf("%w: a PUK has %d characters", pcsc.ErrPINFormat, pukPadLen)
	}
	return pcsc.PadSecret(puk, pukPadLen), nil
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

// ChangePIN changes the user PIN with CHANGE REFERENCE DATA (00 24 00 81 80,
// old and new PIN each padded with FF to 64 bytes). Both PINs are
// format-checked first. A wrong old PIN is a *pcsc.AuthError; the PIN is
// never sent twice. The driver logs out afterwards. oldPIN and newPIN are not
// modified; the driver's padded copies are zeroed.
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
		sw, err := pcsc.TransmitSecret(t, insChangeRef, 0x00, pinRef, oldP, newP)
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

// UnblockPIN sets a new PIN with the PUK (00 2C 00 01 50: the 16-byte PUK,
// then the new PIN padded with FF to 64 bytes), which also resets the PIN's retry
// counter. A wrong PUK is a *pcsc.AuthError with PUK set; a blocked PUK is
// pcsc.ErrPUKBlocked.
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
		sw, err := pcsc.TransmitSecret(t, insUnblock, 0x00, 0x01, pukP, newP)
		if err != nil {
			return err
		}
		return pcsc.AuthStatus(sw, true)
	})
	if err != nil {
		return fmt.Errorf("unblocking PIN: %w", err)
	}
	c.log.Info("PIN unblocked")
	return nil
}
