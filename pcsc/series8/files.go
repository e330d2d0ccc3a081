package series8

import (
	"errors"
	"fmt"

	"github.com/cardagent/cardagent/pcsc"
)

// errMalformed is returned by the parsers for card data that does not have
// the AWP shape this driver expects.
var errMalformed = errors.New("malformed series 8 data")

// File types in the FCI's tag 82 (first byte), as OpenSC's card-oberthur.c reads them.
const (
	typeTransparent = 0x01
	typeLinear      = 0x04
	typeDES         = 0x11
	typeRSAPublic   = 0x12
	typeRSACRT      = 0x14
	typeDF          = 0x38
)

// fci is what a SELECT by file identifier answers.
type fci struct {
	Type byte
	FID  uint16
	// Size is the file size in bytes (tag 80) or, for key files, the key
	// size in bits (tag 85).
	Size int
	// RecLen is the record length of a linear file when the card gives it.
	RecLen int
	// Access holds the eight access bytes of tag 86 (00 always, 21/22 user
	// PIN, 24/25 SO PIN, FF never), nil when absent.
	Access []byte
}

// parseFCI parses a SELECT answer: 6F or 62 { 82 type, 83 FID, 80|85 size,
// 86 access }. A card answering the bare objects without a template is
// accepted too.
func parseFCI(b []byte) (fci, error) {
	var f fci
	objs, err := pcsc.ParseTLV(b)
	if err != nil {
		return f, fmt.Errorf("file control information: %w", err)
	}
	if len(objs) == 1 && (objs[0].Tag == 0x6F || objs[0].Tag == 0x62) {
		if objs, err = pcsc.ParseTLV(objs[0].Value); err != nil {
			return f, fmt.Errorf("file control information: %w", err)
		}
	}
	typ, ok := pcsc.FindTLV(objs, 0x82)
	if !ok || len(typ) < 1 {
		return f, fmt.Errorf("%w: FCI without file type", errMalformed)
	}
	f.Type = typ[0]
	if f.Type == typeLinear {
		// ISO 7816-4: FDB, data coding byte, maximum record size (1 or 2
		// bytes), number of records. Informative only: records are read with Le=00.
		switch {
		case len(typ) >= 5:
			f.RecLen = int(typ[2])<<8 | int(typ[3])
		case len(typ) >= 3:
			f.RecLen = int(typ[2])
		}
	}
	id, ok := pcsc.FindTLV(objs, 0x83)
	if !ok || len(id) != 2 {
		return f, fmt.Errorf("%w: FCI without file identifier", errMalformed)
	}
	f.FID = uint16(id[0])<<8 | uint16(id[1])
	size, ok := pcsc.FindTLV(objs, 0x80)
	if !ok {
		size, ok = pcsc.FindTLV(objs, 0x85)
	}
	if ok {
		if len(size) == 0 || len(size) > 3 {
			return f, fmt.Errorf("%w: FCI size of %d bytes", errMalformed, len(size))
		}
		for _, c := range size {
			f.Size = f.Size<<8 | int(c)
		}
	} else if f.Type != typeDF {
		return f, fmt.Errorf("%w: FCI without file size", errMalformed)
	}
	if acl, ok := pcsc.FindTLV(objs, 0x86); ok {
		f.Access = acl
	}
	return f, nil
}

// listEntry is one entry of the public (4000) or private (5000) object list.
type listEntry struct {
	FID  uint16
	Size int // bytes for data and certificates, bits for keys
}

// Object classes: the FID's high byte in the object lists.
const (
	classPublicRSA  = 0x10
	classCert       = 0x20
	classPrivateRSA = 0x30
)

// maxListEntries bounds an object list (a 64 KB card holds far fewer objects).
const maxListEntries = 512

// parseObjectList parses an AWP object list: 5-byte entries
// FF fidHi fidLo sizeHi sizeLo. Entries not starting with FF are free slots.
// A trailing partial entry (a list file larger than its entries) is ignored
// when it is padding (00 or FF bytes only).
func parseObjectList(b []byte) ([]listEntry, error) {
	var out []listEntry
	for len(b) >= 5 {
		if b[0] == 0xFF {
			if len(out) == maxListEntries {
				return nil, fmt.Errorf("%w: object list of more than %d entries", errMalformed, maxListEntries)
			}
			out = append(out, listEntry{FID: uint16(b[1])<<8 | uint16(b[2]), Size: int(b[3])<<8 | int(b[4])})
		}
		b = b[5:]
	}
	for _, c := range b {
		if c != 0x00 && c != 0xFF {
			return nil, fmt.Errorf("%w: object list ends with a partial entry", errMalformed)
		}
	}
	return out, nil
}

// keyFIDs are the files of one key pair in a container (0 when absent).
type keyFIDs struct {
	Pub, Prv, Cert uint16
}

func (k keyFIDs) present() bool { return k.Prv != 0 }

// container is one record of the AWP containers file 3000 (Microsoft CAPI
// key containers): the exchange key, the signature key, and the container's
// GUID name.
type container struct {
	Exchange, Signature keyFIDs
	GUID                string
}

// parseContainer parses a container record, as OpenSC's pkcs15-oberthur.c
// reads it: six 2-byte FIDs (exchange public, private, certificate; signature
// public, private, certificate), then a 2-byte length and the GUID string
// ("{...}"), then padding. FIDs 0000 and FFFF mean "none".
func parseContainer(rec []byte) (container, error) {
	var c container
	if len(rec) < 12 {
		return c, fmt.Errorf("%w: container record of %d bytes", errMalformed, len(rec))
	}
	fid := func(i int) uint16 {
		v := uint16(rec[i])<<8 | uint16(rec[i+1])
		if v == 0xFFFF {
			return 0
		}
		return v
	}
	c.Exchange = keyFIDs{Pub: fid(0), Prv: fid(2), Cert: fid(4)}
	c.Signature = keyFIDs{Pub: fid(6), Prv: fid(8), Cert: fid(10)}
	for _, k := range []keyFIDs{c.Exchange, c.Signature} {
		if !validFID(k.Pub, classPublicRSA) || !validFID(k.Prv, classPrivateRSA) || !validFID(k.Cert, classCert) {
			return c, fmt.Errorf("%w: container names files %04X %04X %04X", errMalformed, k.Pub, k.Prv, k.Cert)
		}
	}
	if rest := rec[12:]; len(rest) >= 2 {
		n := int(rest[0])<<8 | int(rest[1])
		if n > 0 && n <= len(rest)-2 {
			c.GUID = printable(rest[2 : 2+n])
		}
	}
	return c, nil
}

// validFID accepts an absent FID (0) or one of the given class (high byte).
func validFID(fid uint16, class byte) bool {
	return fid == 0 || byte(fid>>8) == class
}

// objInfo is what an object's info file (its FID | 0100) says.
type objInfo struct {
	Flags uint16
	Label string
	ID    []byte
}

// parseInfo parses an info file: 2-byte flags, then 2-byte big-endian
// length + value fields of which the first two are the label and the ID
// (SHA-1 of the modulus); later fields (dates, subject, issuer, serial)
// are not needed.
func parseInfo(b []byte) (objInfo, error) {
	var info objInfo
	if len(b) < 2 {
		return info, fmt.Errorf("%w: info file of %d bytes", errMalformed, len(b))
	}
	info.Flags = uint16(b[0])<<8 | uint16(b[1])
	b = b[2:]
	field := func() ([]byte, error) {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: info file ends inside a field", errMalformed)
		}
		n := int(b[0])<<8 | int(b[1])
		if n > len(b)-2 {
			return nil, fmt.Errorf("%w: info field of %d bytes, %d left", errMalformed, n, len(b)-2)
		}
		v := b[2 : 2+n]
		b = b[2+n:]
		return v, nil
	}
	label, err := field()
	if err != nil {
		return info, err
	}
	info.Label = printable(label)
	id, err := field()
	if err != nil {
		return info, err
	}
	if len(id) > 0 {
		info.ID = append([]byte(nil), id...)
	}
	return info, nil
}

// derLength returns the total length of the DER object b starts with, from its
// header alone, or false when b does not start with a definite-length SEQUENCE.
func derLength(b []byte) (int, bool) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, false
	}
	l := int(b[1])
	if l < 0x80 {
		return 2 + l, true
	}
	n := l & 0x7F
	if n == 0 || n > 3 || len(b) < 2+n {
		return 0, false
	}
	l = 0
	for _, c := range b[2 : 2+n] {
		l = l<<8 | int(c)
	}
	return 2 + n + l, true
}

// printable keeps the printable ASCII of a card string and trims padding.
func printable(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 0x20 && c <= 0x7E {
			out = append(out, c)
		}
	}
	for len(out) > 0 && out[len(out)-1] == ' ' {
		out = out[:len(out)-1]
	}
	return string(out)
}
