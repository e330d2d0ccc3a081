// Package piv is cardagent's driver for PIV cards (NIST SP 800-73-4).
//
// It drives the NHS series 9 and 10 smartcards (Idemia PIV) and any other
// standard PIV card.
//
// It speaks the standard PIV commands itself (SELECT, GET DATA, VERIFY,
// GENERAL AUTHENTICATE, CHANGE REFERENCE DATA, RESET RETRY COUNTER) over a
// pcsc.Session, and never a YubiKey-only instruction (GET VERSION FD, GET
// SERIAL F8, GET METADATA F7, ATTEST F9): github.com/go-piv/piv-go cannot open a
// plain PIV card for that reason.
//
// Every public method is one PC/SC transaction that starts by selecting the
// PIV application, since another program may have selected another
// application between two of ours. Private functions take the transaction's
// pcsc.Transmitter.
package piv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

// AID is the PIV application identifier (NIST RID A000000308, PIX 00001000 0100).
var AID = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// Instructions (SP 800-73-4 Part 2, table 5).
const (
	insSelect       = 0xA4
	insGetData      = 0xCB
	insVerify       = 0x20
	insChangeRef    = 0x24
	insResetRetry   = 0x2C
	insGeneralAuth  = 0x87
	keyRefPIVPIN    = 0x80
	keyRefPUK       = 0x81
	verifyResetP1   = 0xFF // VERIFY P1=FF: reset the key reference's security status
	certObjectFirst = 0x5FC10D
)

// Identity sources reported in CardInfo.IDSource.
const (
	IDSourceGUID        = "chuid-guid"
	IDSourceFASCN       = "chuid-fascn"
	IDSourceCertificate = "certificate"
)

// slot is a PIV key reference with the data object holding its certificate.
type slot struct {
	ref    pcsc.KeyRef
	key    byte
	object uint32
	label  string
}

var (
	slot9A = slot{pcsc.KeyAuthentication, 0x9A, 0x5FC105, "PIV Authentication"}
	slot9C = slot{pcsc.KeySignature, 0x9C, 0x5FC10A, "Digital Signature"}
	slot9D = slot{"9d", 0x9D, 0x5FC10B, "Key Management"}
	slot9E = slot{"9e", 0x9E, 0x5FC101, "Card Authentication"}
)

var primarySlots = []slot{slot9A, slot9C, slot9D, slot9E}

// retiredSlot returns retired key management slot n (1..20): key 82..95, object 5FC10D..5FC120.
func retiredSlot(n int) slot {
	key := byte(0x81 + n)
	return slot{
		ref:    pcsc.KeyRef(fmt.Sprintf("%02x", key)),
		key:    key,
		object: certObjectFirst + uint32(n-1),
		label:  fmt.Sprintf("Retired Key Management %d", n),
	}
}

// slotFor maps a KeyRef ("9a", "9C", "82".."95") onto its slot.
func slotFor(ref pcsc.KeyRef) (slot, bool) {
	b, err := hex.DecodeString(string(ref))
	if err != nil || len(b) != 1 {
		return slot{}, false
	}
	for _, s := range primarySlots {
		if s.key == b[0] {
			return s, true
		}
	}
	if b[0] >= 0x82 && b[0] <= 0x95 {
		return retiredSlot(int(b[0]) - 0x81), true
	}
	return slot{}, false
}

// Card is an opened PIV card. It implements pcsc.Card. A Card lives for one
// insertion: it caches what it read (identity, certificates).
type Card struct {
	s    pcsc.Session
	log  *zap.Logger
	info pcsc.CardInfo

	mu        sync.Mutex // guards the cache below; held while certificates are read
	certs     []pcsc.Certificate
	certsRead bool
	auth      []byte // raw 9A certificate read at Open when it was needed for the identity
}

var _ pcsc.Card = (*Card)(nil)

// Open selects the PIV application on the card behind s and reads its
// identity, in one transaction. A card without the PIV application gives an
// error matching pcsc.ErrUnsupportedCard. The Card owns s: Close closes it.
func Open(ctx context.Context, s pcsc.Session, log *zap.Logger) (*Card, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Card{s: s, log: log.Named("piv")}
	c.info = pcsc.CardInfo{
		Kind:   pcsc.KindPIV,
		Reader: s.Reader(),
		ATR:    bytes.Clone(s.ATR()),
		Driver: "piv",
	}
	err := c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		app, err := selectApp(t)
		if err != nil {
			return err
		}
		c.info.Applet = appletName(app)
		id, err := readCHUID(t)
		switch {
		case err == nil && id.GUID != nil:
			c.info.ID, c.info.IDSource = hex.EncodeToString(id.GUID), IDSourceGUID
			return nil
		case err == nil && id.FASCN != nil:
			c.info.ID, c.info.IDSource = hex.EncodeToString(id.FASCN), IDSourceFASCN
			return nil
		case err != nil && isTransport(err):
			return fmt.Errorf("reading CHUID: %w", err)
		case err != nil:
			c.log.Warn("CHUID unusable, identifying the card by its authentication certificate", zap.Error(err))
		}
		raw, err := readObject(t, slot9A.object)
		if err != nil {
			if errors.Is(err, pcsc.ErrNotFound) {
				c.log.Warn("card has neither CHUID identifier nor authentication certificate: no identity")
				return nil
			}
			return fmt.Errorf("reading authentication certificate: %w", err)
		}
		der, err := parseCertContainer(raw)
		if err != nil {
			c.log.Warn("card has no usable identifier: no identity", zap.Error(err))
			return nil
		}
		sum := sha256.Sum256(der)
		c.info.ID, c.info.IDSource = hex.EncodeToString(sum[:]), IDSourceCertificate
		c.auth = raw
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening PIV card: %w", err)
	}
	c.log.Debug("opened PIV card", zap.String("id", c.info.ID), zap.String("id_source", c.info.IDSource),
		zap.String("applet", c.info.Applet), zap.String("reader", c.info.Reader))
	return c, nil
}

// Info returns the identity read at Open.
func (c *Card) Info() pcsc.CardInfo {
	info := c.info
	info.ATR = bytes.Clone(c.info.ATR)
	return info
}

// Close closes the session.
func (c *Card) Close() error { return c.s.Close() }

// reselect selects the PIV application again before an operation on a card
// Open accepted. A refusal now is a card fault (a *pcsc.StatusError, so
// callers report card_error), not an unsupported card: the card was a PIV
// card a moment ago.
func reselect(t pcsc.Transmitter) error {
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insSelect, P1: 0x04, P2: 0x00, Data: AID, Le: 0})
	if err != nil {
		return fmt.Errorf("selecting PIV application: %w", err)
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("selecting PIV application again: %w", err)
	}
	return nil
}

// selectApp selects the PIV application and parses its property template.
func selectApp(t pcsc.Transmitter) (appInfo, error) {
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insSelect, P1: 0x04, P2: 0x00, Data: AID, Le: 0})
	if err != nil {
		return appInfo{}, fmt.Errorf("selecting PIV application: %w", err)
	}
	if resp.SW == 0x6A82 || resp.SW == 0x6D00 || resp.SW == 0x6E00 {
		return appInfo{}, fmt.Errorf("%w: no PIV application (%w)", pcsc.ErrUnsupportedCard, resp.Err())
	}
	if err := resp.Err(); err != nil {
		return appInfo{}, fmt.Errorf("selecting PIV application: %w", err)
	}
	app, err := parseAPT(resp.Data)
	if err != nil {
		// The template is informative only; the card did select the application.
		return appInfo{}, nil
	}
	return app, nil
}

func appletName(app appInfo) string {
	aid := app.AID
	if len(aid) == 0 {
		aid = AID
	} else if !bytes.HasPrefix(aid, AID[:5]) {
		// The template usually holds the PIX only (00 00 10 00 01 00); show the full AID.
		aid = append(bytes.Clone(AID[:5]), aid...)
	}
	name := "PIV " + hex.EncodeToString(aid)
	if app.Label != "" {
		name += " (" + app.Label + ")"
	}
	return name
}

// readObject reads a data object with GET DATA: 00 CB 3F FF 5C {tag}.
// An absent object gives an error matching pcsc.ErrNotFound.
func readObject(t pcsc.Transmitter, tag uint32) ([]byte, error) {
	var tl []byte
	switch {
	case tag > 0xFFFF:
		tl = []byte{0x5C, 0x03, byte(tag >> 16), byte(tag >> 8), byte(tag)}
	default:
		tl = []byte{0x5C, 0x01, byte(tag)}
	}
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insGetData, P1: 0x3F, P2: 0xFF, Data: tl, Le: 0})
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	return resp.Data, nil
}

func readCHUID(t pcsc.Transmitter) (chuid, error) {
	b, err := readObject(t, tagCHUID)
	if err != nil {
		return chuid{}, err
	}
	return parseCHUID(b)
}
