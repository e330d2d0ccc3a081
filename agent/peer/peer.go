// Package peer checks that a loopback connection comes from the agent's own
// OS user.
//
// It is the same-user check of cardagent's loopback listeners: the process
// at the other end of a loopback TCP connection must run as the same OS user
// (and, on Windows, in the same session) as the agent, so that on a shared
// host (terminal server) one user's browser or programs never reach another
// user's agent or PIN prompt.
//
// Any loopback listener uses it in one line: wrap the listener with
// NewListener, and Accept returns only connections that passed the check.
// The check runs as soon as a connection is accepted, off the accept loop,
// and another user's connection is closed at once, before a byte of it is
// read. Check and CheckAddrs check one connection.
//
// CheckAddrs(us, peer) has one signature per OS:
//   - Linux (peer_linux.go): one netlink sock_diag query asks the kernel for
//     the client's socket alone (its state and owner's uid), compared with
//     os.Getuid(). Where sock_diag is unavailable the client's socket is
//     looked up in /proc/net/tcp and /proc/net/tcp6 instead (slower: the
//     kernel prints every socket of the system).
//   - Windows (peer_windows.go): GetExtendedTcpTable (TCP_TABLE_OWNER_PID_ALL)
//     gives the client socket's owning process; its session ID
//     (ProcessIdToSessionId) and user SID (its token) must equal ours.
//   - macOS (peer_darwin.go): the client's socket is found in the kernel's
//     list of TCP control blocks (sysctl net.inet.tcp.pcblist_n, parsed in
//     pcblist.go) and its owner's uid (xsocket_n's so_uid) compared with
//     os.Getuid(); no cgo.
//   - Other systems (peer_other.go): every local peer is accepted (Supported
//     is false and servers log a warning at startup).
package peer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

var (
	// ErrOtherUser: the peer runs as another user (or in another session).
	ErrOtherUser = errors.New("peer belongs to another user")
	// ErrNotFound: the peer's socket is not in the system's tables (it
	// went away, or is in another network namespace).
	ErrNotFound = errors.New("peer socket not found")
	// ErrNotTCP: the connection is not a TCP connection.
	ErrNotTCP = errors.New("not a TCP connection")
)

// Checker checks the process behind a TCP connection; us is the
// listener's end, peer the client's. CheckAddrs is the real one.
type Checker func(us, peer netip.AddrPort) error

// Check checks the process at the other end of the TCP connection c.
func Check(c net.Conn) error { return checkWith(CheckAddrs, c) }

func checkWith(check Checker, c net.Conn) error {
	us, ok1 := c.LocalAddr().(*net.TCPAddr)
	them, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: %s", ErrNotTCP, c.RemoteAddr())
	}
	return check(us.AddrPort(), them.AddrPort())
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
