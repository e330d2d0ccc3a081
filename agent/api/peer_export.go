package api

import "net/netip"

// CheckPeer is the same-user check of this OS (see peer.go) for any loopback
// listener of the agent: us is the agent's end of the connection, peer the
// client's. It returns nil when the client runs as the agent's user.
func CheckPeer(us, peer netip.AddrPort) error { return checkPeer(us, peer) }

// PeerCheckSupported says whether CheckPeer really checks the peer's user on this OS.
const PeerCheckSupported = peerCheckSupported
