package peer

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// procTCPEntry is one socket from Linux's /proc/net/tcp or /proc/net/tcp6.
type procTCPEntry struct {
	Local, Remote netip.AddrPort // IPv4-mapped addresses are unmapped
	State         uint8          // 0x01 is ESTABLISHED
	UID           int
	Inode         uint64
}

var errProcFormat = errors.New("unexpected /proc/net/tcp format")

// parseProcNetTCP reads a /proc/net/tcp or /proc/net/tcp6 table and calls fn
// for every socket until fn returns false. Lines it cannot parse are an error
// (the format has been stable since Linux 2.6; anything else is not trusted).
//
//	sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
//	 0: 0100007F:AB3C 0100007F:A8F4 01 00000000:00000000 00:00000000 00000000     0        0 1234 ...
//
// Addresses are the kernel's in-memory words printed in hex: one 32-bit word
// (IPv4) or four (IPv6), each in host byte order; ports are plain hex numbers.
func parseProcNetTCP(r io.Reader, fn func(procTCPEntry) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if !strings.Contains(line, "local_address") {
				return fmt.Errorf("%w: no header", errProcFormat)
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		e, err := parseProcTCPLine(line)
		if err != nil {
			return err
		}
		if !fn(e) {
			return nil
		}
	}
	return sc.Err()
}

func parseProcTCPLine(line string) (procTCPEntry, error) {
	f := strings.Fields(line)
	if len(f) < 10 || !strings.HasSuffix(f[0], ":") {
		return procTCPEntry{}, fmt.Errorf("%w: %d fields", errProcFormat, len(f))
	}
	var e procTCPEntry
	var err error
	if e.Local, err = parseProcAddr(f[1]); err != nil {
		return e, err
	}
	if e.Remote, err = parseProcAddr(f[2]); err != nil {
		return e, err
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return e, fmt.Errorf("%w: state %q", errProcFormat, f[3])
	}
	e.State = uint8(st)
	uid, err := strconv.ParseUint(f[7], 10, 32)
	if err != nil {
		return e, fmt.Errorf("%w: uid %q", errProcFormat, f[7])
	}
	e.UID = int(uid)
	if e.Inode, err = strconv.ParseUint(f[9], 10, 64); err != nil {
		return e, fmt.Errorf("%w: inode %q", errProcFormat, f[9])
	}
	return e, nil
}

// parseProcAddr parses "0100007F:A8F4" (IPv4) or 32 hex digits and a port (IPv6).
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok || len(p) != 4 {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", errProcFormat, s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: port %q", errProcFormat, p)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("%w: address %q", errProcFormat, h)
	}
	// Each 32-bit word was printed as a number: undo that to get the
	// in-memory (network order) bytes.
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	var a netip.Addr
	if len(b) == 4 {
		a = netip.AddrFrom4([4]byte(b))
	} else {
		a = netip.AddrFrom16([16]byte(b)).Unmap()
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// findPeerUID looks through the tables for the established socket whose
// local end is peer and remote end is us: the client's end of our
// connection. It returns its owner's uid.
func findPeerUID(tables []io.Reader, us, peer netip.AddrPort) (int, error) {
	us, peer = unmapAP(us), unmapAP(peer)
	uid, found := -1, false
	for _, t := range tables {
		err := parseProcNetTCP(t, func(e procTCPEntry) bool {
			if e.State == tcpEstablished && e.Local == peer && e.Remote == us {
				uid, found = e.UID, true
				return false
			}
			return true
		})
		if err != nil {
			return -1, err
		}
		if found {
			return uid, nil
		}
	}
	return -1, ErrNotFound
}
