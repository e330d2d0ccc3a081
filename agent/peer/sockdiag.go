package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// The netlink sock_diag messages of the Linux lookup (linux/inet_diag.h).
// They are built and parsed here, in a file built on every OS, so that the
// parser is tested and fuzzed wherever the tests run.
//
//	struct nlmsghdr       { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }                          // 16 bytes
//	struct inet_diag_sockid { be16 sport, dport; be32 src[4], dst[4]; u32 if; u32 cookie[2]; }         // 48 bytes
//	struct inet_diag_req_v2 { u8 family, protocol, ext, pad; u32 states; struct inet_diag_sockid id; } // 56 bytes
//	struct inet_diag_msg    { u8 family, state, timer, retrans; struct inet_diag_sockid id;
//	                          u32 expires, rqueue, wqueue, uid, inode; }                               // 72 bytes
//
// Host-order fields are native-endian; ports and addresses are in network
// order. The "source" of a socket id is the socket's own (local) end: the
// client's socket is asked for with source = peer, destination = us.

const (
	nlmsgHdrLen      = 16
	diagReqLen       = 56
	diagMsgLen       = 72
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	nlmsgError       = 2  // NLMSG_ERROR
	nlmFRequest      = 1  // NLM_F_REQUEST
	ipprotoTCP       = 6
	tcpEstablished   = 0x01 // TCP_ESTABLISHED, as in /proc/net/tcp
	linuxENOENT      = 2
)

// diagRequest builds the query for the one socket whose local end is peer
// and remote end us (addresses of family's size: 4 or 16 bytes).
func diagRequest(seq uint32, family uint8, us, peer netip.AddrPort) []byte {
	b := make([]byte, nlmsgHdrLen+diagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], sockDiagByFamily)
	ne.PutUint16(b[6:], nlmFRequest)
	ne.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0], r[1] = family, ipprotoTCP
	ne.PutUint32(r[4:], 1<<tcpEstablished)
	putSockID(r[8:56], peer, us)
	// No cookie: INET_DIAG_NOCOOKIE.
	ne.PutUint32(r[48:], 0xffffffff)
	ne.PutUint32(r[52:], 0xffffffff)
	return b
}

func putSockID(id []byte, src, dst netip.AddrPort) {
	binary.BigEndian.PutUint16(id[0:], src.Port())
	binary.BigEndian.PutUint16(id[2:], dst.Port())
	copy(id[4:20], src.Addr().AsSlice())
	copy(id[20:36], dst.Addr().AsSlice())
}

func sockIDAddr(b []byte, family uint8, port uint16) (netip.AddrPort, bool) {
	switch family {
	case syscallAFInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), port), true
	case syscallAFInet6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// Linux's AF_INET and AF_INET6 (syscall's constants differ per OS).
const (
	syscallAFInet  = 2
	syscallAFInet6 = 10
)

// parseDiagReply reads the kernel's answer (message type and payload) to
// the query for the client's socket peer->us and returns its owner's uid.
// A socket that is not ESTABLISHED is not trusted (a TIME_WAIT socket has
// no owner and reads as uid 0).
func parseDiagReply(typ uint16, data []byte, us, peer netip.AddrPort) (int, error) {
	ne := binary.NativeEndian
	switch typ {
	case nlmsgError:
		if len(data) < 4 {
			return -1, fmt.Errorf("sock_diag: short error message (%d bytes)", len(data))
		}
		switch errno := -int32(ne.Uint32(data)); errno {
		case linuxENOENT:
			return -1, ErrNotFound
		case 0:
			return -1, errors.New("sock_diag: acknowledgement instead of an answer")
		default:
			return -1, fmt.Errorf("sock_diag: kernel error %d", errno)
		}
	case sockDiagByFamily:
	default:
		return -1, fmt.Errorf("sock_diag: unexpected message type %d", typ)
	}
	if len(data) < diagMsgLen {
		return -1, fmt.Errorf("sock_diag: short answer (%d bytes)", len(data))
	}
	family, state := data[0], data[1]
	id := data[4:52]
	src, ok1 := sockIDAddr(id[4:20], family, binary.BigEndian.Uint16(id[0:]))
	dst, ok2 := sockIDAddr(id[20:36], family, binary.BigEndian.Uint16(id[2:]))
	if !ok1 || !ok2 {
		return -1, fmt.Errorf("sock_diag: unexpected address family %d", family)
	}
	if src != unmapAP(peer) || dst != unmapAP(us) {
		return -1, fmt.Errorf("sock_diag: answer about another socket (%s -> %s)", src, dst)
	}
	if state != tcpEstablished {
		return -1, fmt.Errorf("%w (state %d)", ErrNotFound, state)
	}
	return int(ne.Uint32(data[64:])), nil
}
