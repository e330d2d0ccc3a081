// Package drivers picks the driver for an inserted card.
//
// It identifies the card (ATR and application selection) and opens the PIV
// driver (series 9/10), the native series 8 driver, or, when IT configured a
// vendor PKCS#11 module, the PKCS#11 path.
package drivers

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/p11"
	"github.com/cardagent/cardagent/pcsc/piv"
	"github.com/cardagent/cardagent/pcsc/series8"
)

// Options choose how cards are served.
type Options struct {
	// PKCS11 is the vendor PKCS#11 module IT configured; empty Module means none.
	PKCS11 p11.Config
	// PKCS11Kinds are the card kinds the module serves (default: series 8 only).
	PKCS11Kinds []pcsc.Kind
}

func (o Options) usePKCS11(k pcsc.Kind) bool {
	if o.PKCS11.Module == "" {
		return false
	}
	kinds := o.PKCS11Kinds
	if len(kinds) == 0 {
		kinds = []pcsc.Kind{pcsc.KindSeries8}
	}
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// Open identifies the card behind s and opens its driver. For a retired or
// unknown card it returns the identification and an error matching
// pcsc.ErrUnsupportedCard. On success the Card owns s (Card.Close closes it);
// on error s stays open and belongs to the caller.
func Open(ctx context.Context, log *zap.Logger, s pcsc.Session, opts Options) (pcsc.Card, pcsc.IdentifyResult, error) {
	id, err := pcsc.Identify(ctx, s)
	if err != nil {
		return nil, id, fmt.Errorf("identifying card: %w", err)
	}
	var card pcsc.Card
	switch {
	case opts.usePKCS11(id.Kind):
		info := pcsc.CardInfo{Kind: id.Kind, Reader: s.Reader(), ATR: s.ATR(), Applet: id.Applet}
		card, err = p11.Open(ctx, opts.PKCS11, info, log)
		if err == nil {
			// The module talks to the card itself; our connection was only for identification.
			s.Close()
		}
	case id.Kind == pcsc.KindPIV:
		card, err = piv.Open(ctx, s, log)
	case id.Kind == pcsc.KindSeries8:
		card, err = series8.Open(ctx, s, log)
	default:
		return nil, id, fmt.Errorf("%s: %w", id.Name, pcsc.ErrUnsupportedCard)
	}
	if err != nil {
		return nil, id, fmt.Errorf("opening %s: %w", id.Name, err)
	}
	return card, id, nil
}
