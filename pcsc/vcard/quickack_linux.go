package vcard

import (
	"net"
	"syscall"
)

// quickAck sets TCP_QUICKACK so the kernel acknowledges vpcd's next segment
// at once. Debian's vpcd writes length and APDU in two writes without
// TCP_NODELAY; with delayed ACKs every APDU would stall about 40 ms.
// The flag is not sticky on Linux, so it is set again after every read.
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
