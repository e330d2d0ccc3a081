package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// Sample tables as Linux prints them (x86-64, little-endian words).
const sampleTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:AB3C 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:AB3C 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 41240 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D431 0100007F:AB3C 01 00000000:00000000 00:00000000 00000000  1000        0 41239 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:D432 0100007F:AB3C 06 00000000:00000000 03:00000F9E 00000000     0        0 0 3 0000000000000000
`

const sampleTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:AB3C 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41235 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:E001 00000000000000000000000001000000:AB3C 01 00000000:00000000 00:00000000 00000000 65534        0 51000 1 0000000000000000 20 4 30 10 -1
   2: 0000000000000000FFFF00000100007F:D433 0000000000000000FFFF00000100007F:AB3C 01 00000000:00000000 00:00000000 00000000   33        0 51001 1 0000000000000000 20 4 30 10 -1
`

func littleEndian() bool {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], 1)
	return b[0] == 1
}

func TestParseProcNetTCP(t *testing.T) {
	if !littleEndian() {
		t.Skip("the sample tables are from a little-endian machine")
	}
	var got []procTCPEntry
	if err := parseProcNetTCP(strings.NewReader(sampleTCP), func(e procTCPEntry) bool { got = append(got, e); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("%d entries", len(got))
	}
	want := procTCPEntry{Local: netip.MustParseAddrPort("127.0.0.1:54321"), Remote: netip.MustParseAddrPort("127.0.0.1:43836"), State: 1, UID: 1000, Inode: 41239}
	if got[2] != want {
		t.Errorf("entry 2 = %+v, want %+v", got[2], want)
	}
	if got[0].State != 0x0A || got[0].Remote != netip.MustParseAddrPort("0.0.0.0:0") {
		t.Errorf("listening entry %+v", got[0])
	}

	got = nil
	if err := parseProcNetTCP(strings.NewReader(sampleTCP6), func(e procTCPEntry) bool { got = append(got, e); return true }); err != nil {
		t.Fatal(err)
	}
	if got[1].Local != netip.MustParseAddrPort("[::1]:57345") || got[1].UID != 65534 {
		t.Errorf("IPv6 entry %+v", got[1])
	}
	if got[2].Local != netip.MustParseAddrPort("127.0.0.1:54323") || got[2].UID != 33 {
		t.Errorf("IPv4-mapped entry %+v (want it unmapped)", got[2])
	}
}

func TestFindPeerUID(t *testing.T) {
	if !littleEndian() {
		t.Skip("the sample tables are from a little-endian machine")
	}
	us := netip.MustParseAddrPort("127.0.0.1:43836")
	us6 := netip.MustParseAddrPort("[::1]:43836")
	tests := []struct {
		name    string
		us      netip.AddrPort
		peer    string
		uid     int
		wantErr error
	}{
		{"IPv4 peer", us, "127.0.0.1:54321", 1000, nil},
		{"IPv6 peer", us6, "[::1]:57345", 65534, nil},
		{"IPv4-mapped peer socket", us, "127.0.0.1:54323", 33, nil},
		{"our own end is not the peer", us, "127.0.0.1:43836", -1, ErrNotFound},
		{"TIME_WAIT ignored", us, "127.0.0.1:54322", -1, ErrNotFound},
		{"unknown", us, "127.0.0.1:1", -1, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, err := findPeerUID([]io.Reader{strings.NewReader(sampleTCP), strings.NewReader(sampleTCP6)}, tt.us, netip.MustParseAddrPort(tt.peer))
			if uid != tt.uid || !errors.Is(err, tt.wantErr) {
				t.Errorf("uid %d, %v; want %d, %v", uid, err, tt.uid, tt.wantErr)
			}
		})
	}
}

func TestParseProcNetTCPRejects(t *testing.T) {
	header := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	for _, tt := range []struct{ name, data string }{
		{"no header", "   0: 0100007F:AB3C 00000000:0000 0A 0:0 0:0 0 0 0 1\n"},
		{"short line", header + "   0: 0100007F:AB3C 00000000:0000 0A\n"},
		{"bad address", header + "   0: 0100007G:AB3C 00000000:0000 0A 0:0 0:0 0 0 0 1\n"},
		{"odd address length", header + "   0: 0100007:AB3C 00000000:0000 0A 0:0 0:0 0 0 0 1\n"},
		{"bad port", header + "   0: 0100007F:AB3 00000000:0000 0A 0:0 0:0 0 0 0 1\n"},
		{"bad uid", header + "   0: 0100007F:AB3C 00000000:0000 0A 0:0 0:0 0 x 0 1\n"},
		{"no slot colon", header + "   0 0100007F:AB3C 00000000:0000 0A 0:0 0:0 0 0 0 1\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := parseProcNetTCP(strings.NewReader(tt.data), func(procTCPEntry) bool { return true })
			if !errors.Is(err, errProcFormat) {
				t.Errorf("err = %v, want errProcFormat", err)
			}
		})
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add(sampleTCP)
	f.Add(sampleTCP6)
	f.Add("local_address\n 0: 0:0 0:0 0 0 0 0 0 0 0\n")
	f.Fuzz(func(t *testing.T, data string) {
		n := 0
		err := parseProcNetTCP(strings.NewReader(data), func(e procTCPEntry) bool {
			n++
			if e.Local.Addr().Is4In6() || e.Remote.Addr().Is4In6() {
				t.Fatalf("mapped address not unmapped: %+v", e)
			}
			return true
		})
		if err != nil && n > strings.Count(data, "\n")+1 {
			t.Fatal("more entries than lines")
		}
	})
}

// tcpTable builds a GetExtendedTcpTable buffer.
func tcpTable(v6 bool, rows ...tcpOwnerRow) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint32(len(rows)))
	port := func(p uint16) []byte { return []byte{byte(p >> 8), byte(p), 0, 0} }
	le := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	for _, r := range rows {
		if v6 {
			la, ra := r.Local.Addr().As16(), r.Remote.Addr().As16()
			b.Write(la[:])
			b.Write(le(0))
			b.Write(port(r.Local.Port()))
			b.Write(ra[:])
			b.Write(le(0))
			b.Write(port(r.Remote.Port()))
			b.Write(le(r.State))
			b.Write(le(r.PID))
		} else {
			la, ra := r.Local.Addr().As4(), r.Remote.Addr().As4()
			b.Write(le(r.State))
			b.Write(la[:])
			b.Write(port(r.Local.Port()))
			b.Write(ra[:])
			b.Write(port(r.Remote.Port()))
			b.Write(le(r.PID))
		}
	}
	return b.Bytes()
}

func TestParseTCPTable(t *testing.T) {
	us := netip.MustParseAddrPort("127.0.0.1:43800")
	peer := netip.MustParseAddrPort("127.0.0.1:50123")
	rows := []tcpOwnerRow{
		{Local: us, Remote: peer, State: mibTCPEstab, PID: 100}, // our end
		{Local: peer, Remote: us, State: 11, PID: 300},          // TIME_WAIT
		{Local: peer, Remote: us, State: mibTCPEstab, PID: 200}, // the client
		{Local: netip.MustParseAddrPort("127.0.0.1:1"), Remote: us, State: mibTCPEstab, PID: 400},
	}
	parsed, err := parseTCPTable(tcpTable(false, rows...), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed) != 4 || parsed[2] != rows[2] {
		t.Fatalf("parsed %+v", parsed)
	}
	if pid, err := findPeerPID(parsed, us, peer); err != nil || pid != 200 {
		t.Errorf("peer pid %d, %v", pid, err)
	}

	us6 := netip.MustParseAddrPort("[::1]:43800")
	peer6 := netip.MustParseAddrPort("[::1]:50124")
	rows6 := []tcpOwnerRow{{Local: peer6, Remote: us6, State: mibTCPEstab, PID: 7}}
	parsed, err = parseTCPTable(tcpTable(true, rows6...), true)
	if err != nil || len(parsed) != 1 || parsed[0] != rows6[0] {
		t.Fatalf("IPv6: %+v, %v", parsed, err)
	}
	if _, err := findPeerPID(parsed, us6, netip.MustParseAddrPort("[::1]:1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown peer: %v", err)
	}
	for _, bad := range [][]byte{nil, {1, 0}, {2, 0, 0, 0, 1, 2, 3}, tcpTable(false, rows...)[:30]} {
		if _, err := parseTCPTable(bad, false); err == nil {
			t.Errorf("parseTCPTable(% X) accepted", bad)
		}
	}
}

func FuzzParseTCPTable(f *testing.F) {
	us := netip.MustParseAddrPort("127.0.0.1:43800")
	f.Add(tcpTable(false, tcpOwnerRow{Local: us, Remote: us, State: 5, PID: 1}), false)
	f.Add(tcpTable(true, tcpOwnerRow{Local: netip.MustParseAddrPort("[::1]:1"), Remote: netip.MustParseAddrPort("[::1]:2"), State: 5, PID: 1}), true)
	f.Fuzz(func(t *testing.T, buf []byte, v6 bool) {
		rows, err := parseTCPTable(buf, v6)
		if err != nil {
			return
		}
		size := tcpRow4Size
		if v6 {
			size = tcpRow6Size
		}
		if 4+len(rows)*size > len(buf) {
			t.Fatalf("%d rows from %d bytes", len(rows), len(buf))
		}
	})
}
