package pcsc

import (
	"syscall"
	"unsafe"

	"github.com/ebfe/scard"
)

const haveTransmitInto = true

var (
	winscard          = syscall.NewLazyDLL("winscard.dll")
	procSCardTransmit = winscard.NewProc("SCardTransmit")
	// The protocol control information structures winscard.dll exports.
	dataT0PCI = winscard.NewProc("g_rgSCardT0Pci")
	dataT1PCI = winscard.NewProc("g_rgSCardT1Pci")
)

// transmitInto is SCardTransmit with the caller's response buffer; it
// returns the answer's length.
func transmitInto(handle uintptr, proto scard.Protocol, cmd, rsp []byte) (int, error) {
	var pci uintptr
	switch proto {
	case scard.ProtocolT0:
		pci = dataT0PCI.Addr()
	case scard.ProtocolT1:
		pci = dataT1PCI.Addr()
	default:
		return 0, scard.ErrProtoMismatch
	}
	n := uint32(len(rsp))
	r, _, _ := procSCardTransmit.Call(handle, pci, uintptr(unsafe.Pointer(&cmd[0])), uintptr(len(cmd)), 0,
		uintptr(unsafe.Pointer(&rsp[0])), uintptr(unsafe.Pointer(&n)))
	if r != 0 {
		return 0, scard.Error(r)
	}
	return int(n), nil
}
