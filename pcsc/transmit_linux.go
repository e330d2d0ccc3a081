package pcsc

// #cgo pkg-config: libpcsclite
// #include <winscard.h>
import "C"

import "github.com/ebfe/scard"

const haveTransmitInto = true

// transmitInto is SCardTransmit with the caller's response buffer; it
// returns the answer's length. pcsc-lite's DWORD is an unsigned long.
func transmitInto(handle uintptr, proto scard.Protocol, cmd, rsp []byte) (int, error) {
	var send, recv C.SCARD_IO_REQUEST
	send.dwProtocol = C.DWORD(proto)
	send.cbPciLength = C.sizeof_SCARD_IO_REQUEST
	n := C.DWORD(len(rsp))
	r := C.SCardTransmit(C.SCARDHANDLE(handle), &send, (*C.BYTE)(&cmd[0]), C.DWORD(len(cmd)), &recv, (*C.BYTE)(&rsp[0]), &n)
	if r != C.SCARD_S_SUCCESS {
		return 0, scard.Error(r)
	}
	return int(n), nil
}
