// Package series8 is cardagent's native driver for NHS series 8 smartcards
// (Oberthur).
//
// HYPOTHESIS. The series 8 applet is not publicly documented. This driver is
// built from public knowledge of the Oberthur AuthentIC v2.2 applet and the
// AWP file layout of Oberthur's middleware, as OpenSC's card-oberthur.c and
// pkcs15-oberthur.c implement them against real Oberthur cards, and it
// sends only command forms OpenSC's oberthur driver sends (one exception,
// the SO PIN logout; docs/series8.md lists each assumption and its source).
// It has been tested against an emulation of that knowledge (package
// pcsc/vcard/vseries8) which OpenSC's own tools read, not against a real NHS
// card. What it assumes:
//
//   - the card answers one of the known Oberthur applet AIDs (Applets, tried in
//     turn; CardInfo.Applet names the one that answered), and the AWP file
//     system 3F00/5011 is reachable after selecting it;
//   - the card manager (selected with OpenSC's 7-byte AID) answers GET DATA
//     CPLC (80 CA 9F 7F) with the IC serial number in bytes 15-18, used as
//     the card's identity;
//   - the containers file 3000 lists the authentication key as a container's
//     exchange key and the signing key as a signature key (otherwise the
//     object lists 4000/5000 and the certificates' key usage decide);
//   - certificates are plain DER in transparent files 20xx of DF 9001;
//   - the user PIN is reference 81 (VERIFY) / 01 (CHANGE REFERENCE DATA,
//     RESET RETRY COUNTER), local to DF 5011, sent as ASCII padded with FF
//     to 64 bytes; an empty VERIFY reads its state without spending a try;
//     80 2E 00 21 logs out;
//   - the PUK is the local SO PIN 84; unblocking verifies it, reads the
//     unblock code from file 2000 and sends RESET RETRY COUNTER with it;
//   - signing is MSE 00 22 41 B6 {80 01 11} on the private key file 30xx of DF
//     9002, then PSO 00 2A 9E 9A over a DigestInfo (PKCS#1 v1.5 by the card).
//
// The trace mode (Probe, and pcsc.NewTracer) exists so that a real card can
// settle these: it runs a read-only probe and writes a redacted transcript IT
// can send.
//
// Every public method is one PC/SC transaction that starts by selecting the
// applet and the AWP directory again, since another program may have
// selected something else between two of ours. Private functions take the
// transaction's pcsc.Transmitter.
package series8

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

// Applet is an Oberthur application the driver looks for.
type Applet struct {
	Name string
	AID  []byte
}

// String is the name and the AID in hex, as CardInfo.Applet reports it.
func (a Applet) String() string { return a.Name + " " + hex.EncodeToString(a.AID) }

// AIDCardManager is the GlobalPlatform card manager, selected to read the
// CPLC, in the 7-byte form OpenSC's gp.c sends to real Oberthur cards (a
// leading part of the 8-byte AID A000000003000000 many cards register,
// which ISO 7816-4 partial selection matches).
var AIDCardManager = []byte{0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00}

// AIDCardManagerLong is the 8-byte card manager AID. The driver never sends
// it; the probe tries it beside AIDCardManager so a real card's transcript
// tells which forms it accepts.
var AIDCardManagerLong = []byte{0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00}

// Applets are the Oberthur applets a series 8 card could carry, in the order
// the driver tries them (docs/series8.md).
var Applets = []Applet{
	{"AuthentIC v2.2", []byte{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x03, 0x03, 0x00, 0x00, 0x00, 0xF1, 0x00, 0x00, 0x00, 0x02}},
	{"AuthentIC v3.1", []byte{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x00, 0x70, 0x0A, 0x10, 0x00, 0xF1, 0x00, 0x00, 0x01, 0x00}},
	{"IAS-ECC", []byte{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x08, 0x00, 0x07, 0x00, 0x00, 0xFE, 0x00, 0x00, 0x01, 0x00}},
}

// Identity sources reported in CardInfo.IDSource.
const (
	IDSourceCPLC        = "cplc"
	IDSourceCertificate = "certificate"
)

// File identifiers of the AWP layout.
const (
	fidMF          = 0x3F00
	fidAWP         = 0x5011
	fidContainers  = 0x3000
	fidPublicList  = 0x4000
	fidPrivateList = 0x5000
	fidPublicDF    = 0x9001
	fidPrivateDF   = 0x9002
)

// Instructions and references.
const (
	insSelect     = 0xA4
	insReadBinary = 0xB0
	insReadRecord = 0xB2
	insReadPublic = 0xB4 // CLA 80
	insGetData    = 0xCA // CLA 80
	insVerify     = 0x20
	insChangeRef  = 0x24
	insUnblock    = 0x2C
	insLogout     = 0x2E // CLA 80
	insMSE        = 0x22
	insPSO        = 0x2A
	pinRef        = 0x81 // user PIN for VERIFY: reference 01 with the local bit 80
	pinRefChange  = 0x01 // user PIN for CHANGE REFERENCE DATA and RESET RETRY COUNTER (OpenSC)
	soPINRef      = 0x84 // local SO PIN: the PUK
	fidPUKFile    = 0x2000
	pinPadLen     = 64
	pukPadLen     = 16
)

// PIN lengths. NHS PINs have 6 to 8 characters (digits since July 2023,
// older ones may hold letters); the card takes up to 64.
const (
	DefaultMinPINLen = 6
	DefaultMaxPINLen = 8
	cardMaxPINLen    = pinPadLen
)

type options struct {
	minPIN, maxPIN int
}

// Option tunes the driver.
type Option func(*options)

// WithPINLength sets the PIN lengths the driver accepts before sending
// anything to the card (default 6 to 8). The card's own limit of 64 bytes
// always applies.
func WithPINLength(minLen, maxLen int) Option {
	return func(o *options) {
		o.minPIN = max(1, minLen)
		o.maxPIN = min(cardMaxPINLen, max(o.minPIN, maxLen))
	}
}

// Card is an opened series 8 card. It implements pcsc.Card. A Card lives for
// one insertion: it caches what it read (identity, certificates, key map).
type Card struct {
	s      pcsc.Session
	log    *zap.Logger
	info   pcsc.CardInfo
	applet Applet
	opts   options

	mu  sync.Mutex // guards inv; held while it is read
	inv *inventory
}

var _ pcsc.Card = (*Card)(nil)

// Open finds the Oberthur applet on the card behind s (trying Applets in
// turn), checks that the AWP directory 3F00/5011 is there, and reads the
// card's identity, in one transaction. A card without any of the applets
// gives an error matching pcsc.ErrUnsupportedCard. The Card owns s: Close
// closes it.
func Open(ctx context.Context, s pcsc.Session, log *zap.Logger, opts ...Option) (*Card, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Card{
		s:    s,
		log:  log.Named("series8"),
		opts: options{minPIN: DefaultMinPINLen, maxPIN: DefaultMaxPINLen},
		info: pcsc.CardInfo{
			Kind:   pcsc.KindSeries8,
			Reader: s.Reader(),
			ATR:    bytes.Clone(s.ATR()),
			Driver: "series8",
		},
	}
	for _, o := range opts {
		o(&c.opts)
	}
	err := c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		serial, err := readCPLCSerial(t)
		if err != nil {
			return fmt.Errorf("reading CPLC: %w", err)
		}
		app, err := findApplet(t)
		if err != nil {
			return err
		}
		c.applet = app
		c.info.Applet = app.String()
		if err := selectAWP(t); err != nil {
			if errors.Is(err, pcsc.ErrNotFound) {
				return fmt.Errorf("%w: applet %s answered but the AWP directory 3F00/5011 is missing (%w)", pcsc.ErrUnsupportedCard, app, err)
			}
			return err
		}
		if serial != nil {
			c.info.ID, c.info.IDSource = hex.EncodeToString(serial), IDSourceCPLC
			return nil
		}
		c.log.Debug("no CPLC serial, identifying the card by its authentication certificate")
		inv, err := c.readInventory(t)
		if err != nil {
			return fmt.Errorf("reading certificates: %w", err)
		}
		c.inv = inv
		if k := inv.key(pcsc.KeyAuthentication); k != nil && k.cert != nil {
			sum := sha256.Sum256(k.cert.Raw)
			c.info.ID, c.info.IDSource = hex.EncodeToString(sum[:]), IDSourceCertificate
		} else {
			c.log.Warn("card has neither CPLC serial nor authentication certificate: no identity")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("opening series 8 card: %w", err)
	}
	c.log.Debug("opened series 8 card", zap.String("id", c.info.ID), zap.String("id_source", c.info.IDSource),
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

// begin starts every operation after Open: select the applet found at Open
// and the AWP directory 3F00/5011 (where the user PIN lives).
func (c *Card) begin(t pcsc.Transmitter) error {
	if err := selectAID(t, c.applet.AID); err != nil {
		return fmt.Errorf("selecting %s: %w", c.applet.Name, err)
	}
	return selectAWP(t)
}

// readCPLCSerial selects the card manager and reads the CPLC with GET DATA
// 80 CA 9F 7F; the IC serial number is in bytes 15-18 of the answer (after
// the 9F7F tag and length). A card that does not answer gives nil, nil;
// only a transport error is an error.
func readCPLCSerial(t pcsc.Transmitter) ([]byte, error) {
	if _, err := pcsc.Exchange(t, pcsc.Command{INS: insSelect, P1: 0x04, P2: 0x0C, Data: AIDCardManager, Le: -1}); err != nil {
		return nil, err
	}
	resp, err := pcsc.Exchange(t, pcsc.Command{CLA: 0x80, INS: insGetData, P1: 0x9F, P2: 0x7F, Le: 0x2D})
	if err != nil {
		return nil, err
	}
	if !resp.OK() {
		return nil, nil
	}
	return cplcSerial(resp.Data), nil
}

// cplcSerial extracts the IC serial number from a CPLC answer, or nil.
func cplcSerial(b []byte) []byte {
	if len(b) < 19 || b[0] != 0x9F || b[1] != 0x7F {
		return nil
	}
	serial := bytes.Clone(b[15:19])
	if bytes.Equal(serial, []byte{0, 0, 0, 0}) || bytes.Equal(serial, []byte{0xFF, 0xFF, 0xFF, 0xFF}) {
		return nil
	}
	return serial
}

// findApplet selects each known applet in turn and returns the first that answers.
func findApplet(t pcsc.Transmitter) (Applet, error) {
	var sws []string
	for _, app := range Applets {
		err := selectAID(t, app.AID)
		if err == nil {
			return app, nil
		}
		var se *pcsc.StatusError
		if !errors.As(err, &se) {
			return Applet{}, fmt.Errorf("selecting %s: %w", app.Name, err)
		}
		sws = append(sws, fmt.Sprintf("%s: %04X", app.Name, se.SW))
	}
	return Applet{}, fmt.Errorf("%w: no Oberthur applet answered (%v)", pcsc.ErrUnsupportedCard, sws)
}

// selectAID selects an application by name without asking for its FCI
// (P2=0C); a card that rejects that P2 (6A86) is asked once more with P2=00.
func selectAID(t pcsc.Transmitter, aid []byte) error {
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insSelect, P1: 0x04, P2: 0x0C, Data: aid, Le: -1})
	if err != nil {
		return err
	}
	if resp.SW == 0x6A86 {
		if resp, err = pcsc.Exchange(t, pcsc.Command{INS: insSelect, P1: 0x04, P2: 0x00, Data: aid, Le: 0}); err != nil {
			return err
		}
	}
	return resp.Err()
}

// selectFID selects one file by identifier (00 A4 00 00 02 FID) and parses its FCI.
func selectFID(t pcsc.Transmitter, fid uint16) (fci, error) {
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insSelect, Data: []byte{byte(fid >> 8), byte(fid)}, Le: 0})
	if err != nil {
		return fci{}, err
	}
	if err := resp.Err(); err != nil {
		return fci{}, fmt.Errorf("selecting %04X: %w", fid, err)
	}
	f, err := parseFCI(resp.Data)
	if err != nil {
		return fci{}, fmt.Errorf("selecting %04X: %w", fid, err)
	}
	if f.FID != fid {
		return fci{}, fmt.Errorf("selecting %04X: %w: card selected %04X", fid, errMalformed, f.FID)
	}
	return f, nil
}

// selectAWP selects 3F00 then 5011, one FID at a time.
func selectAWP(t pcsc.Transmitter) error {
	for _, fid := range []uint16{fidMF, fidAWP} {
		f, err := selectFID(t, fid)
		if err != nil {
			return err
		}
		if f.Type != typeDF {
			return fmt.Errorf("%w: %04X is not a directory", errMalformed, fid)
		}
	}
	return nil
}

// maxFileSize bounds what the driver reads from one file: READ BINARY
// offsets have 15 bits, and certificates are a few KB.
const maxFileSize = 32 << 10

// readBinary reads n bytes of the current transparent file in chunks of up
// to 256 bytes. When trimDER is set it stops at the end of the DER object
// the file starts with (certificate files are often larger than their
// certificate). SW 6282 (end of file before Le bytes) counts as success and
// ends the read.
func readBinary(t pcsc.Transmitter, n int, trimDER bool) ([]byte, error) {
	if n > maxFileSize {
		return nil, fmt.Errorf("%w: file of %d bytes", errMalformed, n)
	}
	out := make([]byte, 0, n)
	for len(out) < n {
		le := min(256, n-len(out))
		off := len(out)
		resp, err := pcsc.Exchange(t, pcsc.Command{INS: insReadBinary, P1: byte(off >> 8), P2: byte(off), Le: le})
		if err != nil {
			return nil, err
		}
		if resp.SW != 0x9000 && resp.SW != 0x6282 {
			return nil, fmt.Errorf("reading at offset %d: %w", off, resp.Err())
		}
		if len(resp.Data) > le {
			resp.Data = resp.Data[:le]
		}
		out = append(out, resp.Data...)
		if trimDER && off == 0 {
			if total, ok := derLength(out); ok && total < n {
				n = total
			}
		}
		if resp.SW == 0x6282 || len(resp.Data) == 0 {
			break
		}
	}
	if len(out) > n {
		out = out[:n]
	}
	return out, nil
}

// maxRecords bounds the container records read (cards hold a handful).
const maxRecords = 32

// readRecords reads the records of the current linear file with READ
// RECORD (00 B2 nn 04 00) until the card answers 6A83 (record not found).
func readRecords(t pcsc.Transmitter) ([][]byte, error) {
	var recs [][]byte
	for n := 1; n <= maxRecords; n++ {
		resp, err := pcsc.Exchange(t, pcsc.Command{INS: insReadRecord, P1: byte(n), P2: 0x04, Le: 0})
		if err != nil {
			return nil, err
		}
		switch resp.SW {
		case 0x9000, 0x6282:
			recs = append(recs, resp.Data)
		case 0x6A83, 0x6A82:
			return recs, nil
		default:
			return nil, fmt.Errorf("reading record %d: %w", n, resp.Err())
		}
	}
	return recs, nil
}

type swString uint16

func (s swString) String() string { return fmt.Sprintf("%04X", uint16(s)) }
