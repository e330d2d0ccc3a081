package pcsc

import (
	"errors"
	"fmt"

	"github.com/cardagent/cardagent/pcsc/scard"
)

// scardError is a PC/SC return code mapped onto one of the package's
// sentinel errors. errors.Is matches both the sentinel (ErrCardRemoved, ...)
// and the original scard.Error, which stays available for diagnostics.
type scardError struct {
	kind error
	code scard.Error
}

func (e *scardError) Error() string {
	return fmt.Sprintf("%v (%v, code 0x%08X)", e.kind, e.code, uint32(e.code))
}

func (e *scardError) Unwrap() []error { return []error{e.kind, e.code} }

// errorKind is the sentinel a PC/SC return code means, or nil when the code
// has no sentinel of its own.
func errorKind(code scard.Error) error {
	switch code {
	case scard.ErrNoService, // pcscd not running, or gone since the context was made
		scard.ErrServiceStopped, // Windows: SCardSvr stopped (also when the last reader is unplugged)
		scard.ErrCommError,      // pcsc-lite: "RPC transport error", pcscd died mid-call
		scard.ErrShutdown,       // the resource manager is shutting down
		scard.ErrSystemCancelled,
		scard.ErrInvalidHandle: // context or card handle no longer known to the service
		return ErrServiceUnavailable
	case scard.ErrNoReadersAvailable, scard.ErrUnknownReader, scard.ErrReaderUnavailable:
		return ErrNoReader
	case scard.ErrNoSmartcard:
		return ErrNoCard
	case scard.ErrRemovedCard:
		return ErrCardRemoved
	case scard.ErrResetCard:
		return ErrCardReset
	case scard.ErrUnresponsiveCard, scard.ErrUnpoweredCard, scard.ErrNotTransacted, scard.ErrCommDataLost:
		return ErrCardUnresponsive
	case scard.ErrSharingViolation:
		return ErrSharingViolation
	case scard.ErrCancelled, scard.ErrCancelledByUser:
		return ErrCancelled
	}
	return nil
}

// mapError turns a PC/SC error into one that matches the package's sentinel
// errors. Errors that are not PC/SC codes, codes without a sentinel, and
// errors already mapped are returned unchanged.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	var mapped *scardError
	if errors.As(err, &mapped) {
		return err
	}
	var code scard.Error
	if !errors.As(err, &code) {
		return err
	}
	kind := errorKind(code)
	if kind == nil {
		return err
	}
	return &scardError{kind: kind, code: code}
}

// serviceLost reports whether err means the PC/SC context is gone and must be
// re-established (pcscd restarted, Windows' service stopped).
func serviceLost(err error) bool {
	return errors.Is(mapError(err), ErrServiceUnavailable)
}

// cancelled is the error for an operation not started because ctx is done.
// It matches both ErrCancelled and the context's own error.
func cancelled(ctx interface{ Err() error }) error {
	return fmt.Errorf("%w: %w", ErrCancelled, ctx.Err())
}
