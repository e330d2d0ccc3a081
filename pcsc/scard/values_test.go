//go:build !darwin

package scard

import "testing"

// The values the darwin binding declares (macabi.go, from Apple's
// pcsclite.h) must equal those of the system's own PC/SC headers, which
// github.com/ebfe/scard takes through cgo on Linux (pcsc-lite) and
// declares for winscard.dll on Windows.
func TestMacValuesMatchSystemHeaders(t *testing.T) {
	tests := []struct {
		name      string
		mac, here uint32
	}{
		{"SCARD_S_SUCCESS", codeSuccess, uint32(ErrSuccess)},
		{"SCARD_F_INTERNAL_ERROR", codeInternalError, uint32(ErrInternalError)},
		{"SCARD_E_CANCELLED", codeCancelled, uint32(ErrCancelled)},
		{"SCARD_E_INVALID_HANDLE", codeInvalidHandle, uint32(ErrInvalidHandle)},
		{"SCARD_E_INVALID_PARAMETER", codeInvalidParameter, uint32(ErrInvalidParameter)},
		{"SCARD_E_NO_MEMORY", codeNoMemory, uint32(ErrNoMemory)},
		{"SCARD_E_INSUFFICIENT_BUFFER", codeInsufficientBuffer, uint32(ErrInsufficientBuffer)},
		{"SCARD_E_UNKNOWN_READER", codeUnknownReader, uint32(ErrUnknownReader)},
		{"SCARD_E_TIMEOUT", codeTimeout, uint32(ErrTimeout)},
		{"SCARD_E_SHARING_VIOLATION", codeSharingViolation, uint32(ErrSharingViolation)},
		{"SCARD_E_NO_SMARTCARD", codeNoSmartcard, uint32(ErrNoSmartcard)},
		{"SCARD_E_PROTO_MISMATCH", codeProtoMismatch, uint32(ErrProtoMismatch)},
		{"SCARD_E_NOT_READY", codeNotReady, uint32(ErrNotReady)},
		{"SCARD_E_INVALID_VALUE", codeInvalidValue, uint32(ErrInvalidValue)},
		{"SCARD_E_SYSTEM_CANCELLED", codeSystemCancelled, uint32(ErrSystemCancelled)},
		{"SCARD_F_COMM_ERROR", codeCommError, uint32(ErrCommError)},
		{"SCARD_F_UNKNOWN_ERROR", codeUnknownError, uint32(ErrUnknownError)},
		{"SCARD_E_NOT_TRANSACTED", codeNotTransacted, uint32(ErrNotTransacted)},
		{"SCARD_E_READER_UNAVAILABLE", codeReaderUnavailable, uint32(ErrReaderUnavailable)},
		{"SCARD_P_SHUTDOWN", codeShutdown, uint32(ErrShutdown)},
		{"SCARD_E_NO_SERVICE", codeNoService, uint32(ErrNoService)},
		{"SCARD_E_SERVICE_STOPPED", codeServiceStopped, uint32(ErrServiceStopped)},
		{"SCARD_E_NO_READERS_AVAILABLE", codeNoReadersAvailable, uint32(ErrNoReadersAvailable)},
		{"SCARD_E_COMM_DATA_LOST", codeCommDataLost, uint32(ErrCommDataLost)},
		{"SCARD_W_UNSUPPORTED_CARD", codeUnsupportedCard, uint32(ErrUnsupportedCard)},
		{"SCARD_W_UNRESPONSIVE_CARD", codeUnresponsiveCard, uint32(ErrUnresponsiveCard)},
		{"SCARD_W_UNPOWERED_CARD", codeUnpoweredCard, uint32(ErrUnpoweredCard)},
		{"SCARD_W_RESET_CARD", codeResetCard, uint32(ErrResetCard)},
		{"SCARD_W_REMOVED_CARD", codeRemovedCard, uint32(ErrRemovedCard)},
		{"SCARD_W_CANCELLED_BY_USER", codeCancelledByUser, uint32(ErrCancelledByUser)},

		{"SCARD_STATE_UNAWARE", flagUnaware, uint32(StateUnaware)},
		{"SCARD_STATE_IGNORE", flagIgnore, uint32(StateIgnore)},
		{"SCARD_STATE_CHANGED", flagChanged, uint32(StateChanged)},
		{"SCARD_STATE_UNKNOWN", flagUnknown, uint32(StateUnknown)},
		{"SCARD_STATE_UNAVAILABLE", flagUnavailable, uint32(StateUnavailable)},
		{"SCARD_STATE_EMPTY", flagEmpty, uint32(StateEmpty)},
		{"SCARD_STATE_PRESENT", flagPresent, uint32(StatePresent)},
		{"SCARD_STATE_ATRMATCH", flagAtrmatch, uint32(StateAtrmatch)},
		{"SCARD_STATE_EXCLUSIVE", flagExclusive, uint32(StateExclusive)},
		{"SCARD_STATE_INUSE", flagInuse, uint32(StateInuse)},
		{"SCARD_STATE_MUTE", flagMute, uint32(StateMute)},
		{"SCARD_STATE_UNPOWERED", flagUnpowered, uint32(StateUnpowered)},

		{"SCARD_UNKNOWN", stateUnknown, uint32(Unknown)},
		{"SCARD_ABSENT", stateAbsent, uint32(Absent)},
		{"SCARD_PRESENT", statePresent, uint32(Present)},
		{"SCARD_SWALLOWED", stateSwallowed, uint32(Swallowed)},
		{"SCARD_POWERED", statePowered, uint32(Powered)},
		{"SCARD_NEGOTIABLE", stateNegotiable, uint32(Negotiable)},
		{"SCARD_SPECIFIC", stateSpecific, uint32(Specific)},

		{"SCARD_SHARE_EXCLUSIVE", shareExclusive, uint32(ShareExclusive)},
		{"SCARD_SHARE_SHARED", shareShared, uint32(ShareShared)},
		{"SCARD_SHARE_DIRECT", shareDirect, uint32(ShareDirect)},
		{"SCARD_PROTOCOL_UNDEFINED", protocolUndefined, uint32(ProtocolUndefined)},
		{"SCARD_PROTOCOL_T0", protocolT0, uint32(ProtocolT0)},
		{"SCARD_PROTOCOL_T1", protocolT1, uint32(ProtocolT1)},
		{"SCARD_PROTOCOL_ANY", protocolT0 | protocolT1, uint32(ProtocolAny)},
		{"SCARD_LEAVE_CARD", dispositionLeave, uint32(LeaveCard)},
		{"SCARD_RESET_CARD", dispositionReset, uint32(ResetCard)},
		{"SCARD_UNPOWER_CARD", dispositionUnpower, uint32(UnpowerCard)},
		{"SCARD_EJECT_CARD", dispositionEject, uint32(EjectCard)},
	}
	for _, tt := range tests {
		if tt.mac != tt.here {
			t.Errorf("%s: 0x%08X in the macOS binding, 0x%08X in this system's headers", tt.name, tt.mac, tt.here)
		}
	}
	for code := range codeText {
		found := false
		for _, tt := range tests {
			if tt.mac == code {
				found = true
			}
		}
		if !found {
			t.Errorf("codeText names 0x%08X, which this test does not check", code)
		}
	}
}
