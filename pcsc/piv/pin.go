package piv

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

// PIN and PUK lengths (SP 800-73-4 Part 2, 2.4.3): the PIN is 6 to 8
// characters, sent padded with FF to 8 bytes; the PUK is 8 bytes (cards
// issued with a shorter one take it FF-padded too).
const (
	pinMinLen = 6
	pinMaxLen = 8
)

// padPIN checks a PIN's format locally (6-8 printable ASCII characters: NHS
// PINs are digits today, older ones may hold letters) and returns it padded
// with FF to 8 bytes. A PIN the card could never accept gives
// pcsc.ErrPINFormat, so a typo never costs a try. The caller zeroes the result.
func padPIN(pin []byte) ([]byte, error) {
	if len(pin) < pinMinLen || len(pin) > pinMaxLen {
		return nil, fmt.Errorf("%w: a PIN has %d to %d characters", pcsc.ErrPINFormat, pinMinLen, pinMaxLen)
	}
	for _, c := range pin {
		if c < 0x21 || c > 0x7E {
			return nil, fmt.Errorf("%w: a PIN holds only letters, digits and punctuation", pcsc.ErrPINFormat)
		}
	}
	return pcsc.PadSecret(pin, 8), nil
}

// padPUK checks a PUK's length (6 to 8 bytes, any value) and pads it with FF to 8 bytes.
func padPUK(puk []byte) ([]byte, error) {
	if len(puk) < pinMinLen || len(puk) > pinMaxLen {
		return nil, fmt.Errorf("%w: a PUK has %d to %d characters", pcsc.ErrPINFormat, pinMinLen, pinMaxLen)
	}
	return pcsc.PadSecret(puk, 8), nil
}

// verifyPIN sends VERIFY with the padded PIN. It is sent exactly once.
func verifyPIN(t pcsc.Transmitter, padded []byte) error {
	sw, err := pcsc.TransmitSecret(t, insVerify, 0x00, keyRefPIVPIN, padded)
	if err != nil {
		return fmt.Errorf("verifying PIN: %w", err)
	}
	return pcsc.AuthStatus(sw, false)
}

// resetPIN ends the PIN's verified state (VERIFY with P1=FF, SP 800-73-4 Part 2,
// 3.2.1), so a PIN we verified does not linger for other programs.
func (c *Card) resetPIN(t pcsc.Transmitter) error {
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insVerify, P1: verifyResetP1, P2: keyRefPIVPIN, Le: -1})
	if err != nil {
		return err
	}
	if !resp.OK() {
		c.log.Debug("card did not reset the PIN's security status", zap.Stringer("sw", swString(resp.SW)))
	}
	return nil
}

// PINStatus reads the PIN's state with an empty VERIFY (00 20 00 80), which
// spends no try: 9000 means verified, 63Cx gives the tries left, 6983 blocked.
func (c *Card) PINStatus(ctx context.Context) (pcsc.PINStatus, error) {
	st := pcsc.PINStatus{Retries: -1, MinLen: pinMinLen, MaxLen: pinMaxLen}
	err := c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := reselect(t); err != nil {
			return err
		}
		resp, err := pcsc.Exchange(t, pcsc.Command{INS: insVerify, P2: keyRefPIVPIN, Le: -1})
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

// ChangePIN changes the PIV PIN with CHANGE REFERENCE DATA (00 24 00 80, old
// and new PIN each padded to 8 bytes). Both PINs are format-checked first. A
// wrong old PIN is a *pcsc.AuthError; the PIN is never sent twice. The PIN's
// verified state is reset afterwards.
func (c *Card) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	oldP, err := padPIN(oldPIN)
	if err != nil {
		return fmt.Errorf("changing PIN: current PIN: %w", err)
	}
	defer pcsc.Zero(oldP)
	newP, err := padPIN(newPIN)
	if err != nil {
		return fmt.Errorf("changing PIN: new PIN: %w", err)
	}
	defer pcsc.Zero(newP)
	err = c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := reselect(t); err != nil {
			return err
		}
		sw, err := pcsc.TransmitSecret(t, insChangeRef, 0x00, keyRefPIVPIN, oldP, newP)
		if err != nil {
			return err
		}
		if sw == 0x6A80 {
			return fmt.Errorf("%w: the card refused the new PIN (%w)", pcsc.ErrPINFormat, &pcsc.StatusError{SW: sw})
		}
		if err := pcsc.AuthStatus(sw, false); err != nil {
			return err
		}
		return c.resetPIN(t)
	})
	if err != nil {
		return fmt.Errorf("changing PIN: %w", err)
	}
	c.log.Info("PIN changed")
	return nil
}

// UnblockPIN sets a new PIN with the PUK (RESET RETRY COUNTER, 00 2C 00 80,
// PUK and new PIN each padded to 8 bytes), which also resets the PIN's retry
// counter. A wrong PUK is a *pcsc.AuthError with PUK set; a blocked PUK is
// pcsc.ErrPUKBlocked.
func (c *Card) UnblockPIN(ctx context.Context, puk, newPIN []byte) error {
	pukP, err := padPUK(puk)
	if err != nil {
		return fmt.Errorf("unblocking PIN: PUK: %w", err)
	}
	defer pcsc.Zero(pukP)
	newP, err := padPIN(newPIN)
	if err != nil {
		return fmt.Errorf("unblocking PIN: new PIN: %w", err)
	}
	defer pcsc.Zero(newP)
	err = c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := reselect(t); err != nil {
			return err
		}
		sw, err := pcsc.TransmitSecret(t, insResetRetry, 0x00, keyRefPIVPIN, pukP, newP)
		if err != nil {
			return err
		}
		if sw == 0x6A80 {
			return fmt.Errorf("%w: the card refused the new PIN (%w)", pcsc.ErrPINFormat, &pcsc.StatusError{SW: sw})
		}
		return pcsc.AuthStatus(sw, true)
	})
	if err != nil {
		return fmt.Errorf("unblocking PIN: %w", err)
	}
	c.log.Info("PIN unblocked")
	return nil
}

type swString uint16

func (s swString) String() string { return fmt.Sprintf("%04X", uint16(s)) }
