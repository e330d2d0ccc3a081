package pcsc

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Tracer is a Transmitter that writes every command and response APDU it
// passes on to a writer, as hex with a timestamp and the card's response
// time, with secrets redacted: it is the APDU trace IT can send when a card
// does not behave as a driver expects (cardagent cards --trace-apdu).
//
// Redacted, with the data field replaced by "<redacted N bytes>":
//   - VERIFY (INS 20, 21), CHANGE REFERENCE DATA (24), RESET RETRY COUNTER /
//     unblock (2C): they carry PINs and PUKs, on PIV and series 8 alike;
//   - GENERAL AUTHENTICATE (87) with key reference 9B: the PIV card
//     management key's witness and challenge;
//   - YubiKey SET MANAGEMENT KEY (FF) and IMPORT KEY (FE);
//   - PUT DATA (DB) of the PIV printed-information object 5FC109, and the
//     answer (and its GET RESPONSE continuation) to GET DATA (CB) of it:
//     management tools store a PIN-protected management key there;
//   - the answers to READ BINARY (B0) after a SELECT of file 2000 by its
//     identifier: the series 8 PUK file, whose content unblocks the PIN.
//
// Signatures, challenges, certificates and status words are not secret and
// are written in full. A line looks like
//
//	15:04:05.000123 > 00 20 00 81 40 <redacted 64 bytes>
//	15:04:05.000456 < 63 C2 [0.33 ms]
type Tracer struct {
	t   Transmitter
	w   io.Writer
	now func() time.Time

	mu         sync.Mutex
	redactResp bool // the previous command's answer was redacted; so are its GET RESPONSE parts
	secretEF   bool // the current EF holds a secret: its READ BINARY answers are redacted
}

var _ Transmitter = (*Tracer)(nil)

// NewTracer returns a Transmitter that passes every APDU to t and writes
// it, redacted, to w. Write errors are ignored: tracing never breaks an
// operation.
func NewTracer(t Transmitter, w io.Writer) *Tracer {
	return &Tracer{t: t, w: w, now: time.Now}
}

// Transmit sends cmd to the underlying Transmitter and traces both directions.
func (tr *Tracer) Transmit(cmd []byte) ([]byte, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	start := tr.now()
	fmt.Fprintf(tr.w, "%s > %s\n", start.Format("15:04:05.000000"), FormatCommand(cmd))
	if len(cmd) >= 4 && cmd[1] == 0xA4 {
		tr.secretEF = secretFile(cmd)
	}
	redactResp := secretResponse(cmd) || (tr.redactResp && len(cmd) >= 2 && cmd[1] == 0xC0) ||
		(tr.secretEF && len(cmd) >= 2 && cmd[1] == 0xB0)
	tr.redactResp = redactResp
	resp, err := tr.t.Transmit(cmd)
	end := tr.now()
	took := fmt.Sprintf("[%.2f ms]", float64(end.Sub(start).Microseconds())/1000)
	switch {
	case err != nil:
		fmt.Fprintf(tr.w, "%s < error: %v %s\n", end.Format("15:04:05.000000"), err, took)
	case redactResp && len(resp) > 2:
		fmt.Fprintf(tr.w, "%s < <redacted %d bytes> %s %s\n", end.Format("15:04:05.000000"), len(resp)-2, HexString(resp[len(resp)-2:]), took)
	default:
		fmt.Fprintf(tr.w, "%s < %s %s\n", end.Format("15:04:05.000000"), HexString(resp), took)
	}
	return resp, err
}

// Note writes a comment line ("# ...") into the trace.
func (tr *Tracer) Note(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	for _, line := range strings.Split(msg, "\n") {
		fmt.Fprintf(tr.w, "# %s\n", line)
	}
}

// FormatCommand formats a command APDU as hex the way Tracer writes it:
// a command that may carry a secret (see Tracer) shows its header, Lc and Le
// but not its data.
func FormatCommand(cmd []byte) string {
	if len(cmd) <= 4 || !secretCommand(cmd) {
		return HexString(cmd)
	}
	hdr, rest := cmd[:4], cmd[4:]
	var lc []byte
	var n int
	switch {
	case rest[0] != 0 && len(rest) >= 1+int(rest[0]) && len(rest) <= 2+int(rest[0]):
		lc, n = rest[:1], int(rest[0]) // short: Lc data [Le]
	case rest[0] == 0 && len(rest) >= 3:
		l := int(rest[1])<<8 | int(rest[2]) // extended: 00 Lc Lc data [Le Le]
		if l > 0 && len(rest) >= 3+l && len(rest) <= 5+l {
			lc, n = rest[:3], l
		}
	}
	if lc == nil {
		// Not a well-formed command with data: hide everything after the header.
		return fmt.Sprintf("%s <redacted %d bytes>", HexString(hdr), len(rest))
	}
	s := fmt.Sprintf("%s %s <redacted %d bytes>", HexString(hdr), HexString(lc), n)
	if le := rest[len(lc)+n:]; len(le) > 0 {
		s += " " + HexString(le)
	}
	return s
}

// printedInfo is the PIV printed-information object tag list (5C 03 5F C1 09).
var printedInfo = []byte{0x5C, 0x03, 0x5F, 0xC1, 0x09}

// secretCommand reports whether a command's data field may hold a secret.
func secretCommand(cmd []byte) bool {
	switch ins := cmd[1]; ins {
	case 0x20, 0x21, 0x24, 0x2C, 0xFE, 0xFF:
		return true
	case 0x87:
		return cmd[3] == 0x9B
	case 0xDB:
		return bytes.Contains(cmd[4:], printedInfo)
	}
	return false
}

// pukFile is the file identifier of the series 8 (Oberthur AWP) PUK file,
// which holds the code that unblocks the user PIN.
var pukFile = []byte{0x20, 0x00}

// secretFile reports whether a SELECT selects a file whose content is a
// secret: SELECT by file identifier of the series 8 PUK file 2000.
func secretFile(cmd []byte) bool {
	return len(cmd) >= 7 && cmd[2] == 0x00 && cmd[4] == 0x02 && bytes.Equal(cmd[5:7], pukFile)
}

// secretResponse reports whether a command's answer may hold a secret.
func secretResponse(cmd []byte) bool {
	return len(cmd) > 4 && cmd[1] == 0xCB && bytes.Contains(cmd[4:], printedInfo)
}
