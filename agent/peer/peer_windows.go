package peer

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"unsafe"
)

// Supported says whether CheckAddrs really checks the peer's user.
const Supported = true

// golang.org/x/sys is not a dependency of this module: the few calls go
// through syscall and lazily loaded DLL procedures (no cgo).
var (
	iphlpapi                 = syscall.NewLazyDLL("iphlpapi.dll")
	procGetExtendedTcpTable  = iphlpapi.NewProc("GetExtendedTcpTable")
	kernel32                 = syscall.NewLazyDLL("kernel32.dll")
	procProcessIdToSessionId = kernel32.NewProc("ProcessIdToSessionId")
)

const (
	afInet                         = 2
	afInet6                        = 23
	tcpTableOwnerPIDAll            = 5
	errorInsufficientBuffer        = 122
	processQueryLimitedInformation = 0x1000
)

// CheckAddrs finds the process owning the client's socket and compares its
// session and user SID with the agent's.
func CheckAddrs(us, peer netip.AddrPort) error {
	af, v6 := uint32(afInet), false
	if peer.Addr().Unmap().Is6() {
		af, v6 = afInet6, true
	}
	buf, err := extendedTCPTable(af)
	if err != nil {
		return err
	}
	rows, err := parseTCPTable(buf, v6)
	if err != nil {
		return err
	}
	pid, err := findPeerPID(rows, us, peer)
	if err != nil {
		return err
	}
	self := uint32(os.Getpid())
	if pid == self {
		return nil
	}
	mySess, err := sessionOf(self)
	if err != nil {
		return err
	}
	peerSess, err := sessionOf(pid)
	if err != nil {
		return err
	}
	if mySess != peerSess {
		return fmt.Errorf("%w (session %d)", ErrOtherUser, peerSess)
	}
	mySID, err := userSID(self)
	if err != nil {
		return err
	}
	peerSID, err := userSID(pid)
	if err != nil {
		return err
	}
	if mySID != peerSID {
		return fmt.Errorf("%w (SID %s)", ErrOtherUser, peerSID)
	}
	return nil
}

func extendedTCPTable(af uint32) ([]byte, error) {
	size := uint32(16 << 10)
	for range 5 { // the table can grow between the size query and the call
		buf := make([]byte, size)
		r, _, _ := procGetExtendedTcpTable.Call(
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0,
			uintptr(af), tcpTableOwnerPIDAll, 0)
		switch r {
		case 0:
			return buf[:size], nil
		case errorInsufficientBuffer:
			size += 4 << 10
			continue
		default:
			return nil, fmt.Errorf("GetExtendedTcpTable: %w", syscall.Errno(r))
		}
	}
	return nil, errors.New("GetExtendedTcpTable: table keeps growing")
}

func sessionOf(pid uint32) (uint32, error) {
	var sess uint32
	r, _, e := procProcessIdToSessionId.Call(uintptr(pid), uintptr(unsafe.Pointer(&sess)))
	if r == 0 {
		return 0, fmt.Errorf("ProcessIdToSessionId(%d): %w", pid, e)
	}
	return sess, nil
}

func userSID(pid uint32) (string, error) {
	h, err := syscall.OpenProcess(processQueryLimitedInformation, false, pid)
	if err != nil {
		return "", fmt.Errorf("opening process %d: %w", pid, err)
	}
	defer syscall.CloseHandle(h)
	var tok syscall.Token
	if err := syscall.OpenProcessToken(h, syscall.TOKEN_QUERY, &tok); err != nil {
		return "", fmt.Errorf("opening token of process %d: %w", pid, err)
	}
	defer tok.Close()
	tu, err := tok.GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("reading token user of process %d: %w", pid, err)
	}
	return tu.User.Sid.String()
}
