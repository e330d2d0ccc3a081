package api

import (
	"errors"
	"net/netip"
)

// The same-user check: the process at the other end of a loopback TCP
// connection must run as the same OS user (and, on Windows, in the same
// session) as the agent, so that on a shared host (terminal server) one
// user's browser never reaches another user's agent or PIN prompt.
//
// checkPeer(us, peer) has one signature per OS:
//   - Linux (peer_linux.go): the client's socket is found in /proc/net/tcp
//     and /proc/net/tcp6 and its owner's uid compared with os.Getuid().
//   - Windows (peer_windows.go): GetExtendedTcpTable (TCP_TABLE_OWNER_PID_ALL)
//     gives the client socket's owning process; its session ID
//     (ProcessIdToSessionId) and user SID (its token) must equal ours.
//   - macOS (peer_darwin.go): the client's socket is found in the kernel's
//     list of TCP control blocks (sysctl net.inet.tcp.pcblist_n, parsed in
//     pcblist.go) and its owner's uid (xsocket_n's so_uid) compared with
//     os.Getuid(); no cgo.
//   - Other systems (peer_other.go): every local peer is accepted and
//     Serve logs a warning at startup. Host and Origin checks still apply.

var (
	// errOtherUser: the peer runs as another user (or in another session).
	errOtherUser = errors.New("peer belongs to another user")
	// errPeerNotFound: the peer's socket is not in the system's tables (it
	// went away, or is in another network namespace).
	errPeerNotFound = errors.New("peer socket not found")
)

// peerChecker checks the process behind a TCP connection; us is the
// agent's end, peer the client's.
type peerChecker func(us, peer netip.AddrPort) error
