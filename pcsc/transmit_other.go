//go:build !linux && !windows && !darwin

package pcsc

import (
	"errors"

	"github.com/ebfe/scard"
)

// macOS and other systems use ebfe/scard's own (allocating) Transmit.
const haveTransmitInto = false

func transmitInto(uintptr, scard.Protocol, []byte, []byte) (int, error) {
	return 0, errors.New("pcsc: no buffered transmit on this system")
}
