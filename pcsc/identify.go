package pcsc

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"strings"
)

// IdentifyResult is what Identify found on a card.
type IdentifyResult struct {
	Kind Kind
	// Applet is the AID (upper-case hex) of the application that answered
	// SELECT; empty when the card was recognised from its ATR alone.
	Applet string
	// Name says in words what the card is, for people ("PIV card"). Any
	// vendor's PIV card is a "PIV card": only its certificates can tell an
	// NHS one (the agent then says NamePIVNHS).
	Name string
}

// NamePIVNHS names a PIV card whose certificates an NHS CA issued.
const NamePIVNHS = "NHS series 9/10 (PIV)"

// Human names of the card kinds.
const (
	namePIV     = "PIV card"
	nameSeries8 = "NHS series 8 (Oberthur)"
	nameRetired = "retired NHS series 5/6 (JCOP41)"
	nameUnknown = "unknown card"
)

// aidPIV is the PIV card application (NIST SP 800-73-4), selected with P1=04 P2=00.
var aidPIV = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// series8AIDs are the Oberthur applications a series 8 card may carry
// (docs/series8.md), probed in this order with P1=04 P2=0C: AuthentIC
// v2.2 / AWP (OpenSC's oberthur driver), AuthentIC v3.1 on Cosmo v7, and
// IAS-ECC on Cosmo v8. Which one NHS cards answer is not publicly known.
var series8AIDs = [][]byte{
	{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x03, 0x03, 0x00, 0x00, 0x00, 0xF1, 0x00, 0x00, 0x00, 0x02},
	{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x00, 0x70, 0x0A, 0x10, 0x00, 0xF1, 0x00, 0x00, 0x01, 0x00},
	{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x08, 0x00, 0x07, 0x00, 0x00, 0xFE, 0x00, 0x00, 0x01, 0x00},
}

// atrHints are ATRs known from public lists (docs/series8.md). They only decide
// when no application answers: a selected applet always wins.
var atrHints = []struct {
	atr  string
	kind Kind
}{
	// Oberthur 64k v4/v5 and CosmopolIC v5.2 (OpenSC oberthur driver).
	{"3B 7D 18 00 00 00 31 80 71 8E 64 77 E3 01 00 82 90 00", KindSeries8},
	{"3B 7B 18 00 00 00 31 C0 64 77 E3 03 00 82 90 00", KindSeries8},
	{"3B DB 18 00 80 1F 03 00 31 C0 64 77 E3 03 00 82 90 00 4F", KindSeries8},
	// Oberthur ID-One Cosmo v7/v8 (pcsc-tools).
	{"3B DB 96 00 80 B1 FE 45 1F 83 00 31 C0 64 BA FC 10 00 07 90 00 0F", KindSeries8},
	{"3B D8 18 00 80 B1 FE 45 1F 07 80 31 C1 64 08 06 92 0F D5", KindSeries8},
	// Idemia PIV on ID-One V8 (series 9/10).
	{"3B D6 97 00 81 B1 FE 45 1F 87 80 31 C1 52 41 1A 2B", KindPIV},
	// JCOP41 "NHS Care Identity Service (CIS) smartcard" (series 5/6, retired).
	{"3B F9 18 00 00 81 31 FE 45 4A 43 4F 50 34 31 56 32 32 AF", KindRetired},
}

// atrKind looks the ATR up in atrHints; KindUnknown when it is not there.
func atrKind(atr []byte) Kind {
	for _, h := range atrHints {
		b, err := hex.DecodeString(strings.ReplaceAll(h.atr, " ", ""))
		if err == nil && bytes.Equal(b, atr) {
			return h.kind
		}
	}
	return KindUnknown
}

// Identify tells what card s holds, from its ATR and by selecting the
// applications cardagent has drivers for: PIV first, then the Oberthur
// series 8 AIDs in turn. It sends nothing but SELECT (and GET RESPONSE for
// a long answer): never a VERIFY or anything that writes. A card nothing
// answers on is KindUnknown without an error (a known series 8 ATR is
// KindSeries8 with an empty Applet). The error is only for a card that
// could not be talked to (removed, mute, service gone, ctx done); the
// result then carries what the ATR says.
func Identify(ctx context.Context, s Session) (IdentifyResult, error) {
	hint := atrKind(s.ATR())
	fromATR := IdentifyResult{Kind: KindUnknown, Name: nameUnknown}
	switch hint {
	case KindRetired:
		// The retired JCOP41 cards carry none of these applets: no need to ask.
		return IdentifyResult{Kind: KindRetired, Name: nameRetired}, nil
	case KindSeries8:
		fromATR = IdentifyResult{Kind: KindSeries8, Name: nameSeries8}
	}
	var res IdentifyResult
	err := s.Transact(ctx, func(t Transmitter) error {
		ok, err := selectAID(t, aidPIV, 0x00)
		if err != nil || ok {
			if ok {
				res = IdentifyResult{Kind: KindPIV, Applet: aidHex(aidPIV), Name: namePIV}
			}
			return err
		}
		for _, aid := range series8AIDs {
			ok, err := selectAID(t, aid, 0x0C)
			if err != nil {
				return err
			}
			if ok {
				res = IdentifyResult{Kind: KindSeries8, Applet: aidHex(aid), Name: nameSeries8}
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return fromATR, fmt.Errorf("selecting card application: %w", err)
	}
	if res.Kind == "" {
		return fromATR, nil
	}
	return res, nil
}

// selectAID sends SELECT by name. P2=0C asks for no response data; a card
// that rejects that P2 (6A86) is asked once more with P2=00.
func selectAID(t Transmitter, aid []byte, p2 byte) (bool, error) {
	cmd := Command{CLA: 0x00, INS: 0xA4, P1: 0x04, P2: p2, Data: aid, Le: 0}
	if p2 == 0x0C {
		cmd.Le = -1
	}
	resp, err := Exchange(t, cmd)
	if err != nil {
		return false, err
	}
	if resp.SW == 0x6A86 && p2 == 0x0C {
		return selectAID(t, aid, 0x00)
	}
	return resp.SW == 0x9000, nil
}

func aidHex(aid []byte) string { return strings.ToUpper(hex.EncodeToString(aid)) }
