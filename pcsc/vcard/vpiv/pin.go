package vpiv

import "crypto/subtle"

// padPIN pads a PIN to 8 bytes with FF (SP 800-73-4 part 2, 2.4.3).
func padPIN(pin []byte) ([]byte, bool) {
	if len(pin) > 8 {
		return nil, false
	}
	out := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	copy(out, pin)
	return out, true
}

// validPIN reports whether b (8 bytes) is 6 to 8 ASCII digits padded with FF.
func validPIN(b []byte) bool {
	if len(b) != 8 {
		return false
	}
	n := 0
	for n < 8 && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	if n < 6 {
		return false
	}
	for _, x := range b[n:] {
		if x != 0xFF {
			return false
		}
	}
	return true
}

func unpad(b []byte) []byte {
	for i, x := range b {
		if x == 0xFF {
			return b[:i]
		}
	}
	return b
}

// triesStatus answers a wrong PIN or PUK: 63Cx with the tries left, or 6983
// on the try that blocks it, as real PIV cards (and their drivers' users) see
// it. A driver must take both 63C0 and 6983 as "blocked".
func triesStatus(n int) uint16 {
	if n == 0 {
		return swAuthBlocked
	}
	return swVerifyFailed | uint16(min(n, 15))
}

// verify is VERIFY (00 20 P1 80): with data, check the PIN; without data,
// report the status without spending a try; P1=FF resets the security status.
func (c *Card) verify(cmd command) []byte {
	if cmd.p1 != 0x00 && cmd.p1 != 0xFF {
		return status(swWrongP1P2)
	}
	if cmd.p2 != keyPIN {
		// No global PIN (00) on this card, and the PUK (81) cannot be verified.
		return status(swRefDataNotFound)
	}
	if cmd.p1 == 0xFF {
		if len(cmd.data) != 0 {
			return status(swWrongData)
		}
		c.verified, c.pinAlways = false, false
		return status(swOK)
	}
	if len(cmd.data) == 0 {
		switch {
		case c.pinTries == 0:
			return status(swAuthBlocked)
		case c.verified:
			return status(swOK)
		}
		return status(triesStatus(c.pinTries))
	}
	if c.pinTries == 0 {
		return status(swAuthBlocked)
	}
	if !validPIN(cmd.data) {
		return status(swWrongData) // no try spent on a malformed PIN
	}
	if subtle.ConstantTimeCompare(cmd.data, c.pin) != 1 {
		c.pinTries--
		c.verified, c.pinAlways = false, false
		return status(triesStatus(c.pinTries))
	}
	c.pinTries = c.pinRetries
	c.verified, c.pinAlways = true, true
	return status(swOK)
}

// changeReference is CHANGE REFERENCE DATA (00 24 00 80|81): old and new
// value, 8 bytes each.
func (c *Card) changeReference(cmd command) []byte {
	if cmd.p1 != 0x00 {
		return status(swWrongP1P2)
	}
	var tries *int
	var limit int
	var valid func([]byte) bool
	switch cmd.p2 {
	case keyPIN:
		tries, limit, valid = &c.pinTries, c.pinRetries, validPIN
	case keyPUK:
		tries, limit, valid = &c.pukTries, c.pukRetries, func(b []byte) bool { return len(b) == 8 }
	default:
		return status(swRefDataNotFound)
	}
	if *tries == 0 {
		return status(swAuthBlocked)
	}
	if len(cmd.data) != 16 || !valid(cmd.data[:8]) || !valid(cmd.data[8:]) {
		return status(swWrongData)
	}
	current := c.pin
	if cmd.p2 == keyPUK {
		current = c.puk
	}
	if subtle.ConstantTimeCompare(cmd.data[:8], current) != 1 {
		*tries--
		if cmd.p2 == keyPIN {
			c.verified, c.pinAlways = false, false
		}
		return status(triesStatus(*tries))
	}
	*tries = limit
	if cmd.p2 == keyPIN {
		c.pin = append([]byte(nil), cmd.data[8:]...)
	} else {
		c.puk = append([]byte(nil), cmd.data[8:]...)
	}
	return status(swOK)
}

// resetRetryCounter is RESET RETRY COUNTER (00 2C 00 80): PUK and new PIN,
// 8 bytes each. It unblocks the PIN.
func (c *Card) resetRetryCounter(cmd command) []byte {
	if cmd.p1 != 0x00 {
		return status(swWrongP1P2)
	}
	if cmd.p2 != keyPIN {
		return status(swRefDataNotFound)
	}
	if c.pukTries == 0 {
		return status(swAuthBlocked)
	}
	if len(cmd.data) != 16 || !validPIN(cmd.data[8:]) {
		return status(swWrongData)
	}
	if subtle.ConstantTimeCompare(cmd.data[:8], c.puk) != 1 {
		c.pukTries--
		return status(triesStatus(c.pukTries))
	}
	c.pukTries = c.pukRetries
	c.pin = append([]byte(nil), cmd.data[8:]...)
	c.pinTries = c.pinRetries
	c.verified, c.pinAlways = false, false
	return status(swOK)
}
