package series8

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cardagent/cardagent/pcsc"
)

// Probe runs, in one transaction, the read-only probe of SERIES8.md ("What a
// real card must be probed for") and writes a redacted transcript to w, for
// IT to send when a series 8 card does not work (cardagent cards
// --trace-apdu). It sends exactly:
//
//  1. SELECT the card manager (00 A4 04 0C A0000000030000) and GET DATA CPLC (80 CA 9F 7F 2D);
//  2. SELECT each applet of Applets (00 A4 04 0C AID; once more with P2=00
//     if the card answers 6A86, as the driver does);
//  3. for each applet that answered: SELECT it again, then SELECT 3F00 and
//     5011 (00 A4 00 00 02 FID 00) and the PIN status VERIFY with no data
//     (00 20 00 81); when none answered, the same under the card's default
//     application.
//
// It never sends a PIN, never signs, never writes. SW errors are part of the
// transcript; only a transport error (or a cancelled ctx) is returned.
func Probe(ctx context.Context, s pcsc.Session, w io.Writer) error {
	fmt.Fprintf(w, "# cardagent series 8 probe, %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "# read-only: no PIN is sent, nothing is written; secrets would appear as <redacted N bytes>\n")
	fmt.Fprintf(w, "# reader: %s\n", s.Reader())
	fmt.Fprintf(w, "# ATR: %s", pcsc.HexString(s.ATR()))
	if d := DescribeATR(s.ATR()); d != "" {
		fmt.Fprintf(w, " (%s)", d)
	}
	fmt.Fprintln(w)
	err := s.Transact(ctx, func(raw pcsc.Transmitter) error {
		tr := pcsc.NewTracer(raw, w)
		tr.Note("card manager and CPLC (IC serial number in bytes 15-18)")
		if _, err := pcsc.Exchange(tr, pcsc.Command{INS: insSelect, P1: 0x04, P2: 0x0C, Data: AIDCardManager, Le: -1}); err != nil {
			return err
		}
		resp, err := pcsc.Exchange(tr, pcsc.Command{CLA: 0x80, INS: insGetData, P1: 0x9F, P2: 0x7F, Le: 0x2D})
		if err != nil {
			return err
		}
		if serial := cplcSerial(resp.Data); resp.OK() && serial != nil {
			tr.Note("CPLC IC serial: %s", pcsc.HexString(serial))
		}
		var answered []Applet
		for _, app := range Applets {
			tr.Note("applet %s", app)
			err := selectAID(tr, app.AID)
			if isTransport(err) {
				return err
			}
			if err == nil {
				answered = append(answered, app)
			}
		}
		layout := func() error {
			for _, fid := range []uint16{fidMF, fidAWP} {
				resp, err := pcsc.Exchange(tr, pcsc.Command{INS: insSelect, Data: []byte{byte(fid >> 8), byte(fid)}, Le: 0})
				if err != nil {
					return err
				}
				if !resp.OK() {
					return nil
				}
			}
			_, err := pcsc.Exchange(tr, pcsc.Command{INS: insVerify, P2: pinRef, Le: -1})
			return err
		}
		if len(answered) == 0 {
			tr.Note("no known applet answered; AWP layout and PIN status with the default applet")
			return layout()
		}
		for _, app := range answered {
			// Select it again: a later SELECT that failed may have left another application selected.
			tr.Note("AWP layout and PIN status under %s", app.Name)
			err := selectAID(tr, app.AID)
			if isTransport(err) {
				return err
			}
			if err == nil {
				if err := layout(); err != nil {
					return err
				}
			}
		}
		names := make([]string, len(answered))
		for i, a := range answered {
			names[i] = a.String()
		}
		tr.Note("applets that answered: %v", names)
		return nil
	})
	if err != nil {
		fmt.Fprintf(w, "# probe ended: %v\n", err)
		return fmt.Errorf("probing series 8 card: %w", err)
	}
	fmt.Fprintf(w, "# probe complete\n")
	return nil
}
