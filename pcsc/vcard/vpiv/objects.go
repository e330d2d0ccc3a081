package vpiv

import (
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/cardagent/cardagent/pcsc"
)

// AID is the full PIV Card Application AID (NIST RID A0 00 00 03 08, PIX 00 00 10 00 01 00).
var AID = []byte{0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00}

// ridLen is the length of the right-truncated AID (the NIST RID) a client may select with.
const ridLen = 5

// GlobalPlatform issuer security domain AIDs (the card manager a real card
// answers for before the PIV application is selected).
var cardManagerAIDs = [][]byte{
	{0xA0, 0x00, 0x00, 0x01, 0x51, 0x00, 0x00, 0x00},
	{0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00},
}

// PIV data object tags (SP 800-73-4 part 1, table 3).
const (
	TagCHUID         = 0x5FC102
	TagCCC           = 0x5FC107
	TagKeyHistory    = 0x5FC10C
	TagDiscovery     = 0x7E
	TagCert9A        = 0x5FC105
	TagCert9C        = 0x5FC10A
	TagCert9D        = 0x5FC10B
	TagCert9E        = 0x5FC101
	TagCertRetired82 = 0x5FC10D // retired slots 82..95 are 5FC10D..5FC120
)

// CertTag returns the data object tag of the certificate for key reference
// slot (9A, 9C, 9D, 9E, 82..95), or 0 for any other value.
func CertTag(slot byte) uint32 {
	switch {
	case slot == 0x9A:
		return TagCert9A
	case slot == 0x9C:
		return TagCert9C
	case slot == 0x9D:
		return TagCert9D
	case slot == 0x9E:
		return TagCert9E
	case slot >= 0x82 && slot <= 0x95:
		return TagCertRetired82 + uint32(slot-0x82)
	}
	return 0
}

// applicationPropertyTemplate is SELECT's answer (SP 800-73-4 part 2, table 3).
func applicationPropertyTemplate(label string) []byte {
	var v []byte
	v = pcsc.AppendTLV(v, 0x4F, AID[ridLen:]) // PIX
	v = pcsc.AppendTLV(v, 0x79, pcsc.AppendTLV(nil, 0x4F, AID[:ridLen]))
	if label != "" {
		v = pcsc.AppendTLV(v, 0x50, []byte(label))
	}
	var algs []byte
	for _, a := range []byte{AlgRSA2048, AlgRSA1024, AlgECCP256, AlgECCP384} {
		algs = pcsc.AppendTLV(algs, 0x80, []byte{a})
	}
	algs = pcsc.AppendTLV(algs, 0x06, []byte{0x00})
	v = pcsc.AppendTLV(v, 0xAC, algs)
	return pcsc.AppendTLV(nil, 0x61, v)
}

// cardManagerFCI is what a GlobalPlatform card manager answers to SELECT.
func cardManagerFCI(aid []byte) []byte {
	var v []byte
	v = pcsc.AppendTLV(v, 0x84, aid)
	v = pcsc.AppendTLV(v, 0xA5, pcsc.AppendTLV(nil, 0x9F65, []byte{0xFF}))
	return pcsc.AppendTLV(nil, 0x6F, v)
}

// chuid encodes the Card Holder Unique Identifier container.
func chuid(fascn, guid []byte, expiry time.Time) []byte {
	var v []byte
	v = pcsc.AppendTLV(v, 0x30, fascn)
	v = pcsc.AppendTLV(v, 0x34, guid)
	v = pcsc.AppendTLV(v, 0x35, []byte(expiry.UTC().Format("20060102")))
	v = pcsc.AppendTLV(v, 0x3E, nil) // issuer asymmetric signature: none on this test card
	v = pcsc.AppendTLV(v, 0xFE, nil) // error detection code
	return pcsc.AppendTLV(nil, 0x53, v)
}

// ccc encodes a Card Capability Container (SP 800-73-4 part 1, table 8).
func ccc(guid []byte) []byte {
	id := append([]byte{0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02}, guid[:14]...)
	var v []byte
	v = pcsc.AppendTLV(v, 0xF0, id)           // card identifier
	v = pcsc.AppendTLV(v, 0xF1, []byte{0x21}) // capability container version
	v = pcsc.AppendTLV(v, 0xF2, []byte{0x21}) // capability grammar version
	v = pcsc.AppendTLV(v, 0xF3, nil)          // applications CardURL
	v = pcsc.AppendTLV(v, 0xF4, []byte{0x00}) // PKCS#15
	v = pcsc.AppendTLV(v, 0xF5, []byte{0x10}) // registered data model number
	v = pcsc.AppendTLV(v, 0xF6, nil)          // access control rule table
	v = pcsc.AppendTLV(v, 0xF7, nil)          // card APDUs
	v = pcsc.AppendTLV(v, 0xFA, nil)          // redirection tag
	v = pcsc.AppendTLV(v, 0xFB, nil)          // capability tuples
	v = pcsc.AppendTLV(v, 0xFC, nil)          // status tuples
	v = pcsc.AppendTLV(v, 0xFD, nil)          // next CCC
	v = pcsc.AppendTLV(v, 0xFE, nil)          // error detection code
	return pcsc.AppendTLV(nil, 0x53, v)
}

// discovery encodes the Discovery Object: the PIV AID and the PIN usage
// policy (PIV Card Application PIN only, no global PIN).
func discovery() []byte {
	var v []byte
	v = pcsc.AppendTLV(v, 0x4F, AID)
	v = pcsc.AppendTLV(v, 0x5F2F, []byte{0x40, 0x00})
	return pcsc.AppendTLV(nil, 0x7E, v)
}

// keyHistory encodes the Key History Object for n retired keys whose
// certificates are on the card.
func keyHistory(n int) []byte {
	var v []byte
	v = pcsc.AppendTLV(v, 0xC1, []byte{byte(n)})
	v = pcsc.AppendTLV(v, 0xC2, []byte{0})
	v = pcsc.AppendTLV(v, 0xFE, nil)
	return pcsc.AppendTLV(nil, 0x53, v)
}

// certObject encodes an X.509 certificate container: 53 {70 cert, 71 CertInfo, FE LRC}.
// With compress the certificate is gzip-compressed and CertInfo is 01.
func certObject(cert *x509.Certificate, compress bool) ([]byte, error) {
	body, info := cert.Raw, byte(0x00)
	if compress {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(cert.Raw); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		body, info = buf.Bytes(), 0x01
	}
	var v []byte
	v = pcsc.AppendTLV(v, 0x70, body)
	v = pcsc.AppendTLV(v, 0x71, []byte{info})
	v = pcsc.AppendTLV(v, 0xFE, nil)
	return pcsc.AppendTLV(nil, 0x53, v), nil
}

// cplc is the GlobalPlatform Card Production Life Cycle data (9F7F, 42
// bytes) the card manager answers with; the IC serial comes from serial.
func cplc(serial []byte) []byte {
	v := []byte{
		0x40, 0x90, // IC fabricator
		0x72, 0x71, // IC type
		0x47, 0x91, // operating system identifier
		0x91, 0x81, // operating system release date
		0x01, 0x02, // operating system release level
		0x91, 0x81, // IC fabrication date
		0, 0, 0, 0, // IC serial number (below)
		0x12, 0x34, // IC batch identifier
	}
	copy(v[12:16], serial)
	v = append(v, make([]byte, 42-len(v))...)
	return pcsc.AppendTLV(nil, 0x9F7F, v)
}

// EncodeFASCN encodes a FASC-N (SP 800-73-4 part 1, TIG SCEPACS) as the 25
// bytes of 5-bit BCD-with-odd-parity characters: start sentinel, agency code
// (4 digits), system code (4), credential number (6), credential series (1),
// individual credential issue (1), person identifier (10), organizational
// category (1), organizational identifier (4), person/organization
// association (1), end sentinel and LRC. The argument is those fields as 32
// digits, in that order, with or without separators.
func EncodeFASCN(digits string) ([]byte, error) {
	digits = strings.NewReplacer("-", "", " ", "").Replace(digits)
	if len(digits) != 32 {
		return nil, fmt.Errorf("FASC-N needs 32 digits, got %d", len(digits))
	}
	const ss, fs, es = 0xB, 0xD, 0xF
	var chars []byte
	add := func(s string) {
		for _, r := range s {
			chars = append(chars, byte(r-'0'))
		}
	}
	for _, r := range digits {
		if r < '0' || r > '9' {
			return nil, fmt.Errorf("FASC-N digit %q is not 0-9", r)
		}
	}
	chars = append(chars, ss)
	add(digits[0:4])
	chars = append(chars, fs)
	add(digits[4:8])
	chars = append(chars, fs)
	add(digits[8:14])
	chars = append(chars, fs)
	add(digits[14:15])
	chars = append(chars, fs)
	add(digits[15:16])
	chars = append(chars, fs)
	add(digits[16:])
	chars = append(chars, es)
	var lrc byte
	for _, c := range chars {
		lrc ^= c
	}
	chars = append(chars, lrc&0x0F)

	out := make([]byte, 25)
	bit := 0
	for _, c := range chars {
		// Four data bits, least significant first, then the odd parity bit.
		ones := 0
		for i := 0; i < 4; i++ {
			b := (c >> i) & 1
			ones += int(b)
			setBit(out, bit, b)
			bit++
		}
		setBit(out, bit, byte(1-ones%2))
		bit++
	}
	return out, nil
}

func setBit(b []byte, i int, v byte) {
	if v != 0 {
		b[i/8] |= 0x80 >> (i % 8)
	}
}

// defaultFASCN is the FASC-N of the test card: agency 9999, system 9999,
// credential 999999, series 1, individual credential issue (ICI) 1, person
// 1234567890, category 1, organization 9999, association 1.
const defaultFASCN = "9999-9999-999999-1-1-1234567890-1-9999-1"
