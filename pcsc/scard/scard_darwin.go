//go:build darwin

package scard

import (
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// macOS: Apple's PCSC framework, loaded with dlopen and called through
// purego, without cgo. The memory layouts are in macabi.go.

// Error is a PC/SC return code.
type Error uint32

func (e Error) Error() string { return errorText(uint32(e)) }

type (
	StateFlag   uint32
	State       uint32
	ShareMode   uint32
	Protocol    uint32
	Disposition uint32
)

// ReaderState is one reader in a GetStatusChange call.
type ReaderState struct {
	Reader       string
	UserData     any // not passed to PC/SC
	CurrentState StateFlag
	EventState   StateFlag
	Atr          []byte
}

// CardStatus is what SCardStatus reports.
type CardStatus struct {
	Reader         string
	State          State
	ActiveProtocol Protocol
	Atr            []byte
}

const (
	ErrSuccess            Error = codeSuccess
	ErrInternalError      Error = codeInternalError
	ErrCancelled          Error = codeCancelled
	ErrInvalidHandle      Error = codeInvalidHandle
	ErrInvalidParameter   Error = codeInvalidParameter
	ErrNoMemory           Error = codeNoMemory
	ErrInsufficientBuffer Error = codeInsufficientBuffer
	ErrUnknownReader      Error = codeUnknownReader
	ErrTimeout            Error = codeTimeout
	ErrSharingViolation   Error = codeSharingViolation
	ErrNoSmartcard        Error = codeNoSmartcard
	ErrProtoMismatch      Error = codeProtoMismatch
	ErrNotReady           Error = codeNotReady
	ErrInvalidValue       Error = codeInvalidValue
	ErrSystemCancelled    Error = codeSystemCancelled
	ErrCommError          Error = codeCommError
	ErrUnknownError       Error = codeUnknownError
	ErrNotTransacted      Error = codeNotTransacted
	ErrReaderUnavailable  Error = codeReaderUnavailable
	ErrShutdown           Error = codeShutdown
	ErrNoService          Error = codeNoService
	ErrServiceStopped     Error = codeServiceStopped
	ErrNoReadersAvailable Error = codeNoReadersAvailable
	ErrCommDataLost       Error = codeCommDataLost
	ErrUnsupportedCard    Error = codeUnsupportedCard
	ErrUnresponsiveCard   Error = codeUnresponsiveCard
	ErrUnpoweredCard      Error = codeUnpoweredCard
	ErrResetCard          Error = codeResetCard
	ErrRemovedCard        Error = codeRemovedCard
	ErrCancelledByUser    Error = codeCancelledByUser

	StateUnaware     StateFlag = flagUnaware
	StateIgnore      StateFlag = flagIgnore
	StateChanged     StateFlag = flagChanged
	StateUnknown     StateFlag = flagUnknown
	StateUnavailable StateFlag = flagUnavailable
	StateEmpty       StateFlag = flagEmpty
	StatePresent     StateFlag = flagPresent
	StateAtrmatch    StateFlag = flagAtrmatch
	StateExclusive   StateFlag = flagExclusive
	StateInuse       StateFlag = flagInuse
	StateMute        StateFlag = flagMute
	StateUnpowered   StateFlag = flagUnpowered

	Unknown    State = stateUnknown
	Absent     State = stateAbsent
	Present    State = statePresent
	Swallowed  State = stateSwallowed
	Powered    State = statePowered
	Negotiable State = stateNegotiable
	Specific   State = stateSpecific

	ShareExclusive ShareMode = shareExclusive
	ShareShared    ShareMode = shareShared
	ShareDirect    ShareMode = shareDirect

	ProtocolUndefined Protocol = protocolUndefined
	ProtocolT0        Protocol = protocolT0
	ProtocolT1        Protocol = protocolT1
	ProtocolAny       Protocol = protocolT0 | protocolT1

	LeaveCard   Disposition = dispositionLeave
	ResetCard   Disposition = dispositionReset
	UnpowerCard Disposition = dispositionUnpower
	EjectCard   Disposition = dispositionEject
)

// The framework's functions, with macOS's widths: handles int32, DWORD
// uint32, LONG int32 (macabi.go).
var pcsc struct {
	once sync.Once
	err  error

	establishContext func(scope uint32, r1, r2 unsafe.Pointer, ctx *int32) int32
	releaseContext   func(ctx int32) int32
	cancel           func(ctx int32) int32
	listReaders      func(ctx int32, groups *byte, readers *byte, n *uint32) int32
	getStatusChange  func(ctx int32, timeout uint32, states unsafe.Pointer, n uint32) int32
	connect          func(ctx int32, reader *byte, share, protocols uint32, card *int32, active *uint32) int32
	reconnect        func(card int32, share, protocols, init uint32, active *uint32) int32
	disconnect       func(card int32, disposition uint32) int32
	beginTransaction func(card int32) int32
	endTransaction   func(card int32, disposition uint32) int32
	status           func(card int32, names *byte, namesLen *uint32, state, protocol *uint32, atr *byte, atrLen *uint32) int32
	transmit         func(card int32, sendPCI unsafe.Pointer, cmd *byte, cmdLen uint32, recvPCI unsafe.Pointer, rsp *byte, rspLen *uint32) int32
}

// load opens the framework once. A failure is reported as ErrNoService
// (wrapped with the cause), which the agent shows as "smart-card service
// unavailable".
func load() error {
	pcsc.once.Do(func() {
		h, err := purego.Dlopen(macFrameworkPath, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			pcsc.err = fmt.Errorf("%w: loading %s: %v", ErrNoService, macFrameworkPath, err)
			return
		}
		for _, f := range []struct {
			name string
			fn   any
		}{
			{"SCardEstablishContext", &pcsc.establishContext},
			{"SCardReleaseContext", &pcsc.releaseContext},
			{"SCardCancel", &pcsc.cancel},
			{"SCardListReaders", &pcsc.listReaders},
			{"SCardGetStatusChange", &pcsc.getStatusChange},
			{"SCardConnect", &pcsc.connect},
			{"SCardReconnect", &pcsc.reconnect},
			{"SCardDisconnect", &pcsc.disconnect},
			{"SCardBeginTransaction", &pcsc.beginTransaction},
			{"SCardEndTransaction", &pcsc.endTransaction},
			{"SCardStatus", &pcsc.status},
			{"SCardTransmit", &pcsc.transmit},
		} {
			sym, err := purego.Dlsym(h, f.name)
			if err != nil {
				pcsc.err = fmt.Errorf("%w: %s: %v", ErrNoService, f.name, err)
				return
			}
			purego.RegisterFunc(f.fn, sym)
		}
	})
	return pcsc.err
}

func result(r int32) error {
	if c := macResult(r); c != codeSuccess {
		return Error(c)
	}
	return nil
}

// Context is a PC/SC context (SCARDCONTEXT).
type Context struct{ h int32 }

// Card is a connection to a card (SCARDHANDLE).
type Card struct {
	h        int32
	protocol Protocol
}

// EstablishContext opens a PC/SC context (system scope).
func EstablishContext() (*Context, error) {
	if err := load(); err != nil {
		return nil, err
	}
	var h int32
	if err := result(pcsc.establishContext(macScopeSystem, nil, nil, &h)); err != nil {
		return nil, err
	}
	return &Context{h: h}, nil
}

// Release releases the context (SCardReleaseContext).
func (c *Context) Release() error { return result(pcsc.releaseContext(c.h)) }

// Cancel wakes a GetStatusChange blocked on this context (SCardCancel).
func (c *Context) Cancel() error { return result(pcsc.cancel(c.h)) }

// ListReaders lists the connected readers (SCardListReaders).
func (c *Context) ListReaders() ([]string, error) {
	for range 3 { // a reader may appear between the two calls
		var n uint32
		if err := result(pcsc.listReaders(c.h, nil, nil, &n)); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		if n > macReaderListMax {
			return nil, fmt.Errorf("%w: reader list of %d bytes", errLayout, n)
		}
		buf := make([]byte, n)
		err := result(pcsc.listReaders(c.h, nil, &buf[0], &n))
		if err == ErrInsufficientBuffer {
			continue
		}
		if err != nil {
			return nil, err
		}
		return splitMultiString(buf[:min(int(n), len(buf))]), nil
	}
	return nil, ErrInsufficientBuffer
}

// GetStatusChange waits until one of the readers' state differs from its
// CurrentState, or timeout passes (negative: no limit), and sets each
// EventState and Atr (SCardGetStatusChange).
func (c *Context) GetStatusChange(states []ReaderState, timeout time.Duration) error {
	if len(states) == 0 || len(states) > macMaxReaders {
		return ErrInvalidParameter
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	buf := make([]byte, len(states)*macReaderStateSize)
	for i, st := range states {
		name, err := cString(st.Reader)
		if err != nil {
			return err
		}
		pin.Pin(&name[0])
		addr := uint64(uintptr(unsafe.Pointer(&name[0])))
		if err := putMacReaderState(buf[i*macReaderStateSize:], addr, uint32(st.CurrentState), st.Atr); err != nil {
			return err
		}
	}
	pin.Pin(&buf[0])
	if err := result(pcsc.getStatusChange(c.h, macTimeout(timeout), unsafe.Pointer(&buf[0]), uint32(len(states)))); err != nil {
		return err
	}
	for i := range states {
		ev, atr, err := macReaderStateResult(buf[i*macReaderStateSize:])
		if err != nil {
			return err
		}
		states[i].EventState = StateFlag(ev)
		if atr != nil {
			states[i].Atr = atr
		}
	}
	return nil
}

// Connect connects to the card in reader (SCardConnect).
func (c *Context) Connect(reader string, mode ShareMode, proto Protocol) (*Card, error) {
	name, err := cString(reader)
	if err != nil {
		return nil, err
	}
	var h int32
	var active uint32
	if err := result(pcsc.connect(c.h, &name[0], uint32(mode), uint32(proto), &h, &active)); err != nil {
		return nil, err
	}
	return &Card{h: h, protocol: Protocol(active)}, nil
}

// Disconnect ends the connection (SCardDisconnect).
func (k *Card) Disconnect(d Disposition) error { return result(pcsc.disconnect(k.h, uint32(d))) }

// Reconnect re-establishes the connection after a reset (SCardReconnect).
func (k *Card) Reconnect(mode ShareMode, proto Protocol, d Disposition) error {
	var active uint32
	if err := result(pcsc.reconnect(k.h, uint32(mode), uint32(proto), uint32(d), &active)); err != nil {
		return err
	}
	k.protocol = Protocol(active)
	return nil
}

// BeginTransaction takes exclusive access (SCardBeginTransaction).
func (k *Card) BeginTransaction() error { return result(pcsc.beginTransaction(k.h)) }

// EndTransaction releases it (SCardEndTransaction).
func (k *Card) EndTransaction(d Disposition) error {
	return result(pcsc.endTransaction(k.h, uint32(d)))
}

// Status reports the reader, card state, protocol and ATR (SCardStatus).
func (k *Card) Status() (*CardStatus, error) {
	names := make([]byte, macReaderBufSize)
	atr := make([]byte, macMaxATR)
	n, atrLen := uint32(len(names)), uint32(len(atr))
	var state, proto uint32
	if err := result(pcsc.status(k.h, &names[0], &n, &state, &proto, &atr[0], &atrLen)); err != nil {
		return nil, err
	}
	if atrLen > macMaxATR || n > uint32(len(names)) {
		return nil, fmt.Errorf("%w: SCardStatus lengths %d, %d", errLayout, n, atrLen)
	}
	st := &CardStatus{State: State(state), ActiveProtocol: Protocol(proto), Atr: atr[:atrLen]}
	if r := splitMultiString(names[:n]); len(r) > 0 {
		st.Reader = r[0]
	}
	return st, nil
}

// Transmit sends one APDU and returns the card's response (SCardTransmit).
func (k *Card) Transmit(cmd []byte) ([]byte, error) {
	if len(cmd) == 0 {
		return nil, ErrInvalidParameter
	}
	var send, recv [macIORequestSize]byte
	putMacIORequest(send[:], uint32(k.protocol))
	putMacIORequest(recv[:], uint32(k.protocol))
	rsp := make([]byte, macMaxBuffer)
	n := uint32(len(rsp))
	if err := result(pcsc.transmit(k.h, unsafe.Pointer(&send[0]), &cmd[0], uint32(len(cmd)), unsafe.Pointer(&recv[0]), &rsp[0], &n)); err != nil {
		return nil, err
	}
	if n > uint32(len(rsp)) {
		return nil, fmt.Errorf("%w: response of %d bytes", errLayout, n)
	}
	return rsp[:n], nil
}
