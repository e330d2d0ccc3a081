package scard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The macOS PC/SC ABI, as the darwin binding (scard_darwin.go) lays it out
// in memory for the PCSC framework. It is in a file built on every OS so
// that its arithmetic is unit-tested wherever the tests run; docs/macos.md
// explains each point and its source.
//
// Apple's PCSC framework started from pcsc-lite 1.4.0 (Apple's open-source
// SmartCardServices: PCSC/pcsclite.h, PCSC/wintypes.h) and fixed the types'
// widths where pcsc-lite kept C's long:
//
//   - DWORD is uint32_t and LONG (every function's return code) int32_t,
//     on 64-bit macOS too; pcsc-lite on 64-bit Linux uses unsigned long and
//     long (8 bytes).
//   - SCARDCONTEXT and SCARDHANDLE are int32_t (pcsc-lite: long).
//   - SCARD_READERSTATE and SCARD_IO_REQUEST are declared under
//     #pragma pack(1): no padding anywhere, so SCARD_READERSTATE is
//     8+8+4+4+4+33 = 61 bytes and an array of them has a 61-byte stride.
//     On 64-bit Linux the same structure is 8+8+8+8+8+33 = 73 bytes padded
//     to 80.
//   - Both macOS architectures (arm64, amd64) are 64-bit little-endian.
//
// Return codes are the PC/SC values shared with pcsc-lite and Windows
// (SCARD_E_*, SCARD_W_*), returned as an int32: the binding reads the low
// 32 bits and treats them as the unsigned code.

const (
	macPointerSize = 8 // const char *, void *
	macDWORDSize   = 4 // DWORD, LONG, SCARDCONTEXT, SCARDHANDLE
	macMaxATR      = 33

	// SCARD_READERSTATE, packed.
	macRSReader        = 0                                                // const char *szReader
	macRSUserData      = macRSReader + macPointerSize                     // void *pvUserData (8)
	macRSCurrentState  = macRSUserData + macPointerSize                   // DWORD dwCurrentState (16)
	macRSEventState    = macRSCurrentState + macDWORDSize                 // DWORD dwEventState (20)
	macRSATRLen        = macRSEventState + macDWORDSize                   // DWORD cbAtr (24)
	macRSATR           = macRSATRLen + macDWORDSize                       // BYTE rgbAtr[33] (28)
	macReaderStateSize = macRSATR + macMaxATR                             // 61
	macIORequestSize   = macDWORDSize + macDWORDSize                      // SCARD_IO_REQUEST {DWORD dwProtocol, cbPciLength}
	macInfinite        = 0xFFFFFFFF                                       // INFINITE timeout
	macMaxBuffer       = 4 + 3 + (1 << 16) + 3                            // MAX_BUFFER_SIZE_EXTENDED: largest response
	macMaxReaders      = 64                                               // a sanity cap for one GetStatusChange
	macReaderListMax   = 1 << 16                                          // a sanity cap for SCardListReaders' buffer
	macScopeSystem     = 2                                                // SCARD_SCOPE_SYSTEM
	macReaderBufSize   = 1024                                             // SCardStatus' reader-name buffer
	macFrameworkPath   = "/System/Library/Frameworks/PCSC.framework/PCSC" // dlopen'ed by the darwin binding
)

var errLayout = errors.New("scard: malformed PC/SC structure")

// putMacReaderState writes one packed SCARD_READERSTATE into b:
// name is the address of the reader's NUL-terminated name.
func putMacReaderState(b []byte, name uint64, current uint32, atr []byte) error {
	if len(b) < macReaderStateSize {
		return fmt.Errorf("%w: %d bytes for a reader state", errLayout, len(b))
	}
	if len(atr) > macMaxATR {
		return fmt.Errorf("%w: ATR of %d bytes", errLayout, len(atr))
	}
	clear(b[:macReaderStateSize])
	binary.LittleEndian.PutUint64(b[macRSReader:], name)
	binary.LittleEndian.PutUint32(b[macRSCurrentState:], current)
	binary.LittleEndian.PutUint32(b[macRSATRLen:], uint32(len(atr)))
	copy(b[macRSATR:macRSATR+macMaxATR], atr)
	return nil
}

// macReaderStateResult reads what SCardGetStatusChange wrote back into one
// packed SCARD_READERSTATE: the event state and the ATR (nil when cbAtr is 0).
func macReaderStateResult(b []byte) (event uint32, atr []byte, err error) {
	if len(b) < macReaderStateSize {
		return 0, nil, fmt.Errorf("%w: %d bytes for a reader state", errLayout, len(b))
	}
	event = binary.LittleEndian.Uint32(b[macRSEventState:])
	n := binary.LittleEndian.Uint32(b[macRSATRLen:])
	if n > macMaxATR {
		return 0, nil, fmt.Errorf("%w: cbAtr %d", errLayout, n)
	}
	if n > 0 {
		atr = append([]byte(nil), b[macRSATR:macRSATR+int(n)]...)
	}
	return event, atr, nil
}

// putMacIORequest writes a SCARD_IO_REQUEST for protocol (T=0 or T=1).
func putMacIORequest(b []byte, protocol uint32) {
	binary.LittleEndian.PutUint32(b[0:], protocol)
	binary.LittleEndian.PutUint32(b[4:], macIORequestSize)
}

// cString is s as a NUL-terminated C string; s must not contain NUL.
func cString(s string) ([]byte, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, fmt.Errorf("%w: NUL in reader name %q", errLayout, s)
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b, nil
}

// splitMultiString splits a PC/SC multi-string ("a\0b\0\0"), as
// SCardListReaders writes it, into its strings. It stops at the first
// empty string or the end of b.
func splitMultiString(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i == 0 {
			break
		}
		out = append(out, string(b[:i]))
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

// macTimeout converts GetStatusChange's timeout: negative means wait for
// ever (INFINITE), otherwise whole milliseconds, capped below INFINITE.
func macTimeout(d time.Duration) uint32 {
	if d < 0 {
		return macInfinite
	}
	ms := d / time.Millisecond
	if ms >= macInfinite {
		return macInfinite - 1
	}
	return uint32(ms)
}

// macResult turns a returned LONG into the PC/SC code: the low 32 bits,
// unsigned (SCARD_W_REMOVED_CARD is the int32 -2146434967, 0x80100069).
func macResult(r int32) uint32 { return uint32(r) }

// The PC/SC values the darwin binding declares (Apple's pcsclite.h; the
// same values as pcsc-lite and Windows, which the tests check against
// github.com/ebfe/scard's cgo constants on Linux).
const (
	codeSuccess            = 0x00000000 // SCARD_S_SUCCESS
	codeInternalError      = 0x80100001 // SCARD_F_INTERNAL_ERROR
	codeCancelled          = 0x80100002 // SCARD_E_CANCELLED
	codeInvalidHandle      = 0x80100003 // SCARD_E_INVALID_HANDLE
	codeInvalidParameter   = 0x80100004 // SCARD_E_INVALID_PARAMETER
	codeNoMemory           = 0x80100006 // SCARD_E_NO_MEMORY
	codeInsufficientBuffer = 0x80100008 // SCARD_E_INSUFFICIENT_BUFFER
	codeUnknownReader      = 0x80100009 // SCARD_E_UNKNOWN_READER
	codeTimeout            = 0x8010000A // SCARD_E_TIMEOUT
	codeSharingViolation   = 0x8010000B // SCARD_E_SHARING_VIOLATION
	codeNoSmartcard        = 0x8010000C // SCARD_E_NO_SMARTCARD
	codeProtoMismatch      = 0x8010000F // SCARD_E_PROTO_MISMATCH
	codeNotReady           = 0x80100010 // SCARD_E_NOT_READY
	codeInvalidValue       = 0x80100011 // SCARD_E_INVALID_VALUE
	codeSystemCancelled    = 0x80100012 // SCARD_E_SYSTEM_CANCELLED
	codeCommError          = 0x80100013 // SCARD_F_COMM_ERROR
	codeUnknownError       = 0x80100014 // SCARD_F_UNKNOWN_ERROR
	codeNotTransacted      = 0x80100016 // SCARD_E_NOT_TRANSACTED
	codeReaderUnavailable  = 0x80100017 // SCARD_E_READER_UNAVAILABLE
	codeShutdown           = 0x80100018 // SCARD_P_SHUTDOWN
	codeNoService          = 0x8010001D // SCARD_E_NO_SERVICE
	codeServiceStopped     = 0x8010001E // SCARD_E_SERVICE_STOPPED
	codeNoReadersAvailable = 0x8010002E // SCARD_E_NO_READERS_AVAILABLE
	codeCommDataLost       = 0x8010002F // SCARD_E_COMM_DATA_LOST (Windows)
	codeUnsupportedCard    = 0x80100065 // SCARD_W_UNSUPPORTED_CARD
	codeUnresponsiveCard   = 0x80100066 // SCARD_W_UNRESPONSIVE_CARD
	codeUnpoweredCard      = 0x80100067 // SCARD_W_UNPOWERED_CARD
	codeResetCard          = 0x80100068 // SCARD_W_RESET_CARD
	codeRemovedCard        = 0x80100069 // SCARD_W_REMOVED_CARD
	codeCancelledByUser    = 0x8010006E // SCARD_W_CANCELLED_BY_USER (Windows)

	flagUnaware     = 0x0000 // SCARD_STATE_UNAWARE
	flagIgnore      = 0x0001 // SCARD_STATE_IGNORE
	flagChanged     = 0x0002 // SCARD_STATE_CHANGED
	flagUnknown     = 0x0004 // SCARD_STATE_UNKNOWN
	flagUnavailable = 0x0008 // SCARD_STATE_UNAVAILABLE
	flagEmpty       = 0x0010 // SCARD_STATE_EMPTY
	flagPresent     = 0x0020 // SCARD_STATE_PRESENT
	flagAtrmatch    = 0x0040 // SCARD_STATE_ATRMATCH
	flagExclusive   = 0x0080 // SCARD_STATE_EXCLUSIVE
	flagInuse       = 0x0100 // SCARD_STATE_INUSE
	flagMute        = 0x0200 // SCARD_STATE_MUTE
	flagUnpowered   = 0x0400 // SCARD_STATE_UNPOWERED

	stateUnknown    = 0x0001 // SCARD_UNKNOWN
	stateAbsent     = 0x0002 // SCARD_ABSENT
	statePresent    = 0x0004 // SCARD_PRESENT
	stateSwallowed  = 0x0008 // SCARD_SWALLOWED
	statePowered    = 0x0010 // SCARD_POWERED
	stateNegotiable = 0x0020 // SCARD_NEGOTIABLE
	stateSpecific   = 0x0040 // SCARD_SPECIFIC

	shareExclusive = 1 // SCARD_SHARE_EXCLUSIVE
	shareShared    = 2 // SCARD_SHARE_SHARED
	shareDirect    = 3 // SCARD_SHARE_DIRECT

	protocolUndefined = 0 // SCARD_PROTOCOL_UNDEFINED
	protocolT0        = 1 // SCARD_PROTOCOL_T0
	protocolT1        = 2 // SCARD_PROTOCOL_T1

	dispositionLeave   = 0 // SCARD_LEAVE_CARD
	dispositionReset   = 1 // SCARD_RESET_CARD
	dispositionUnpower = 2 // SCARD_UNPOWER_CARD
	dispositionEject   = 3 // SCARD_EJECT_CARD
)

// codeText names the PC/SC codes above, for error messages.
var codeText = map[uint32]string{
	codeSuccess:            "success",
	codeInternalError:      "internal error",
	codeCancelled:          "cancelled",
	codeInvalidHandle:      "invalid handle",
	codeInvalidParameter:   "invalid parameter",
	codeNoMemory:           "not enough memory",
	codeInsufficientBuffer: "insufficient buffer",
	codeUnknownReader:      "unknown reader",
	codeTimeout:            "timeout",
	codeSharingViolation:   "sharing violation",
	codeNoSmartcard:        "no smart card",
	codeProtoMismatch:      "protocol mismatch",
	codeNotReady:           "not ready",
	codeInvalidValue:       "invalid value",
	codeSystemCancelled:    "cancelled by the system",
	codeCommError:          "communication error",
	codeUnknownError:       "unknown error",
	codeNotTransacted:      "not transacted",
	codeReaderUnavailable:  "reader unavailable",
	codeShutdown:           "shutting down",
	codeNoService:          "smart-card service not running",
	codeServiceStopped:     "smart-card service stopped",
	codeNoReadersAvailable: "no readers available",
	codeCommDataLost:       "communication data lost",
	codeUnsupportedCard:    "unsupported card",
	codeUnresponsiveCard:   "unresponsive card",
	codeUnpoweredCard:      "unpowered card",
	codeResetCard:          "card was reset",
	codeRemovedCard:        "card was removed",
	codeCancelledByUser:    "cancelled by the user",
}

// errorText is the message of a PC/SC code: "scard: card was removed", or
// the code in hex when it has no name here.
func errorText(code uint32) string {
	if s, ok := codeText[code]; ok {
		return "scard: " + s
	}
	return fmt.Sprintf("scard: PC/SC error 0x%08X", code)
}
