package series8

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

// role is a key's role in its CAPI container.
type role int

const (
	roleUnknown   role = iota // found through the object lists
	roleExchange              // AT_KEYEXCHANGE: the authentication key on NHS cards
	roleSignature             // AT_SIGNATURE
)

// keyObj is one private key on the card with what belongs to it.
type keyObj struct {
	ref   pcsc.KeyRef
	role  role
	files keyFIDs
	label string
	cert  *x509.Certificate
	pub   crypto.PublicKey // from the certificate, or read from the public key file when needed
}

// inventory is the card's key map, read once per Card.
type inventory struct {
	keys   []*keyObj
	source string // "containers" or "object lists"
}

func (inv *inventory) key(ref pcsc.KeyRef) *keyObj {
	want := strings.ToLower(string(ref))
	for _, k := range inv.keys {
		if string(k.ref) == want {
			return k
		}
	}
	return nil
}

func (inv *inventory) certificates() []pcsc.Certificate {
	var out []pcsc.Certificate
	for _, k := range inv.keys {
		if k.cert != nil {
			out = append(out, pcsc.Certificate{Key: k.ref, Cert: k.cert, Label: k.label})
		}
	}
	return out
}

// Certificates returns the certificates of the card's keys: the
// authentication certificate as key "9a", the signing certificate as "9c",
// any other as its private key file ("3003"). They are read once, in one
// transaction, and cached for the life of the Card. Certificates that do not
// parse are skipped with a logged warning.
func (c *Card) Certificates(ctx context.Context) ([]pcsc.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadInventory(ctx); err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	return c.inv.certificates(), nil
}

// loadInventory fills the cache. c.mu must be held.
func (c *Card) loadInventory(ctx context.Context) error {
	if c.inv != nil {
		return nil
	}
	var inv *inventory
	err := c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := c.begin(t); err != nil {
			return err
		}
		var err error
		inv, err = c.readInventory(t)
		return err
	})
	if err != nil {
		return err
	}
	c.inv = inv
	return nil
}

// readInventory reads the key map and the certificates; DF 5011 must be
// selected. The containers file is the primary source; a card without one
// is read through its object lists.
func (c *Card) readInventory(t pcsc.Transmitter) (*inventory, error) {
	inv := &inventory{source: "containers"}
	keys, err := c.readContainerKeys(t)
	if err != nil {
		return nil, err
	}
	if len(keys) > 0 {
		if _, err := selectFID(t, fidPublicDF); err != nil {
			return nil, fmt.Errorf("public objects: %w", err)
		}
		for _, k := range keys {
			if k.files.Cert == 0 {
				continue
			}
			cert, err := c.readCert(t, k.files.Cert)
			if err != nil {
				if isCardError(err) {
					c.log.Warn("skipping certificate", zap.Stringer("file", fidString(k.files.Cert)), zap.Error(err))
					continue
				}
				return nil, err
			}
			k.cert = cert
		}
	} else {
		inv.source = "object lists"
		if keys, err = c.readListKeys(t); err != nil {
			return nil, err
		}
	}
	for _, k := range keys {
		if k.cert != nil {
			k.pub = k.cert.PublicKey
		}
	}
	assignRefs(keys)
	inv.keys = keys
	c.log.Debug("read key map", zap.String("source", inv.source), zap.Int("keys", len(keys)),
		zap.Int("certificates", len(inv.certificates())))
	return inv, nil
}

// isCardError reports whether err is the card's answer (a status word or
// data that does not parse) rather than a transport failure.
func isCardError(err error) bool {
	var se *pcsc.StatusError
	return errors.As(err, &se) || errors.Is(err, errMalformed) || errors.Is(err, pcsc.ErrMalformedTLV) || errors.Is(err, errBadCert)
}

// readContainerKeys reads the containers file 3000: one key per present
// exchange or signature key. A card without the file gives no keys.
func (c *Card) readContainerKeys(t pcsc.Transmitter) ([]*keyObj, error) {
	f, err := selectFID(t, fidContainers)
	if errors.Is(err, pcsc.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	if f.Type != typeLinear {
		c.log.Warn("containers file is not a record file; using the object lists", zap.Uint8("type", f.Type))
		return nil, nil
	}
	recs, err := readRecords(t)
	if err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	var keys []*keyObj
	for i, rec := range recs {
		cont, err := parseContainer(rec)
		if err != nil {
			c.log.Warn("skipping container record", zap.Int("record", i+1), zap.Error(err))
			continue
		}
		if cont.Exchange.present() {
			keys = append(keys, &keyObj{role: roleExchange, files: cont.Exchange})
		}
		if cont.Signature.present() {
			keys = append(keys, &keyObj{role: roleSignature, files: cont.Signature})
		}
	}
	return keys, nil
}

// readListKeys finds the keys through the public (4000) and private (5000)
// object lists, and links each certificate to its private key by the ID in
// their info files (or, when the card has no info, by the FIDs' low byte).
func (c *Card) readListKeys(t pcsc.Transmitter) ([]*keyObj, error) {
	pubList, err := readList(t, fidPublicList)
	if err != nil {
		return nil, fmt.Errorf("public object list: %w", err)
	}
	prvList, err := readList(t, fidPrivateList)
	if err != nil {
		return nil, fmt.Errorf("private object list: %w", err)
	}
	type certObj struct {
		fid  uint16
		info objInfo
		cert *x509.Certificate
	}
	var certs []certObj
	pubs := map[byte]uint16{}
	if len(pubList) > 0 {
		if _, err := selectFID(t, fidPublicDF); err != nil {
			return nil, fmt.Errorf("public objects: %w", err)
		}
	}
	for _, e := range pubList {
		switch byte(e.FID >> 8) {
		case classPublicRSA:
			pubs[byte(e.FID)] = e.FID
		case classCert:
			info, err := readInfo(t, e.FID)
			if err != nil && !isCardError(err) {
				return nil, err
			}
			cert, err := c.readCert(t, e.FID)
			if err != nil {
				if isCardError(err) {
					c.log.Warn("skipping certificate", zap.Stringer("file", fidString(e.FID)), zap.Error(err))
					continue
				}
				return nil, err
			}
			certs = append(certs, certObj{e.FID, info, cert})
		}
	}
	var keys []*keyObj
	var infos []objInfo
	selected := false
	for _, e := range prvList {
		if byte(e.FID>>8) != classPrivateRSA {
			continue
		}
		if !selected {
			if _, err := selectFID(t, fidPrivateDF); err != nil {
				return nil, fmt.Errorf("private objects: %w", err)
			}
			selected = true
		}
		info, err := readInfo(t, e.FID)
		if err != nil && !isCardError(err) {
			return nil, err
		}
		k := &keyObj{files: keyFIDs{Prv: e.FID, Pub: pubs[byte(e.FID)]}, label: info.Label}
		keys = append(keys, k)
		infos = append(infos, info)
	}
	for _, co := range certs {
		var match *keyObj
		for i, k := range keys {
			if k.cert == nil && len(co.info.ID) > 0 && slices.Equal(co.info.ID, infos[i].ID) {
				match = k
				break
			}
		}
		if match == nil {
			for _, k := range keys {
				if k.cert == nil && byte(k.files.Prv) == byte(co.fid) {
					match = k
					break
				}
			}
		}
		if match == nil {
			c.log.Debug("certificate without a private key on the card", zap.Stringer("file", fidString(co.fid)))
			continue
		}
		match.cert, match.files.Cert = co.cert, co.fid
		if co.info.Label != "" {
			match.label = co.info.Label
		}
	}
	return keys, nil
}

// readList reads and parses an object list in DF 5011. A missing list is empty.
func readList(t pcsc.Transmitter, fid uint16) ([]listEntry, error) {
	f, err := selectFID(t, fid)
	if errors.Is(err, pcsc.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := readBinary(t, f.Size, false)
	if err != nil {
		return nil, err
	}
	return parseObjectList(b)
}

// readInfo reads the info file of object fid (fid | 0100) in the current DF.
func readInfo(t pcsc.Transmitter, fid uint16) (objInfo, error) {
	f, err := selectFID(t, fid|0x0100)
	if err != nil {
		return objInfo{}, err
	}
	b, err := readBinary(t, f.Size, false)
	if err != nil {
		return objInfo{}, err
	}
	return parseInfo(b)
}

var errBadCert = errors.New("certificate does not parse")

// readCert reads a certificate file of the current DF.
func (c *Card) readCert(t pcsc.Transmitter, fid uint16) (*x509.Certificate, error) {
	f, err := selectFID(t, fid)
	if err != nil {
		return nil, err
	}
	if f.Type != typeTransparent {
		return nil, fmt.Errorf("%w: certificate file %04X has type %02X", errMalformed, fid, f.Type)
	}
	der, err := readBinary(t, f.Size, true)
	if err != nil {
		return nil, fmt.Errorf("certificate %04X: %w", fid, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: file %04X: %w", errBadCert, fid, err)
	}
	return cert, nil
}

// assignRefs gives each key its KeyRef:
//   - "9c" (signature): the first key whose certificate has nonRepudiation,
//     else the first container signature key;
//   - "9a" (authentication): the first container exchange key (the key
//     NHS clients sign in with, CKA_DECRYPT true), else the first other key
//     whose certificate lacks nonRepudiation;
//   - any other key: its private key file in hex ("3003").
func assignRefs(keys []*keyObj) {
	nonRep := func(k *keyObj) bool {
		return k.cert != nil && k.cert.KeyUsage&x509.KeyUsageContentCommitment != 0
	}
	var sig, auth *keyObj
	for _, k := range keys {
		if nonRep(k) {
			sig = k
			break
		}
	}
	if sig == nil {
		for _, k := range keys {
			if k.role == roleSignature {
				sig = k
				break
			}
		}
	}
	for _, k := range keys {
		if k != sig && k.role == roleExchange {
			auth = k
			break
		}
	}
	if auth == nil {
		for _, k := range keys {
			if k != sig && !nonRep(k) {
				auth = k
				break
			}
		}
	}
	for _, k := range keys {
		switch k {
		case auth:
			k.ref = pcsc.KeyAuthentication
		case sig:
			k.ref = pcsc.KeySignature
		default:
			k.ref = pcsc.KeyRef(fmt.Sprintf("%04x", k.files.Prv))
		}
	}
	// 9a, 9c first, then the others in card order.
	slices.SortStableFunc(keys, func(a, b *keyObj) int { return rank(a.ref) - rank(b.ref) })
}

func rank(r pcsc.KeyRef) int {
	switch r {
	case pcsc.KeyAuthentication:
		return 0
	case pcsc.KeySignature:
		return 1
	}
	return 2
}

// readPublicKey reads an RSA public key from its file 10xx in DF 9001
// (80 B4 01 00: modulus, 80 B4 02 00: exponent). DF 5011 must be selected.
func readPublicKey(t pcsc.Transmitter, fid uint16) (*rsa.PublicKey, error) {
	if _, err := selectFID(t, fidPublicDF); err != nil {
		return nil, err
	}
	f, err := selectFID(t, fid)
	if err != nil {
		return nil, err
	}
	if f.Type != typeRSAPublic {
		return nil, fmt.Errorf("%w: public key file %04X has type %02X", errMalformed, fid, f.Type)
	}
	if f.Size%8 != 0 || f.Size < 512 || f.Size > 2048 {
		return nil, fmt.Errorf("%w: RSA key of %d bits", errMalformed, f.Size)
	}
	component := func(p1 byte, le int) ([]byte, error) {
		resp, err := pcsc.Exchange(t, pcsc.Command{CLA: 0x80, INS: insReadPublic, P1: p1, Le: le})
		if err != nil {
			return nil, err
		}
		if err := resp.Err(); err != nil {
			return nil, err
		}
		return resp.Data, nil
	}
	n, err := component(0x01, f.Size/8)
	if err != nil {
		return nil, fmt.Errorf("reading modulus: %w", err)
	}
	e, err := component(0x02, 0)
	if err != nil {
		return nil, fmt.Errorf("reading exponent: %w", err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
	if len(e) == 0 || len(e) > 4 {
		return nil, fmt.Errorf("%w: RSA exponent of %d bytes", errMalformed, len(e))
	}
	for _, b := range e {
		pub.E = pub.E<<8 | int(b)
	}
	if pub.N.BitLen() != f.Size || pub.E < 3 || pub.E&1 == 0 {
		return nil, fmt.Errorf("%w: implausible RSA public key", errMalformed)
	}
	return pub, nil
}

type fidString uint16

func (f fidString) String() string { return fmt.Sprintf("%04X", uint16(f)) }
