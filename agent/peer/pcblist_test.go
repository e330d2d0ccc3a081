package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// The records below are XNU's structures as declared (bsd/netinet/in_pcb.h,
// bsd/sys/socketvar.h, bsd/netinet/tcp_var.h), field for field, with the
// padding #pragma pack(4) puts in made explicit as blank fields.
// encoding/binary writes a struct field after field with no padding of its
// own, so these give the bytes the kernel writes on 64-bit macOS
// (little-endian), independently of the offsets pcblist.go uses.

type xinpgenRec struct { // 24 bytes
	Len   uint32
	Count uint32
	Gen   uint64
	SoGen uint64
}

type xinpcbNRec struct { // 104 bytes
	Len      uint32
	Kind     uint32
	Inpp     uint64
	FPort    [2]byte // network order
	LPort    [2]byte
	Ppcb     uint64 // at 20: pack(4)
	Gencnt   uint64
	Flags    int32
	Flow     uint32
	VFlag    uint8
	TTL      uint8
	IPP      uint8
	_        [1]byte
	FAddr    [16]byte // in6_addr, or in_addr_4in6 {u32 pad[3]; in_addr}
	LAddr    [16]byte
	IPTos    uint8 // inp_depend4
	_        [3]byte
	Hlim     uint8 // inp_depend6 {u8; int; u_short; short}
	_        [3]byte
	Cksum    int32
	Ifindex  uint16
	Hops     int16
	Flowhash uint32
	Flags2   uint32
}

type xsocketNRec struct { // 104 bytes
	Len         uint32
	Kind        uint32
	So          uint64
	Type        int16
	_           [2]byte
	Options     uint32
	Linger      int16
	State       int16
	Pcb         uint64 // at 28: pack(4)
	Protocol    int32
	Family      int32
	Qlen        int16
	Incqlen     int16
	Qlimit      int16
	Timeo       int16
	Error       uint16
	_           [2]byte
	Pgid        int32
	Oobmark     uint32
	UID         uint32
	LastPid     int32
	EPid        int32
	Gencnt      uint64
	SoFlags     uint32
	SoFlags1    uint32
	Usecount    int32
	Retaincnt   int32
	FilterFlags uint32
}

type xsockbufNRec struct { // 32 bytes
	Len, Kind, CC, Hiwat, Mbcnt, Mbmax uint32
	Lowat                              int32
	Flags, Timeo                       int16
}

type xsockstatNRec struct { // 136 bytes
	Len, Kind uint32
	Stats     [4][4]uint64 // data_stats[SO_TC_STATS_MAX]
}

// xtcpcbNRec is xtcpcb_n through t_flags and t_force; the kernel's record
// goes on (sequence numbers, timers, windows), which the test pads with
// zeros to xtcpcbNLen. The parser reads t_state only.
type xtcpcbNRec struct {
	Len, Kind uint32
	Segq      uint64
	Dupacks   int32
	Timer     [4]int32 // TCPT_NTIMERS_EXT
	State     int32
	Flags     uint32
	Force     int32
}

const xtcpcbNLen = 208

type pcbSock struct {
	local, remote netip.AddrPort
	v6            bool // an AF_INET6 socket (INP_IPV6), addresses as in6_addr
	uid           uint32
	state         int32 // TCPS_*: 1 LISTEN, 4 ESTABLISHED, 10 TIME_WAIT
}

func pcbAddr(a netip.Addr, v6 bool) [16]byte {
	if v6 {
		return a.As16()
	}
	var b [16]byte // in_addr_4in6: three zero words, then the address
	a4 := a.Unmap().As4()
	copy(b[12:], a4[:])
	return b
}

func port(p uint16) [2]byte { return [2]byte{byte(p >> 8), byte(p)} }

// put appends rec and pads it to 8 bytes (ROUNDUP64), as get_pcblist_n does.
func put(t testing.TB, b *bytes.Buffer, rec any, size int) {
	t.Helper()
	start := b.Len()
	if err := binary.Write(b, binary.LittleEndian, rec); err != nil {
		t.Fatal(err)
	}
	for b.Len()-start < size || (b.Len()-start)%8 != 0 {
		b.WriteByte(0)
	}
}

// pcbList builds a net.inet.tcp.pcblist_n buffer holding socks.
func pcbList(t testing.TB, socks ...pcbSock) []byte {
	var b bytes.Buffer
	put(t, &b, xinpgenRec{Len: 24, Count: uint32(len(socks)), Gen: 77, SoGen: 88}, 24)
	for i, s := range socks {
		vflag := uint8(inpIPv4)
		if s.v6 {
			vflag = inpIPv6
		}
		put(t, &b, xinpcbNRec{
			Len: 104, Kind: xsoInpcb, Inpp: 0xffffff8012340000 + uint64(i)*0x100,
			FPort: port(s.remote.Port()), LPort: port(s.local.Port()),
			Ppcb: 0xffffff8055550000, Gencnt: uint64(100 + i), Flow: 0,
			VFlag: vflag, TTL: 64, IPP: 6,
			FAddr: pcbAddr(s.remote.Addr(), s.v6), LAddr: pcbAddr(s.local.Addr(), s.v6),
			Hlim: 64, Cksum: -1, Flowhash: 0xdeadbeef,
		}, 104)
		family := int32(2) // AF_INET
		if s.v6 {
			family = 30 // AF_INET6
		}
		put(t, &b, xsocketNRec{
			Len: 104, Kind: xsoSocket, So: 0xffffff8077770000, Type: 1, Options: 0x4,
			State: 0x2, Pcb: 0xffffff8012340000, Protocol: 6, Family: family,
			Pgid: 0, UID: s.uid, LastPid: 4242, EPid: 4242, Gencnt: 9, Usecount: 1,
		}, 104)
		put(t, &b, xsockbufNRec{Len: 32, Kind: 0x02, Hiwat: 131072}, 32)
		put(t, &b, xsockbufNRec{Len: 32, Kind: 0x04, Hiwat: 131072}, 32)
		put(t, &b, xsockstatNRec{Len: 136, Kind: 0x08}, 136)
		put(t, &b, xtcpcbNRec{Len: xtcpcbNLen, Kind: xsoTcpcb, Segq: 0, State: s.state}, xtcpcbNLen)
	}
	put(t, &b, xinpgenRec{Len: 24, Count: uint32(len(socks)), Gen: 78, SoGen: 89}, 24)
	return b.Bytes()
}

func TestPCBRecordSizes(t *testing.T) {
	sizes := []struct {
		name      string
		got, want int
	}{
		{"xinpgen", binary.Size(xinpgenRec{}), 24},
		{"xinpcb_n", binary.Size(xinpcbNRec{}), 104},
		{"xsocket_n", binary.Size(xsocketNRec{}), 104},
		{"xsockbuf_n", binary.Size(xsockbufNRec{}), 32},
		{"xsockstat_n", binary.Size(xsockstatNRec{}), 136},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("%s: %d bytes, want %d", s.name, s.got, s.want)
		}
	}
	// The fields pcblist.go reads sit where its constants say.
	var b bytes.Buffer
	put(t, &b, xinpcbNRec{FPort: [2]byte{0xAB, 0xCD}, LPort: [2]byte{0x12, 0x34}, VFlag: 0x5A,
		FAddr: [16]byte{15: 0xF1}, LAddr: [16]byte{15: 0xE1}}, 104)
	r := b.Bytes()
	if r[xinpcbFPort] != 0xAB || r[xinpcbLPort] != 0x12 || r[xinpcbVFlag] != 0x5A ||
		r[xinpcbFAddr+15] != 0xF1 || r[xinpcbLAddr+15] != 0xE1 {
		t.Errorf("xinpcb_n field offsets disagree with the declaration")
	}
	b.Reset()
	put(t, &b, xsocketNRec{UID: 0x01020304}, 104)
	if got := binary.LittleEndian.Uint32(b.Bytes()[xsocketUID:]); got != 0x01020304 {
		t.Errorf("so_uid at %d reads 0x%08X", xsocketUID, got)
	}
	b.Reset()
	put(t, &b, xtcpcbNRec{State: 0x0A0B0C0D}, xtcpcbNLen)
	if got := binary.LittleEndian.Uint32(b.Bytes()[xtcpcbState:]); got != 0x0A0B0C0D {
		t.Errorf("t_state at %d reads 0x%08X", xtcpcbState, got)
	}
}

func TestFindPCBPeerUID(t *testing.T) {
	us := netip.MustParseAddrPort("127.0.0.1:43800")
	peer := netip.MustParseAddrPort("127.0.0.1:51234")
	us6 := netip.MustParseAddrPort("[::1]:43800")
	peer6 := netip.MustParseAddrPort("[::1]:51234")
	mapped := func(ap netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	listen := pcbSock{local: us, remote: netip.MustParseAddrPort("0.0.0.0:0"), uid: 501, state: 1}
	server := pcbSock{local: us, remote: peer, uid: 501, state: 4} // the agent's own end
	other := pcbSock{local: netip.MustParseAddrPort("192.168.1.20:50000"), remote: netip.MustParseAddrPort("10.0.0.1:443"), uid: 502, state: 4}

	tests := []struct {
		name     string
		socks    []pcbSock
		us, peer netip.AddrPort
		want     uint32
		wantErr  error
	}{
		{"IPv4 client", []pcbSock{listen, server, other, {local: peer, remote: us, uid: 501, state: 4}}, us, peer, 501, nil},
		{"IPv4 client of another user", []pcbSock{listen, server, {local: peer, remote: us, uid: 502, state: 4}}, us, peer, 502, nil},
		{"dual-stack client socket (INP_IPV6, mapped addresses)",
			[]pcbSock{server, {local: mapped(peer), remote: mapped(us), v6: true, uid: 503, state: 4}}, us, peer, 503, nil},
		{"IPv6 client", []pcbSock{{local: peer6, remote: us6, v6: true, uid: 504, state: 4}}, us6, peer6, 504, nil},
		{"mapped addresses from the listener", []pcbSock{{local: peer, remote: us, uid: 505, state: 4}}, mapped(us), mapped(peer), 505, nil},
		{"only the agent's own end", []pcbSock{listen, server}, us, peer, 0, ErrNotFound},
		{"same tuple in TIME_WAIT", []pcbSock{{local: peer, remote: us, uid: 502, state: 10}}, us, peer, 0, ErrNotFound},
		{"empty list", nil, us, peer, 0, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findPCBPeerUID(pcbList(t, tt.socks...), tt.us, tt.peer)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("uid %d, want %d", got, tt.want)
			}
		})
	}
}

func TestCheckPCBPeer(t *testing.T) {
	us := netip.MustParseAddrPort("127.0.0.1:43800")
	peer := netip.MustParseAddrPort("127.0.0.1:51234")
	buf := pcbList(t, pcbSock{local: peer, remote: us, uid: 502, state: 4})
	if err := checkPCBPeer(buf, 502, us, peer); err != nil {
		t.Fatalf("same user: %v", err)
	}
	if err := checkPCBPeer(buf, 501, us, peer); !errors.Is(err, ErrOtherUser) {
		t.Fatalf("other user: %v", err)
	}
	if err := checkPCBPeer(buf, 502, us, netip.MustParseAddrPort("127.0.0.1:51235")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown peer: %v", err)
	}
	if err := checkPCBPeer(buf[:len(buf)-40], 502, us, peer); err != nil {
		// Cutting the closing xinpgen and the end of xtcpcb_n overruns a record.
		if !errors.Is(err, errPCBFormat) {
			t.Fatalf("truncated list: %v", err)
		}
	} else {
		t.Fatal("truncated list accepted")
	}
}

func TestParsePCBListMalformed(t *testing.T) {
	us := netip.MustParseAddrPort("127.0.0.1:43800")
	peer := netip.MustParseAddrPort("127.0.0.1:51234")
	good := pcbList(t, pcbSock{local: peer, remote: us, uid: 501, state: 4})
	corrupt := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	const inp = 24                         // the xinpcb_n record
	const sock = inp + 104                 // xsocket_n
	const tcp = sock + 104 + 32 + 32 + 136 // xtcpcb_n
	tests := []struct {
		name string
		buf  []byte
	}{
		{"empty", nil},
		{"shorter than xinpgen", good[:20]},
		{"xig_len below 24", corrupt(0, 8)},
		{"xig_len past the end", corrupt(0, uint32(len(good)+1))},
		{"record past the end", corrupt(inp, uint32(len(good)))},
		{"short xinpcb_n", corrupt(inp, 64)},
		{"short xsocket_n", corrupt(sock, 60)},
		{"short xtcpcb_n", corrupt(tcp, 32)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parsePCBList(tt.buf, func(pcbEntry) bool { return true })
			if !errors.Is(err, errPCBFormat) {
				t.Fatalf("err %v, want errPCBFormat", err)
			}
		})
	}
}

func TestParsePCBListEntries(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:1")
	b := netip.MustParseAddrPort("[fe80::1]:2")
	buf := pcbList(t,
		pcbSock{local: a, remote: a, uid: 1, state: 4},
		pcbSock{local: b, remote: b, v6: true, uid: 2, state: 1},
	)
	var got []pcbEntry
	if err := parsePCBList(buf, func(e pcbEntry) bool { got = append(got, e); return true }); err != nil {
		t.Fatal(err)
	}
	want := []pcbEntry{{Local: a, Remote: a, State: 4, UID: 1}, {Local: b, Remote: b, State: 1, UID: 2}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("entries %+v, want %+v", got, want)
	}
	// fn returning false stops the walk.
	n := 0
	if err := parsePCBList(buf, func(pcbEntry) bool { n++; return false }); err != nil || n != 1 {
		t.Fatalf("stop: %d calls, %v", n, err)
	}
}

func FuzzParsePCBList(f *testing.F) {
	us := netip.MustParseAddrPort("127.0.0.1:43800")
	peer := netip.MustParseAddrPort("127.0.0.1:51234")
	f.Add(pcbList(f, pcbSock{local: peer, remote: us, uid: 501, state: 4}))
	f.Add(pcbList(f, pcbSock{local: peer, remote: us, v6: true, uid: 0, state: 1}, pcbSock{local: us, remote: peer, uid: 7, state: 4}))
	f.Add(pcbList(f))
	f.Fuzz(func(t *testing.T, buf []byte) {
		n := 0
		err := parsePCBList(buf, func(e pcbEntry) bool {
			n++
			if e.Local.Addr().Is4In6() || e.Remote.Addr().Is4In6() {
				t.Fatalf("mapped address not unmapped: %+v", e)
			}
			return true
		})
		// Every entry needs an xinpcb_n of at least 80 bytes.
		if err == nil && n > len(buf)/xinpcbMinLen {
			t.Fatalf("%d entries from %d bytes", n, len(buf))
		}
		_, _ = findPCBPeerUID(buf, us, peer)
	})
}
