package peer

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

var (
	diagUs   = netip.MustParseAddrPort("127.0.0.1:43800")
	diagPeer = netip.MustParseAddrPort("127.0.0.1:51000")
)

// diagAnswer builds an inet_diag_msg as the kernel sends it.
func diagAnswer(family, state uint8, src, dst netip.AddrPort, uid uint32) []byte {
	b := make([]byte, diagMsgLen)
	b[0], b[1] = family, state
	putSockID(b[4:52], src, dst)
	binary.NativeEndian.PutUint32(b[64:], uid)
	return b
}

func errAnswer(errno int32) []byte {
	b := make([]byte, 20)
	binary.NativeEndian.PutUint32(b, uint32(-errno))
	return b
}

func TestDiagRequest(t *testing.T) {
	req := diagRequest(7, syscallAFInet, diagUs, diagPeer)
	ne := binary.NativeEndian
	if len(req) != 72 || ne.Uint32(req) != 72 || ne.Uint16(req[4:]) != 20 || ne.Uint16(req[6:]) != 1 || ne.Uint32(req[8:]) != 7 {
		t.Fatalf("header % X", req[:16])
	}
	r := req[16:]
	if r[0] != 2 || r[1] != 6 || ne.Uint32(r[4:]) != 2 {
		t.Fatalf("request % X", r[:8])
	}
	// Source is the client's end, destination ours, ports big-endian.
	if binary.BigEndian.Uint16(r[8:]) != 51000 || binary.BigEndian.Uint16(r[10:]) != 43800 ||
		[4]byte(r[12:16]) != [4]byte{127, 0, 0, 1} || [4]byte(r[28:32]) != [4]byte{127, 0, 0, 1} {
		t.Fatalf("socket id % X", r[8:56])
	}
	if ne.Uint32(r[48:]) != 0xffffffff || ne.Uint32(r[52:]) != 0xffffffff {
		t.Fatal("cookie is not INET_DIAG_NOCOOKIE")
	}
}

func TestParseDiagReply(t *testing.T) {
	v6us, v6peer := netip.MustParseAddrPort("[::1]:43800"), netip.MustParseAddrPort("[::1]:51000")
	mapped := func(ap netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
	}
	tests := []struct {
		name     string
		typ      uint16
		data     []byte
		us, peer netip.AddrPort
		uid      int
		err      error // nil: any error when uid < 0
	}{
		{"IPv4", 20, diagAnswer(2, 1, diagPeer, diagUs, 1000), diagUs, diagPeer, 1000, nil},
		{"IPv6", 20, diagAnswer(10, 1, v6peer, v6us, 65534), v6us, v6peer, 65534, nil},
		{"mapped answer", 20, diagAnswer(10, 1, mapped(diagPeer), mapped(diagUs), 33), diagUs, diagPeer, 33, nil},
		{"not found", 2, errAnswer(2), diagUs, diagPeer, -1, ErrNotFound},
		{"other errno", 2, errAnswer(13), diagUs, diagPeer, -1, nil},
		{"ack", 2, errAnswer(0), diagUs, diagPeer, -1, nil},
		{"short error", 2, []byte{1}, diagUs, diagPeer, -1, nil},
		{"TIME_WAIT (ownerless, uid 0)", 20, diagAnswer(2, 6, diagPeer, diagUs, 0), diagUs, diagPeer, -1, ErrNotFound},
		{"another socket", 20, diagAnswer(2, 1, diagUs, diagPeer, 1000), diagUs, diagPeer, -1, nil},
		{"other port", 20, diagAnswer(2, 1, netip.MustParseAddrPort("127.0.0.1:51001"), diagUs, 1000), diagUs, diagPeer, -1, nil},
		{"unknown family", 20, diagAnswer(7, 1, diagPeer, diagUs, 1000), diagUs, diagPeer, -1, nil},
		{"short answer", 20, diagAnswer(2, 1, diagPeer, diagUs, 1000)[:60], diagUs, diagPeer, -1, nil},
		{"unexpected type", 3, diagAnswer(2, 1, diagPeer, diagUs, 1000), diagUs, diagPeer, -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, err := parseDiagReply(tt.typ, tt.data, tt.us, tt.peer)
			if tt.uid >= 0 {
				if err != nil || uid != tt.uid {
					t.Fatalf("got %d, %v; want %d", uid, err, tt.uid)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: uid %d", uid)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
		})
	}
}

func FuzzParseDiagReply(f *testing.F) {
	f.Add(uint16(20), diagAnswer(2, 1, diagPeer, diagUs, 1000))
	f.Add(uint16(2), errAnswer(2))
	f.Fuzz(func(t *testing.T, typ uint16, data []byte) {
		uid, err := parseDiagReply(typ, data, diagUs, diagPeer)
		if err == nil && (typ != sockDiagByFamily || len(data) < diagMsgLen || data[1] != tcpEstablished || uid < 0) {
			t.Fatalf("accepted type %d, %d bytes, state %d", typ, len(data), data[1])
		}
	})
}
