package piv

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/cardagent/cardagent/pcsc"
)

// Data object tags (SP 800-73-4 Part 1, table 3). GET DATA asks for them in a
// 5C tag list; the card answers with a 53 object (7E for discovery).
const (
	tagCHUID      = 0x5FC102
	tagKeyHistory = 0x5FC10C
	tagDiscovery  = 0x7E
)

// errMalformed is returned by the parsers for card data that does not follow
// SP 800-73-4. It wraps pcsc.ErrMalformedTLV only when the BER-TLV itself is bad.
var errMalformed = errors.New("malformed PIV data object")

// maxCertSize bounds a decompressed certificate: a gzip bomb on a card (or a
// broken one) must not make the agent allocate without limit. Real PIV
// certificates are 1-3 KB.
const maxCertSize = 32 << 10

// appInfo is what the PIV application's SELECT answer (the Application
// Property Template, SP 800-73-4 Part 2, 3.1.1) says.
type appInfo struct {
	AID   []byte // 4F: the application identifier (PIX part)
	Label string // 50: application label, optional
	Algs  []byte // AC/80: cryptographic algorithm identifiers, optional
}

// parseAPT parses a SELECT answer: 61 { 4F AID, 79 {4F authority}, 50 label, 5F50 URL, AC {80 alg, ..., 06 oid} }.
// An empty answer (some cards answer SELECT with 9000 and no data) gives an empty appInfo.
func parseAPT(b []byte) (appInfo, error) {
	var info appInfo
	if len(b) == 0 {
		return info, nil
	}
	top, err := pcsc.ParseTLV(b)
	if err != nil {
		return info, fmt.Errorf("application property template: %w", err)
	}
	apt, ok := pcsc.FindTLV(top, 0x61)
	if !ok {
		return info, fmt.Errorf("%w: SELECT answer without application property template", errMalformed)
	}
	objs, err := pcsc.ParseTLV(apt)
	if err != nil {
		return info, fmt.Errorf("application property template: %w", err)
	}
	if aid, ok := pcsc.FindTLV(objs, 0x4F); ok {
		info.AID = bytes.Clone(aid)
	}
	if label, ok := pcsc.FindTLV(objs, 0x50); ok {
		info.Label = printable(label)
	}
	if algs, ok := pcsc.FindTLV(objs, 0xAC); ok {
		list, err := pcsc.ParseTLV(algs)
		if err != nil {
			return info, fmt.Errorf("algorithm list: %w", err)
		}
		for _, o := range list {
			if o.Tag == 0x80 && len(o.Value) == 1 {
				info.Algs = append(info.Algs, o.Value[0])
			}
		}
	}
	return info, nil
}

// chuid is the part of the Card Holder Unique Identifier (SP 800-73-4 Part 1,
// 3.1.2) that identifies the card.
type chuid struct {
	FASCN []byte // 30: 25 bytes, optional for non-federal issuers
	GUID  []byte // 34: 16 bytes
}

// nonFederalFASCN is the FASC-N that non-federal issuers (PIV-I and many
// commercial PIV cards) put in every card: agency 9999, system 9999,
// credential 999999. It identifies no card, so it is not used as an identity.
var nonFederalFASCN = []byte{
	0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D, 0x83, 0x68,
	0x58, 0x21, 0x08, 0x42, 0x10, 0x84, 0x21, 0xC8, 0x42, 0x10, 0xC3, 0xEB,
}

// parseCHUID parses a GET DATA answer for the CHUID: 53 { 30 FASC-N, ..., 34 GUID, ..., 3E signature, FE }.
// A GUID or FASC-N of all zeros (or the non-federal filler FASC-N) is treated as absent.
func parseCHUID(b []byte) (chuid, error) {
	var c chuid
	objs, err := dataObject(b, 0x53)
	if err != nil {
		return c, fmt.Errorf("CHUID: %w", err)
	}
	if g, ok := pcsc.FindTLV(objs, 0x34); ok && len(g) == 16 && !allZero(g) {
		c.GUID = bytes.Clone(g)
	}
	if f, ok := pcsc.FindTLV(objs, 0x30); ok && len(f) == 25 && !allZero(f) && !bytes.Equal(f, nonFederalFASCN) {
		c.FASCN = bytes.Clone(f)
	}
	return c, nil
}

// keyHistory is the Key History object (SP 800-73-4 Part 1, 3.3.2): how many
// retired key management keys have their certificate on the card. Those keys
// occupy the first retired slots (82, 83, ...).
type keyHistory struct {
	OnCard  int // C1
	OffCard int // C2
}

func parseKeyHistory(b []byte) (keyHistory, error) {
	var h keyHistory
	objs, err := dataObject(b, 0x53)
	if err != nil {
		return h, fmt.Errorf("key history: %w", err)
	}
	if v, ok := pcsc.FindTLV(objs, 0xC1); ok {
		if len(v) != 1 || v[0] > 20 {
			return h, fmt.Errorf("%w: key history keysWithOnCardCerts % X", errMalformed, v)
		}
		h.OnCard = int(v[0])
	}
	if v, ok := pcsc.FindTLV(objs, 0xC2); ok {
		if len(v) != 1 || v[0] > 20 {
			return h, fmt.Errorf("%w: key history keysWithOffCardCerts % X", errMalformed, v)
		}
		h.OffCard = int(v[0])
	}
	return h, nil
}

// parseCertContainer parses a certificate object: 53 { 70 cert, 71 CertInfo, 72 MSCUID, FE LRC }
// and returns the DER certificate, gunzipped when CertInfo says it is compressed.
func parseCertContainer(b []byte) ([]byte, error) {
	objs, err := dataObject(b, 0x53)
	if err != nil {
		return nil, fmt.Errorf("certificate container: %w", err)
	}
	cert, ok := pcsc.FindTLV(objs, 0x70)
	if !ok || len(cert) == 0 {
		return nil, fmt.Errorf("%w: certificate container without certificate", errMalformed)
	}
	info, _ := pcsc.FindTLV(objs, 0x71)
	if len(info) > 1 {
		return nil, fmt.Errorf("%w: CertInfo of %d bytes", errMalformed, len(info))
	}
	if len(info) == 1 && info[0]&0x01 != 0 {
		// Bit 0 of CertInfo: the certificate is gzip-compressed (SP 800-73-4 Part 1, table 15).
		return gunzip(cert)
	}
	return bytes.Clone(cert), nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: compressed certificate: %v", errMalformed, err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxCertSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: compressed certificate: %v", errMalformed, err)
	}
	if len(out) > maxCertSize {
		return nil, fmt.Errorf("%w: compressed certificate larger than %d bytes", errMalformed, maxCertSize)
	}
	return out, nil
}

// parseAuthResponse extracts the response from a GENERAL AUTHENTICATE answer: 7C { 82 response }.
func parseAuthResponse(b []byte) ([]byte, error) {
	objs, err := dataObject(b, 0x7C)
	if err != nil {
		return nil, fmt.Errorf("dynamic authentication template: %w", err)
	}
	r, ok := pcsc.FindTLV(objs, 0x82)
	if !ok || len(r) == 0 {
		return nil, fmt.Errorf("%w: GENERAL AUTHENTICATE answer without response", errMalformed)
	}
	return r, nil
}

// dataObject parses b as one object with the given outer tag and returns its parsed contents.
func dataObject(b []byte, tag uint32) ([]pcsc.TLV, error) {
	top, err := pcsc.ParseTLV(b)
	if err != nil {
		return nil, err
	}
	v, ok := pcsc.FindTLV(top, tag)
	if !ok {
		return nil, fmt.Errorf("%w: no %X object", errMalformed, tag)
	}
	return pcsc.ParseTLV(v)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// printable keeps the printable ASCII of a card-supplied label, so a label can
// never inject control characters into logs or the UI.
func printable(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 0x20 && c < 0x7F {
			out = append(out, c)
		}
	}
	return string(out)
}
