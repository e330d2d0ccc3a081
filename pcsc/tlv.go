package pcsc

import (
	"errors"
	"fmt"
)

// ErrMalformedTLV is returned for BER-TLV data that does not parse.
var ErrMalformedTLV = errors.New("malformed BER-TLV")

// TLV is one BER-TLV data object. Tag holds the tag bytes as a number
// (0x5FC105, 0x7C, 0x53); Value aliases the parsed buffer.
type TLV struct {
	Tag   uint32
	Value []byte
}

// ParseTLV parses a sequence of BER-TLV objects (one level; call it again on a
// constructed object's Value to descend). It accepts one- to three-byte tags
// and definite lengths up to four bytes, and rejects anything that runs past
// the end of b.
func ParseTLV(b []byte) ([]TLV, error) {
	var out []TLV
	for len(b) > 0 {
		// Padding bytes 00 and FF between objects are allowed by ISO 7816-4.
		if b[0] == 0x00 || b[0] == 0xFF {
			b = b[1:]
			continue
		}
		tag := uint32(b[0])
		i := 1
		if b[0]&0x1F == 0x1F {
			for {
				if i >= len(b) || i > 2 {
					return nil, fmt.Errorf("%w: tag runs past the end or is longer than three bytes", ErrMalformedTLV)
				}
				tag = tag<<8 | uint32(b[i])
				i++
				if b[i-1]&0x80 == 0 {
					break
				}
			}
		}
		if i >= len(b) {
			return nil, fmt.Errorf("%w: missing length for tag %X", ErrMalformedTLV, tag)
		}
		l := int(b[i])
		i++
		if l&0x80 != 0 {
			n := l & 0x7F
			if n == 0 || n > 4 || i+n > len(b) {
				return nil, fmt.Errorf("%w: bad length for tag %X", ErrMalformedTLV, tag)
			}
			l = 0
			for _, c := range b[i : i+n] {
				l = l<<8 | int(c)
			}
			i += n
		}
		if l < 0 || l > len(b)-i {
			return nil, fmt.Errorf("%w: tag %X claims %d bytes, %d left", ErrMalformedTLV, tag, l, len(b)-i)
		}
		out = append(out, TLV{Tag: tag, Value: b[i : i+l : i+l]})
		b = b[i+l:]
	}
	return out, nil
}

// FindTLV returns the value of the first object with the given tag.
func FindTLV(objs []TLV, tag uint32) ([]byte, bool) {
	for _, o := range objs {
		if o.Tag == tag {
			return o.Value, true
		}
	}
	return nil, false
}

// AppendTLV appends a BER-TLV object with a definite length to dst.
func AppendTLV(dst []byte, tag uint32, value []byte) []byte {
	switch {
	case tag > 0xFFFF:
		dst = append(dst, byte(tag>>16), byte(tag>>8), byte(tag))
	case tag > 0xFF:
		dst = append(dst, byte(tag>>8), byte(tag))
	default:
		dst = append(dst, byte(tag))
	}
	switch n := len(value); {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n <= 0xFF:
		dst = append(dst, 0x81, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, value...)
}
