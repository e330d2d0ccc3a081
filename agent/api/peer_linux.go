package api

import (
	"fmt"
	"io"
	"net/netip"
	"os"
)

// peerCheckSupported says whether checkPeer really checks the peer's user.
const peerCheckSupported = true

// checkPeer finds the client's socket in /proc/net/tcp and /proc/net/tcp6 and
// compares its owner's uid with ours.
func checkPeer(us, peer netip.AddrPort) error {
	return checkPeerIn("/proc/net", os.Getuid(), us, peer)
}

func checkPeerIn(dir string, want int, us, peer netip.AddrPort) error {
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
			return fmt.Errorf("reading socket table: %w", err)
		}
		defer f.Close()
		tables = append(tables, f)
	}
	uid, err := findPeerUID(tables, us, peer)
	if err != nil {
		return err
	}
	if uid != want {
		return fmt.Errorf("%w (uid %d)", errOtherUser, uid)
	}
	return nil
}
