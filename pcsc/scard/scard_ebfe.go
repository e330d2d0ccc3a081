//go:build !darwin

package scard

import "github.com/ebfe/scard"

// Linux and Windows: github.com/ebfe/scard (cgo and pcsc-lite on Linux,
// winscard.dll on Windows), unchanged.

type (
	Context     = scard.Context
	Card        = scard.Card
	ReaderState = scard.ReaderState
	CardStatus  = scard.CardStatus
	Error       = scard.Error
	StateFlag   = scard.StateFlag
	State       = scard.State
	ShareMode   = scard.ShareMode
	Protocol    = scard.Protocol
	Disposition = scard.Disposition
)

// EstablishContext opens a PC/SC context (SCardEstablishContext, system scope).
func EstablishContext() (*Context, error) { return scard.EstablishContext() }

const (
	ErrSuccess            = scard.ErrSuccess
	ErrInternalError      = scard.ErrInternalError
	ErrCancelled          = scard.ErrCancelled
	ErrInvalidHandle      = scard.ErrInvalidHandle
	ErrInvalidParameter   = scard.ErrInvalidParameter
	ErrNoMemory           = scard.ErrNoMemory
	ErrInsufficientBuffer = scard.ErrInsufficientBuffer
	ErrUnknownReader      = scard.ErrUnknownReader
	ErrTimeout            = scard.ErrTimeout
	ErrSharingViolation   = scard.ErrSharingViolation
	ErrNoSmartcard        = scard.ErrNoSmartcard
	ErrProtoMismatch      = scard.ErrProtoMismatch
	ErrNotReady           = scard.ErrNotReady
	ErrInvalidValue       = scard.ErrInvalidValue
	ErrSystemCancelled    = scard.ErrSystemCancelled
	ErrCommError          = scard.ErrCommError
	ErrUnknownError       = scard.ErrUnknownError
	ErrNotTransacted      = scard.ErrNotTransacted
	ErrReaderUnavailable  = scard.ErrReaderUnavailable
	ErrShutdown           = scard.ErrShutdown
	ErrNoService          = scard.ErrNoService
	ErrServiceStopped     = scard.ErrServiceStopped
	ErrNoReadersAvailable = scard.ErrNoReadersAvailable
	ErrCommDataLost       = scard.ErrCommDataLost
	ErrUnsupportedCard    = scard.ErrUnsupportedCard
	ErrUnresponsiveCard   = scard.ErrUnresponsiveCard
	ErrUnpoweredCard      = scard.ErrUnpoweredCard
	ErrResetCard          = scard.ErrResetCard
	ErrRemovedCard        = scard.ErrRemovedCard
	ErrCancelledByUser    = scard.ErrCancelledByUser

	StateUnaware     = scard.StateUnaware
	StateIgnore      = scard.StateIgnore
	StateChanged     = scard.StateChanged
	StateUnknown     = scard.StateUnknown
	StateUnavailable = scard.StateUnavailable
	StateEmpty       = scard.StateEmpty
	StatePresent     = scard.StatePresent
	StateAtrmatch    = scard.StateAtrmatch
	StateExclusive   = scard.StateExclusive
	StateInuse       = scard.StateInuse
	StateMute        = scard.StateMute
	StateUnpowered   = scard.StateUnpowered

	Unknown    = scard.Unknown
	Absent     = scard.Absent
	Present    = scard.Present
	Swallowed  = scard.Swallowed
	Powered    = scard.Powered
	Negotiable = scard.Negotiable
	Specific   = scard.Specific

	ShareExclusive = scard.ShareExclusive
	ShareShared    = scard.ShareShared
	ShareDirect    = scard.ShareDirect

	ProtocolUndefined = scard.ProtocolUndefined
	ProtocolT0        = scard.ProtocolT0
	ProtocolT1        = scard.ProtocolT1
	ProtocolAny       = scard.ProtocolAny

	LeaveCard   = scard.LeaveCard
	ResetCard   = scard.ResetCard
	UnpowerCard = scard.UnpowerCard
	EjectCard   = scard.EjectCard
)
