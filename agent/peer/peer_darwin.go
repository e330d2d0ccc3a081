package peer

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// Supported says whether CheckAddrs really checks the peer's user.
const Supported = true

// CheckAddrs finds the client's socket in the kernel's list of TCP control
// blocks (sysctl net.inet.tcp.pcblist_n, as netstat reads it; the layout
// is in pcblist.go) and compares its owner's uid with ours. Any failure to
// read or parse the list refuses the connection.
func CheckAddrs(us, peer netip.AddrPort) error {
	buf, err := readPCBList()
	if err != nil {
		return err
	}
	return checkPCBPeer(buf, os.Getuid(), us, peer)
}

// readPCBList reads the sysctl. The kernel sizes its answer with room for
// an eighth more sockets; when even that is too small (ENOMEM), try again.
func readPCBList() ([]byte, error) {
	var err error
	for range 3 {
		var buf []byte
		buf, err = unix.SysctlRaw("net.inet.tcp.pcblist_n")
		if err == nil {
			return buf, nil
		}
		if !errors.Is(err, unix.ENOMEM) {
			break
		}
	}
	return nil, fmt.Errorf("reading net.inet.tcp.pcblist_n: %w", err)
}
