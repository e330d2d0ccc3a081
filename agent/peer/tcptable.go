package peer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Parsing of Windows' GetExtendedTcpTable(TCP_TABLE_OWNER_PID_ALL) tables.
// It lives in a file of its own, built on every OS, so it is tested and
// fuzzed where the tests run.
//
//	MIB_TCPTABLE_OWNER_PID  { DWORD dwNumEntries; MIB_TCPROW_OWNER_PID  table[]; }
//	MIB_TCPROW_OWNER_PID    { DWORD dwState, dwLocalAddr, dwLocalPort, dwRemoteAddr, dwRemotePort, dwOwningPid; }   // 24 bytes
//	MIB_TCP6TABLE_OWNER_PID { DWORD dwNumEntries; MIB_TCP6ROW_OWNER_PID table[]; }
//	MIB_TCP6ROW_OWNER_PID   { UCHAR ucLocalAddr[16]; DWORD dwLocalScopeId, dwLocalPort;
//	                          UCHAR ucRemoteAddr[16]; DWORD dwRemoteScopeId, dwRemotePort, dwState, dwOwningPid; } // 56 bytes
//
// DWORDs are little-endian; addresses are in network order; a port DWORD
// holds the port in network order in its first two bytes.

const (
	tcpRow4Size  = 24
	tcpRow6Size  = 56
	mibTCPEstab  = 5 // MIB_TCP_STATE_ESTAB
	maxTCPTable  = 1 << 16
	tcpTableHead = 4
)

type tcpOwnerRow struct {
	Local, Remote netip.AddrPort
	State         uint32
	PID           uint32
}

func winPort(b []byte) uint16 { return binary.BigEndian.Uint16(b[:2]) }

// parseTCPTable parses a table of IPv4 (v6 false) or IPv6 rows.
func parseTCPTable(buf []byte, v6 bool) ([]tcpOwnerRow, error) {
	if len(buf) < tcpTableHead {
		return nil, fmt.Errorf("TCP table of %d bytes", len(buf))
	}
	n := binary.LittleEndian.Uint32(buf)
	size := tcpRow4Size
	if v6 {
		size = tcpRow6Size
	}
	if n > maxTCPTable || uint64(len(buf)-tcpTableHead) < uint64(n)*uint64(size) {
		return nil, fmt.Errorf("TCP table claims %d rows in %d bytes", n, len(buf))
	}
	rows := make([]tcpOwnerRow, 0, n)
	for i := range int(n) {
		r := buf[tcpTableHead+i*size : tcpTableHead+(i+1)*size]
		var row tcpOwnerRow
		if v6 {
			la := netip.AddrFrom16([16]byte(r[0:16])).Unmap()
			ra := netip.AddrFrom16([16]byte(r[24:40])).Unmap()
			row.Local = netip.AddrPortFrom(la, winPort(r[20:24]))
			row.Remote = netip.AddrPortFrom(ra, winPort(r[44:48]))
			row.State = binary.LittleEndian.Uint32(r[48:52])
			row.PID = binary.LittleEndian.Uint32(r[52:56])
		} else {
			row.State = binary.LittleEndian.Uint32(r[0:4])
			row.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[4:8])), winPort(r[8:12]))
			row.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r[12:16])), winPort(r[16:20]))
			row.PID = binary.LittleEndian.Uint32(r[20:24])
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// findPeerPID returns the process owning the established socket whose local
// end is peer and remote end is us.
func findPeerPID(rows []tcpOwnerRow, us, peer netip.AddrPort) (uint32, error) {
	us, peer = unmapAP(us), unmapAP(peer)
	for _, r := range rows {
		if r.State == mibTCPEstab && r.Local == peer && r.Remote == us {
			return r.PID, nil
		}
	}
	return 0, ErrNotFound
}
