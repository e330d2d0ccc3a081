package peer

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// loopbackPair returns both ends of a real loopback connection: the
// client dials network/addr, the listener listens on lnet/laddr.
func loopbackPair(t testing.TB, lnet, laddr, dnet, daddr string) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen(lnet, laddr)
	if err != nil {
		t.Skipf("listen %s %s: %v", lnet, laddr, err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	c, err := net.Dial(dnet, net.JoinHostPort(daddr, port))
	if err != nil {
		t.Skipf("dial %s %s: %v", dnet, daddr, err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s, c
}

func ends(c net.Conn) (us, peer netip.AddrPort) {
	return c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort()
}

// TestDiagOwnerRealSockets asks the kernel (sock_diag) about real
// connections and compares with the /proc tables: IPv4, IPv6, and a
// dual-stack IPv6 client socket reaching an IPv4 listener.
func TestDiagOwnerRealSockets(t *testing.T) {
	cases := []struct{ name, lnet, laddr, dnet, daddr string }{
		{"IPv4", "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1"},
		{"IPv6", "tcp6", "[::1]:0", "tcp6", "::1"},
		{"dual-stack client to IPv4", "tcp4", "127.0.0.1:0", "tcp", "::ffff:127.0.0.1"},
		{"dual-stack listener", "tcp", "[::]:0", "tcp4", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := loopbackPair(t, tc.lnet, tc.laddr, tc.dnet, tc.daddr)
			us, peer := ends(s)
			uid, err := diagOwner(us, peer)
			if err != nil || uid != os.Getuid() {
				t.Fatalf("diagOwner(%s, %s) = %d, %v; want %d", us, peer, uid, err, os.Getuid())
			}
			puid, err := procOwner("/proc/net", us, peer)
			if err != nil || puid != uid {
				t.Fatalf("/proc says %d, %v; sock_diag %d", puid, err, uid)
			}
			if err := Check(s); err != nil {
				t.Fatalf("Check: %v", err)
			}
			// Our own end is not the client's socket: as the peer it is
			// another socket, owned by us too, but the check asks for the
			// socket whose remote end is us.
			if _, err := diagOwner(peer, us); err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatalf("reversed: %v", err)
			}
		})
	}
}

func TestDiagOwnerNotFound(t *testing.T) {
	s, _ := loopbackPair(t, "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1")
	us, _ := ends(s)
	gone := netip.MustParseAddrPort("127.0.0.1:1")
	if _, err := diagOwner(us, gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no such socket: %v, want ErrNotFound", err)
	}
	if err := CheckAddrs(us, gone); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CheckAddrs: %v, want ErrNotFound", err)
	}
	// Mixed families cannot be one connection.
	if _, err := diagOwner(us, netip.MustParseAddrPort("[::1]:1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("mixed families: %v", err)
	}
}

// TestCheckUIDOtherUser: a socket owned by us is refused when another uid is expected.
func TestCheckUIDOtherUser(t *testing.T) {
	s, _ := loopbackPair(t, "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1")
	us, peer := ends(s)
	if err := checkUID(os.Getuid()+1, us, peer, "/proc/net"); !errors.Is(err, ErrOtherUser) {
		t.Fatalf("checkUID as another uid: %v", err)
	}
}

// TestClosedClientRefused: once the client has closed, its socket leaves
// ESTABLISHED (and may become an ownerless TIME_WAIT socket that reads as
// uid 0): it is never taken as our user's.
func TestClosedClientRefused(t *testing.T) {
	s, c := loopbackPair(t, "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1")
	us, peer := ends(s)
	c.Close()
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after the client closed")
	}
	if err := CheckAddrs(us, peer); err == nil {
		t.Fatal("a closed client's socket passed")
	}
}

func TestProcOwnerMissingTable(t *testing.T) {
	_, err := procOwner(t.TempDir(), netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
	if err == nil {
		t.Fatal("no socket table, yet the peer was found")
	}
}

// BenchmarkCheck compares the cost of one check: the netlink query for the
// one socket, and the /proc/net/tcp{,6} read it replaces. Both run on a
// real connection; the /proc cost grows with the number of sockets on the
// machine (the kernel walks its whole TCP hash table per read).
func BenchmarkCheck(b *testing.B) {
	s, _ := loopbackPair(b, "tcp4", "127.0.0.1:0", "tcp4", "127.0.0.1")
	us, peer := ends(s)
	b.Run("netlink", func(b *testing.B) {
		for b.Loop() {
			if _, err := diagOwner(us, peer); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proc", func(b *testing.B) {
		for b.Loop() {
			if _, err := procOwner("/proc/net", us, peer); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAcceptCheck measures a whole connection (dial, accept, check,
// close) with a bare listener, with the Listener and a check that does
// nothing (the cost of checking off the accept loop), with the Listener
// using the netlink lookup, and with the Listener using the /proc lookup; it reports the process's
// CPU time per connection (client and server: the difference between the
// variants is the server's check).
func BenchmarkAcceptCheck(b *testing.B) {
	procCheck := func(us, peer netip.AddrPort) error {
		uid, err := procOwner("/proc/net", us, peer)
		if err == nil && uid != os.Getuid() {
			err = ErrOtherUser
		}
		return err
	}
	variants := []struct {
		name  string
		check Checker
	}{{"bare", nil}, {"listener-nocheck", func(netip.AddrPort, netip.AddrPort) error { return nil }}, {"netlink", CheckAddrs}, {"proc", procCheck}}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			inner, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var l net.Listener = inner
			if v.check != nil {
				l = NewListener(inner, ListenerOptions{Check: v.check, MaxConns: 1 << 20})
			}
			defer l.Close()
			addr := l.Addr().String()
			cpu0 := cpuTime(b)
			n := 0
			for b.Loop() {
				c, err := net.Dial("tcp4", addr)
				if err != nil {
					b.Fatal(err)
				}
				s, err := l.Accept()
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
				c.Close()
				n++
			}
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(n), "cpu-ns/conn")
		})
	}
}
