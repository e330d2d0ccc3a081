package peer

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Supported says whether CheckAddrs really checks the peer's user.
const Supported = true

// diagWorks is set once a sock_diag query has been answered: from then on
// "no such socket" from the kernel is believed rather than checked again in
// /proc (before, ENOENT may also mean "no sock_diag handler for TCP").
var diagWorks atomic.Bool

// CheckAddrs asks the kernel (netlink sock_diag) for the client's socket and
// compares its owner's uid with ours. Where sock_diag does not answer it
// reads /proc/net/tcp{,6} instead.
func CheckAddrs(us, peer netip.AddrPort) error {
	return checkUID(os.Getuid(), us, peer, "/proc/net")
}

func checkUID(want int, us, peer netip.AddrPort, procDir string) error {
	uid, err := diagOwner(us, peer)
	if err == nil {
		diagWorks.Store(true)
	} else if !errors.Is(err, ErrNotFound) || !diagWorks.Load() {
		// sock_diag unavailable (or not yet known to work): the /proc tables.
		uid, err = procOwner(procDir, us, peer)
	}
	if err != nil {
		return err
	}
	if uid != want {
		return fmt.Errorf("%w (uid %d)", ErrOtherUser, uid)
	}
	return nil
}

// diagOwner returns the uid owning the established socket whose local end
// is peer and remote end us. A client reaching an IPv4 listener may use an
// IPv4 socket or a dual-stack IPv6 one with IPv4-mapped addresses; the
// kernel finds both through an AF_INET query, and the AF_INET6 form is
// tried when the first finds nothing.
func diagOwner(us, peer netip.AddrPort) (int, error) {
	us, peer = unmapAP(us), unmapAP(peer)
	if us.Addr().Is4() != peer.Addr().Is4() {
		return -1, ErrNotFound
	}
	diag.mu.Lock()
	defer diag.mu.Unlock()
	uid, err := diag.owner(us, peer)
	if err != nil && !errors.Is(err, ErrNotFound) {
		diag.close() // start afresh with a new socket next time
	}
	return uid, err
}

// diag is the netlink socket the queries share (opened on first use; the
// kernel answers a query before sendto returns, so one socket serves all
// with little waiting), and the sequence number of the last query.
var diag diagSocket

type diagSocket struct {
	mu  sync.Mutex
	fd  int // 0: not open
	seq uint32
}

func (d *diagSocket) close() {
	if d.fd > 0 {
		unix.Close(d.fd)
	}
	d.fd = 0
}

func (d *diagSocket) owner(us, peer netip.AddrPort) (int, error) {
	if d.fd <= 0 {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		if err != nil {
			return -1, fmt.Errorf("netlink socket: %w", err)
		}
		tv := unix.Timeval{Sec: 1}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("netlink socket: %w", err)
		}
		d.fd = fd
	}
	d.seq++
	if !peer.Addr().Is4() {
		return diagQuery(d.fd, d.seq, unix.AF_INET6, us, peer)
	}
	uid, err := diagQuery(d.fd, d.seq, unix.AF_INET, us, peer)
	if errors.Is(err, ErrNotFound) {
		m := func(ap netip.AddrPort) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port())
		}
		d.seq++
		uid, err = diagQuery(d.fd, d.seq, unix.AF_INET6, m(us), m(peer))
	}
	return uid, err
}

func diagQuery(fd int, seq uint32, family uint8, us, peer netip.AddrPort) (int, error) {
	req := diagRequest(seq, family, us, peer)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return -1, fmt.Errorf("netlink send: %w", err)
	}
	var buf [4096]byte
	for {
		n, _, err := unix.Recvfrom(fd, buf[:], 0)
		if err != nil {
			return -1, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return -1, fmt.Errorf("netlink receive: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // an answer to an earlier query
			}
			return parseDiagReply(m.Header.Type, m.Data, us, peer)
		}
	}
}
