package series8

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cardagent/cardagent/pcsc"
)

// Probe runs, in one transaction, the read-only probe of a series 8 card
// and writes a redacted transcript to w, for IT to send when a series 8
// card does not work (cardagent cards --trace-apdu). It sends exactly:
//
//  1. OpenSC's start-up sequence for Oberthur cards (card-oberthur.c
//     auth_init, then the AWP emulator pkcs15-oberthur.c): SELECT the card
//     manager with the 7-byte AID (00 A4 04 0C 07 A0000000030000), GET DATA
//     CPLC (80 CA 9F 7F 2D), SELECT AuthentIC v2.2 (00 A4 04 0C 10 AID),
//     SELECT 3F00 and 5011 (00 A4 00 00 02 FID), and the PIN states with
//     empty VERIFY commands: global SO PIN 04, local SO PIN 84 (the PUK),
//     user PIN 81 (00 20 00 ref);
//  2. the card manager with the 8-byte AID (00 A4 04 0C 08 A000000003000000)
//     and GET DATA CPLC again, so the transcript shows which form the card
//     accepts;
//  3. SELECT each applet of Applets (00 A4 04 0C AID; once more with P2=00
//     if the card answers 6A86, as the driver does);
//  4. for each applet that answered: SELECT it again, then SELECT 3F00 and
//     5011 (00 A4 00 00 02 FID 00) and the user PIN status (00 20 00 81);
//     when none answered, the same under the card's default application.
//
// An empty VERIFY reads a PIN's state without spending a try (ISO 7816-4).
// The probe never sends a PIN, never signs, never writes. SW errors are part
// of the transcript; only a transport error (or a cancelled ctx) is returned.
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
		send := func(cmds ...pcsc.Command) error {
			for _, c := range cmds {
				resp, err := pcsc.Exchange(tr, c)
				if err != nil {
					return err
				}
				if c.INS == insGetData {
					if serial := cplcSerial(resp.Data); resp.OK() && serial != nil {
						tr.Note("CPLC IC serial: %s", pcsc.HexString(serial))
					}
				}
			}
			return nil
		}
		selectCM := func(aid []byte) pcsc.Command {
			return pcsc.Command{INS: insSelect, P1: 0x04, P2: 0x0C, Data: aid, Le: -1}
		}
		getCPLC := pcsc.Command{CLA: 0x80, INS: insGetData, P1: 0x9F, P2: 0x7F, Le: 0x2D}
		status := func(ref byte) pcsc.Command { return pcsc.Command{INS: insVerify, P2: ref, Le: -1} }
		selectFIDNoLe := func(fid uint16) pcsc.Command {
			return pcsc.Command{INS: insSelect, Data: []byte{byte(fid >> 8), byte(fid)}, Le: -1}
		}

		tr.Note("OpenSC's start-up sequence for Oberthur AuthentIC/AWP cards (card manager 7-byte AID, CPLC, AuthentIC v2.2, 3F00, 5011, PIN states 04, 84, 81)")
		if err := send(selectCM(AIDCardManager), getCPLC, selectCM(Applets[0].AID), selectFIDNoLe(fidMF), selectFIDNoLe(fidAWP),
			status(0x04), status(soPINRef), status(pinRef)); err != nil {
			return err
		}
		tr.Note("card manager 8-byte AID and CPLC")
		if err := send(selectCM(AIDCardManagerLong), getCPLC); err != nil {
			return err
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
			return send(status(pinRef))
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
