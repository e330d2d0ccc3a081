package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Parsing of macOS's list of TCP control blocks, the sysctl
// net.inet.tcp.pcblist_n that netstat reads. It lives in a file of its own,
// built on every OS, so it is tested and fuzzed where the tests run;
// peer_darwin.go reads the sysctl and calls findPCBPeerUID.
//
// The layout is XNU's (bsd/netinet/in_pcb.h, bsd/sys/socketvar.h,
// bsd/netinet/tcp_var.h; written by get_pcblist_n in
// bsd/netinet/in_pcblist.c). The structures are declared under
// #pragma pack(4), and the buffer is:
//
//	struct xinpgen   { u32 xig_len; u32 xig_count; u64 xig_gen; u64 xig_sogen; }   // 24 bytes
//	then per socket, each record starting on an 8-byte boundary (ROUNDUP64 of its length):
//	  xinpcb_n    (kind XSO_INPCB  0x10)
//	  xsocket_n   (kind XSO_SOCKET 0x01)
//	  xsockbuf_n  (kind XSO_RCVBUF 0x02), xsockbuf_n (kind XSO_SNDBUF 0x04)
//	  xsockstat_n (kind XSO_STATS  0x08)
//	  xtcpcb_n    (kind XSO_TCPCB  0x20)
//	and a closing xinpgen (xig_len 24).
//
// Every record starts with u32 length, u32 kind. The fields read here:
//
//	xinpcb_n:  16 inp_fport, 18 inp_lport (u16, network order); 44 inp_vflag
//	           (INP_IPV4 0x1, INP_IPV6 0x2); 48 foreign address, 64 local
//	           address (16 bytes each: an in6_addr, or for IPv4 an
//	           in_addr_4in6 whose last 4 bytes are the address)
//	xsocket_n: 64 so_uid (u32): the uid of the credentials the socket was made with
//	xtcpcb_n:  36 t_state (i32; TCPS_ESTABLISHED is 4)
//
// Integers other than ports are little-endian (both macOS architectures).
// A record is read only as far as its own length allows: a shorter
// (older) or longer (newer) structure is fine as long as the fields above
// are inside it.

const (
	xinpgenSize     = 24
	xsoSocket       = 0x01
	xsoInpcb        = 0x10
	xsoTcpcb        = 0x20
	inpIPv4         = 0x1
	inpIPv6         = 0x2
	tcpsEstablished = 4

	xinpcbFPort   = 16
	xinpcbLPort   = 18
	xinpcbVFlag   = 44
	xinpcbFAddr   = 48
	xinpcbLAddr   = 64
	xinpcbMinLen  = xinpcbLAddr + 16 // 80
	xsocketUID    = 64
	xsocketMinLen = xsocketUID + 4 // 68
	xtcpcbState   = 36
	xtcpcbMinLen  = xtcpcbState + 4 // 40

	maxPCBList = 64 << 20 // a sanity cap on the sysctl's size
)

var errPCBFormat = errors.New("unexpected net.inet.tcp.pcblist_n format")

// pcbEntry is one TCP socket of the list.
type pcbEntry struct {
	Local, Remote netip.AddrPort // IPv4-mapped addresses are unmapped
	State         int32          // t_state; -1 when the socket had no xtcpcb_n
	UID           uint32
}

// roundUp64 is XNU's ROUNDUP64: the next multiple of 8 (8 for 0).
func roundUp64(n uint32) uint64 {
	if n == 0 {
		return 8
	}
	return (uint64(n) + 7) &^ 7
}

// parsePCBList walks a net.inet.tcp.pcblist_n buffer and calls fn for
// every socket that has both an xinpcb_n and an xsocket_n, until fn
// returns false. A record that overruns the buffer, or one of the three
// records above too short for the fields read, is an error.
func parsePCBList(buf []byte, fn func(pcbEntry) bool) error {
	if len(buf) > maxPCBList {
		return fmt.Errorf("%w: %d bytes", errPCBFormat, len(buf))
	}
	if len(buf) < xinpgenSize {
		return fmt.Errorf("%w: %d bytes, no xinpgen", errPCBFormat, len(buf))
	}
	head := binary.LittleEndian.Uint32(buf)
	if head < xinpgenSize || uint64(head) > uint64(len(buf)) {
		return fmt.Errorf("%w: xig_len %d", errPCBFormat, head)
	}
	var cur pcbEntry
	haveInp, haveSock := false, false
	flush := func() bool {
		ok := true
		if haveInp && haveSock {
			ok = fn(cur)
		}
		cur, haveInp, haveSock = pcbEntry{State: -1}, false, false
		return ok
	}
	cur.State = -1
	off := roundUp64(head)
	for off+8 <= uint64(len(buf)) {
		n := binary.LittleEndian.Uint32(buf[off:])
		kind := binary.LittleEndian.Uint32(buf[off+4:])
		if n <= xinpgenSize {
			// The closing xinpgen (its second word is xig_count, not a
			// kind). Every socket record is longer: netstat stops here too.
			break
		}
		if off+uint64(n) > uint64(len(buf)) {
			return fmt.Errorf("%w: record of %d bytes at %d overruns %d", errPCBFormat, n, off, len(buf))
		}
		rec := buf[off : off+uint64(n)]
		switch kind {
		case xsoInpcb:
			if !flush() {
				return nil
			}
			if n < xinpcbMinLen {
				return fmt.Errorf("%w: xinpcb_n of %d bytes", errPCBFormat, n)
			}
			lport := binary.BigEndian.Uint16(rec[xinpcbLPort:])
			fport := binary.BigEndian.Uint16(rec[xinpcbFPort:])
			vflag := rec[xinpcbVFlag]
			var la, fa netip.Addr
			switch {
			case vflag&inpIPv4 != 0:
				la = netip.AddrFrom4([4]byte(rec[xinpcbLAddr+12 : xinpcbLAddr+16]))
				fa = netip.AddrFrom4([4]byte(rec[xinpcbFAddr+12 : xinpcbFAddr+16]))
			case vflag&inpIPv6 != 0:
				la = netip.AddrFrom16([16]byte(rec[xinpcbLAddr : xinpcbLAddr+16])).Unmap()
				fa = netip.AddrFrom16([16]byte(rec[xinpcbFAddr : xinpcbFAddr+16])).Unmap()
			default:
				// Neither family: not a socket a client can connect from.
				off += roundUp64(n)
				continue
			}
			cur.Local = netip.AddrPortFrom(la, lport)
			cur.Remote = netip.AddrPortFrom(fa, fport)
			haveInp = true
		case xsoSocket:
			if n < xsocketMinLen {
				return fmt.Errorf("%w: xsocket_n of %d bytes", errPCBFormat, n)
			}
			cur.UID = binary.LittleEndian.Uint32(rec[xsocketUID:])
			haveSock = true
		case xsoTcpcb:
			if n < xtcpcbMinLen {
				return fmt.Errorf("%w: xtcpcb_n of %d bytes", errPCBFormat, n)
			}
			cur.State = int32(binary.LittleEndian.Uint32(rec[xtcpcbState:]))
		}
		off += roundUp64(n)
	}
	flush()
	return nil
}

// checkPCBPeer is the macOS same-user check on a pcblist_n buffer: the
// client's socket must be in it and belong to uid want.
func checkPCBPeer(buf []byte, want int, us, peer netip.AddrPort) error {
	uid, err := findPCBPeerUID(buf, us, peer)
	if err != nil {
		return err
	}
	if int64(uid) != int64(want) {
		return fmt.Errorf("%w (uid %d)", ErrOtherUser, uid)
	}
	return nil
}

// findPCBPeerUID finds the established socket whose local end is peer and
// remote end is us (the client's end of our connection) and returns its
// owner's uid.
func findPCBPeerUID(buf []byte, us, peer netip.AddrPort) (uint32, error) {
	us, peer = unmapAP(us), unmapAP(peer)
	var uid uint32
	found := false
	err := parsePCBList(buf, func(e pcbEntry) bool {
		if e.State == tcpsEstablished && e.Local == peer && e.Remote == us {
			uid, found = e.UID, true
			return false
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, ErrNotFound
	}
	return uid, nil
}
