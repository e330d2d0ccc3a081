// Package agent is cardagent's card service.
//
// CardService watches readers and cards, keeps an opened driver for every
// inserted card, and runs every card operation (sign-in, signing, PIN change
// and unblock) with its prompt; Scanner reads cards for `cardagent cards`.
// The types it shares with other processes are in agent/wire; agent/daemon
// wires it to the loopback API, the Credential Management endpoint and the
// tray.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
	"github.com/cardagent/cardagent/pcsc/drivers"
	"github.com/cardagent/cardagent/pcsc/series8"
)

// InventorySchema is the version of the JSON `cardagent cards --json` prints.
// Fields are only ever added within a version; a removal or change of meaning
// bumps it. docs/cards-json.md documents it.
const InventorySchema = 1

// Inventory is what `cardagent cards` reports: every reader, its card, and
// the card's certificates and PIN state.
type Inventory struct {
	Schema  int            `json:"schema"`
	Time    time.Time      `json:"time"`
	Readers []ReaderReport `json:"readers"`
}

// ReaderReport is one reader and what is in it.
type ReaderReport struct {
	Name string      `json:"name"`
	Card *CardReport `json:"card"` // null when the reader is empty
}

// CardReport describes one inserted card.
type CardReport struct {
	ATR string `json:"atr"`
	// Kind is "piv", "series8", "retired" or "unknown"; Type says it in words.
	Kind string `json:"kind"`
	Type string `json:"type"`
	// Supported is false for a card no driver serves, and for one whose
	// sign-in key the driver cannot sign with (Hint says which).
	Supported bool   `json:"supported"`
	Mute      bool   `json:"mute,omitempty"`
	Driver    string `json:"driver,omitempty"`
	Applet    string `json:"applet,omitempty"`
	// ID is the card's stable identity (PIV CHUID GUID, series 8 serial, or a
	// certificate hash) and IDSource where it came from.
	ID           string             `json:"id,omitempty"`
	IDSource     string             `json:"id_source,omitempty"`
	Holder       *certinfo.Holder   `json:"holder,omitempty"`
	PIN          *wire.PINReport    `json:"pin,omitempty"`
	Certificates []certinfo.Summary `json:"certificates"`
	// Error is set when the card could not be read completely; Hint says what to do.
	Error string `json:"error,omitempty"`
	Hint  string `json:"hint,omitempty"`
}

// Hints shown for cards cardagent cannot serve.
const (
	hintUnsupported = "cardagent does not support this card. Please report it with the output of `cardagent cards --trace-apdu` (PINs are never included) at the project's issue tracker."
	hintRetired     = "NHS series 4-6 cards are retired: ask your Registration Authority for a replacement card."
	hintMute        = "The card does not answer: take it out, check it is the right way up, and insert it again."
)

// Scanner reads cards for an Inventory. Open connects to the card in a
// reader (pcsc.Open in production).
type Scanner struct {
	Log     *zap.Logger
	Drivers drivers.Options
	Now     func() time.Time
	// ListReaders and Open default to the PC/SC implementations.
	ListReaders func(ctx context.Context) ([]pcsc.ReaderStatus, error)
	Open        func(ctx context.Context, reader string) (pcsc.Session, error)
	// Trace, when set, receives every APDU exchanged (secrets redacted), and
	// the read-only series 8 probe for every card that is not a PIV card.
	Trace io.Writer
}

func (s *Scanner) defaults() {
	if s.Log == nil {
		s.Log = zap.NewNop()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.ListReaders == nil {
		s.ListReaders = pcsc.ListReaders
	}
	if s.Open == nil {
		s.Open = func(ctx context.Context, reader string) (pcsc.Session, error) {
			return pcsc.Open(ctx, s.Log.Named("pcsc"), reader)
		}
	}
}

// Scan lists every reader and reads every card once. A card that cannot be
// read is reported with its error; only a missing PC/SC service or the
// absence of any reader fails the whole scan (pcsc.ErrServiceUnavailable,
// pcsc.ErrNoReader).
func (s *Scanner) Scan(ctx context.Context) (*Inventory, error) {
	s.defaults()
	readers, err := s.ListReaders(ctx)
	if err != nil {
		return nil, err
	}
	if len(readers) == 0 {
		return nil, pcsc.ErrNoReader
	}
	sort.Slice(readers, func(i, j int) bool { return readers[i].Name < readers[j].Name })
	inv := &Inventory{Schema: InventorySchema, Time: s.Now().UTC()}
	for _, r := range readers {
		rep := ReaderReport{Name: r.Name}
		if r.Present {
			rep.Card = s.scanCard(ctx, r)
		}
		inv.Readers = append(inv.Readers, rep)
	}
	return inv, nil
}

func (s *Scanner) scanCard(ctx context.Context, r pcsc.ReaderStatus) *CardReport {
	rep := &CardReport{ATR: pcsc.HexString(r.ATR), Kind: string(pcsc.KindUnknown), Type: "unknown card", Certificates: []certinfo.Summary{}}
	if r.Mute {
		rep.Mute, rep.Error, rep.Hint = true, pcsc.ErrCardUnresponsive.Error(), hintMute
		return rep
	}
	sess, err := s.Open(ctx, r.Name)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	plain := sess
	if s.Trace != nil {
		fmt.Fprintf(s.Trace, "# reader %s, ATR %s\n", r.Name, pcsc.HexString(r.ATR))
		sess = tracedSession{Session: sess, w: s.Trace}
	}
	card, id, err := drivers.Open(ctx, s.Log, sess, s.Drivers)
	if s.Trace != nil && id.Kind != pcsc.KindPIV {
		// Probe traces by itself: give it the untraced session.
		if perr := series8.Probe(ctx, plain, s.Trace); perr != nil {
			fmt.Fprintf(s.Trace, "# probe ended: %v\n", perr)
		}
	}
	if id.Kind != "" {
		rep.Kind, rep.Type, rep.Applet = string(id.Kind), id.Name, id.Applet
	}
	if err != nil {
		sess.Close()
		rep.Error = err.Error()
		switch {
		case id.Kind == pcsc.KindRetired:
			rep.Hint = hintRetired
		case errors.Is(err, pcsc.ErrUnsupportedCard):
			rep.Hint = hintUnsupported
		}
		return rep
	}
	defer card.Close() // closes sess too
	rep.Supported = true
	info := card.Info()
	rep.Driver, rep.ID, rep.IDSource = info.Driver, info.ID, info.IDSource
	if info.Applet != "" {
		rep.Applet = info.Applet
	}
	var errs []string
	certs, err := card.Certificates(ctx)
	if err != nil {
		errs = append(errs, "reading certificates: "+err.Error())
	}
	rep.Type = cardName(id, certs)
	if kt := unusableSignInKey(card, certs); kt != "" {
		// The card is read, but sign-in cannot use it.
		rep.Supported, rep.Hint = false, unsupportedKeyHint(kt)
	}
	now := s.Now()
	for _, c := range certs {
		rep.Certificates = append(rep.Certificates, certinfo.Summarise(string(c.Key), c.Cert, now))
		if c.Key == pcsc.KeyAuthentication || (rep.Holder == nil && c.Key == pcsc.KeySignature) {
			h := certinfo.HolderOf(c.Cert)
			rep.Holder = &h
		}
	}
	st, err := card.PINStatus(ctx)
	if err != nil && !errors.Is(err, pcsc.ErrPINBlocked) {
		errs = append(errs, "reading PIN status: "+err.Error())
	} else {
		rep.PIN = &wire.PINReport{TriesLeft: st.Retries, Blocked: st.Blocked || errors.Is(err, pcsc.ErrPINBlocked)}
	}
	rep.Error = strings.Join(errs, "; ")
	return rep
}

// tracedSession writes every APDU of every transaction to w (pcsc.Tracer redacts secrets).
type tracedSession struct {
	pcsc.Session
	w io.Writer
}

func (t tracedSession) Transact(ctx context.Context, fn func(pcsc.Transmitter) error) error {
	return t.Session.Transact(ctx, func(tx pcsc.Transmitter) error { return fn(pcsc.NewTracer(tx, t.w)) })
}
