package peer

import (
	"fmt"
	"io"
	"net/netip"
	"os"
)

// procOwner finds the client's socket in the tables dir/tcp and dir/tcp6
// (normally /proc/net) and returns its owner's uid. It is the fallback of
// the netlink lookup: it reads every socket of the system, which costs the
// kernel a walk of its whole TCP hash table per call.
func procOwner(dir string, us, peer netip.AddrPort) (int, error) {
	var tables []io.Reader
	// A client may use an IPv4 socket, or a dual-stack IPv6 socket with an
	// IPv4-mapped address: look in both tables.
	names := []string{"tcp", "tcp6"}
	if peer.Addr().Unmap().Is6() {
		names = []string{"tcp6"}
	}
	for _, n := range names {
		f, err := os.Open(dir + "/" + n)
		if err != nil {
			if os.IsNotExist(err) && n == "tcp6" { // kernel without IPv6
				continue
			}
			return -1, fmt.Errorf("reading socket table: %w", err)
		}
		defer f.Close()
		tables = append(tables, f)
	}
	return findPeerUID(tables, us, peer)
}
