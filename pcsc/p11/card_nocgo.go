//go:build !cgo

package p11

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

var _ pcsc.Card = (*Card)(nil)

// Card is a token of a PKCS#11 module. This binary was built without cgo, so
// Open always fails with ErrNoCgo and no Card exists.
type Card struct{}

// Open fails: loading a PKCS#11 module needs cgo (miekg/pkcs11).
func Open(ctx context.Context, cfg Config, info pcsc.CardInfo, log *zap.Logger) (*Card, error) {
	return nil, fmt.Errorf("opening PKCS#11 module %s: %w", cfg.Module, ErrNoCgo)
}

func (c *Card) Info() pcsc.CardInfo { return pcsc.CardInfo{Driver: "pkcs11"} }
func (c *Card) Certificates(context.Context) ([]pcsc.Certificate, error) {
	return nil, ErrNoCgo
}
func (c *Card) PINStatus(context.Context) (pcsc.PINStatus, error) {
	return pcsc.PINStatus{}, ErrNoCgo
}
func (c *Card) PrivateKey(pcsc.KeyRef, pcsc.PINFunc) (pcsc.Signer, error) { return nil, ErrNoCgo }
func (c *Card) ChangePIN(context.Context, []byte, []byte) error           { return ErrNoCgo }
func (c *Card) UnblockPIN(context.Context, []byte, []byte) error          { return ErrNoCgo }
func (c *Card) Close() error                                              { return nil }
