package vpiv

// Status words the emulator answers (ISO 7816-4, NIST SP 800-73-4 part 2).
const (
	swOK                  = 0x9000
	swMoreData            = 0x6100 // | bytes left (00 for 256 or more)
	swWrongLength         = 0x6700
	swLogicalChannel      = 0x6881 // logical channel not supported
	swLastCommandExpected = 0x6883 // the chain was broken
	swChainingUnsupported = 0x6884
	swSecurityStatus      = 0x6982
	swAuthBlocked         = 0x6983
	swConditionsOfUse     = 0x6985
	swWrongData           = 0x6A80
	swNotFound            = 0x6A82 // file or application not found
	swWrongP1P2           = 0x6A86
	swRefDataNotFound     = 0x6A88
	swINSNotSupported     = 0x6D00
	swCLANotSupported     = 0x6E00
	swNoPreciseDiagnosis  = 0x6F00
	swVerifyFailed        = 0x63C0 // | tries left
)

// command is a parsed short command APDU.
type command struct {
	cla, ins, p1, p2 byte
	data             []byte // aliases the caller's buffer: copy before keeping
	le               int    // -1 when absent, otherwise 1..256 (00 encodes 256)
}

// parseCommand parses a short APDU (ISO 7816-4 cases 1 to 4). Extended
// lengths are not supported (the card answers 6700, as a short-APDU card does).
func parseCommand(b []byte) (command, uint16) {
	if len(b) < 4 {
		return command{}, swWrongLength
	}
	c := command{cla: b[0], ins: b[1], p1: b[2], p2: b[3], le: -1}
	rest := b[4:]
	switch {
	case len(rest) == 0: // case 1
	case len(rest) == 1: // case 2
		c.le = leValue(rest[0])
	default:
		lc := int(rest[0])
		if lc == 0 {
			return c, swWrongLength // extended length
		}
		switch len(rest) {
		case 1 + lc: // case 3
			c.data = rest[1:]
		case 2 + lc: // case 4
			c.data = rest[1 : 1+lc]
			c.le = leValue(rest[1+lc])
		default:
			return c, swWrongLength
		}
	}
	return c, 0
}

func leValue(b byte) int {
	if b == 0 {
		return 256
	}
	return int(b)
}

// status encodes a status word alone.
func status(sw uint16) []byte { return []byte{byte(sw >> 8), byte(sw)} }

// withStatus appends a status word to data.
func withStatus(data []byte, sw uint16) []byte {
	out := make([]byte, 0, len(data)+2)
	out = append(out, data...)
	return append(out, byte(sw>>8), byte(sw))
}
