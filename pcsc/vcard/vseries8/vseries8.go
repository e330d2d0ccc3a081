// Package vseries8 is a virtual NHS series 8 card.
//
// It emulates the Oberthur AuthentIC v2.2 applet with the AWP file layout,
// as OpenSC's card-oberthur.c and pkcs15-oberthur.c (written against real
// Oberthur cards) expect it to answer; docs/series8.md lists every
// assumption and its source. The real NHS series 8 applet is not publicly
// documented, so this card is a HYPOTHESIS of how it behaves; a trace of a
// real card (cardagent cards --trace-apdu) is what settles it. OpenSC's own
// tools read it (pcsc/series8's OpenSC tests).
//
// What it emulates:
//
//   - SELECT by name (00 A4 04 0C) of the card manager A000000003000000 and
//     of one applet AID (AuthentIC v2.2 by default); a leading part of an
//     AID of at least 5 bytes selects it too (ISO 7816-4 partial DF name),
//     so OpenSC's 7-byte card manager AID A0000000030000 works. No FCI.
//   - GET DATA CPLC (80 CA 9F 7F, 45 bytes, IC serial in bytes 15-18) while
//     the card manager is selected (or nothing is, after reset).
//   - SELECT by file identifier, one FID at a time (00 A4 00 00 02 FID), and
//     SELECT PARENT (00 A4 03 00), answering an FCI 6F { 82 type, 83 FID,
//     80 size (transparent files) or 85 size (every other type: bytes of a
//     record file, bits of a key, children of a DF), 86 access }. A FID is
//     found among the MF, the current DF's children, its parent and the
//     parent's children (ISO 7816-4).
//   - The AWP layout: 3F00/5011 with token info 1000, PUK file 2000 (the
//     16-byte unblock code, readable with the SO PIN), containers 3000
//     (linear records), public object list 4000, private object list 5000,
//     DF 9001 (public keys 10xx, certificates 20xx, info files |0100) and DF
//     9002 (private keys 30xx and their info files, with dates and subject).
//   - READ BINARY (00 B0, 6282 when the file ends before Le), READ RECORD
//     (00 B2 nn 04), public key components (80 B4 01/02 00).
//   - User PIN 81 and SO PIN 84 (the PUK), local to DF 5011: VERIFY with the
//     ASCII value padded with FF to 64 bytes, empty VERIFY for the state
//     (9000 verified, 63Cx tries left, 6983 blocked; the global SO PIN 04 is
//     6A88); CHANGE REFERENCE DATA 00 24 00 01 80 old||new; RESET RETRY
//     COUNTER 00 2C 00 01 50 code(16)||new PIN(64) with the SO PIN verified;
//     logout 80 2E 00 21 / 22 (user PIN) and 24 (SO PIN).
//   - Signing: MSE SET (00 22 41 B6 03 80 01 11) on a selected private key
//     file and PSO COMPUTE DIGITAL SIGNATURE (00 2A 9E 9A) over a DigestInfo,
//     PKCS#1 v1.5, only while the PIN is verified. Deciphering: MSE SET
//     00 22 41 B8 and PSO DECIPHER 00 2A 80 86 (CLA 10 for the first 8 bytes
//     of a 256-byte cryptogram), with the authentication key only.
//
// A CHANGE REFERENCE DATA with the right old PIN leaves the new PIN verified
// (as ISO 7816-4 cards commonly do), so drivers log out afterwards. RESET
// RETRY COUNTER sets the PIN and resets its counter, leaving it not
// verified; a wrong unblock code is 6A80 and spends nothing (the PUK's tries
// are spent by VERIFY 84).
//
// Anything else answers 6D00 (6E00 for an unknown class).
package vseries8

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"sync"

	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// Answers to reset of Oberthur cards (docs/series8.md). ATROberthur64k is
// the default.
var (
	ATROberthur64k   = []byte{0x3B, 0x7D, 0x18, 0x00, 0x00, 0x00, 0x31, 0x80, 0x71, 0x8E, 0x64, 0x77, 0xE3, 0x01, 0x00, 0x82, 0x90, 0x00}
	ATROberthur64kV5 = []byte{0x3B, 0x7B, 0x18, 0x00, 0x00, 0x00, 0x31, 0xC0, 0x64, 0x77, 0xE3, 0x03, 0x00, 0x82, 0x90, 0x00}
	ATRCosmoV7       = []byte{0x3B, 0xDB, 0x96, 0x00, 0x80, 0xB1, 0xFE, 0x45, 0x1F, 0x83, 0x00, 0x31, 0xC0, 0x64, 0xBA, 0xFC, 0x10, 0x00, 0x07, 0x90, 0x00, 0x0F}
)

// Application identifiers.
var (
	// AIDCardManager is the GlobalPlatform issuer security domain (card
	// manager) as cards register it. SELECT by name matches a leading part
	// of an AID too (ISO 7816-4 partial DF name), so the 7-byte form
	// AIDCardManagerShort that OpenSC sends selects it as well.
	AIDCardManager = []byte{0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00}
	// AIDCardManagerShort is the card manager AID as OpenSC's gp.c selects it.
	AIDCardManagerShort = []byte{0xA0, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00}
	// AIDAuthentIC is the AuthentIC v2.2 applet OpenSC's oberthur driver selects (the default).
	AIDAuthentIC = []byte{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x03, 0x03, 0x00, 0x00, 0x00, 0xF1, 0x00, 0x00, 0x00, 0x02}
	// AIDAuthentICv3 is AuthentIC v3.1 (ID-One Cosmo v7).
	AIDAuthentICv3 = []byte{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x00, 0x70, 0x0A, 0x10, 0x00, 0xF1, 0x00, 0x00, 0x01, 0x00}
	// AIDIASECC is the IAS-ECC applet of ID-One Cosmo v8.
	AIDIASECC = []byte{0xA0, 0x00, 0x00, 0x00, 0x77, 0x01, 0x08, 0x00, 0x07, 0x00, 0x00, 0xFE, 0x00, 0x00, 0x01, 0x00}
)

// File identifiers of the AWP layout.
const (
	FIDMF           = 0x3F00
	FIDAWP          = 0x5011
	FIDTokenInfo    = 0x1000
	FIDPUKFile      = 0x2000
	FIDContainers   = 0x3000
	FIDPublicList   = 0x4000
	FIDPrivateList  = 0x5000
	FIDPublicDF     = 0x9001
	FIDPrivateDF    = 0x9002
	ContainerRecLen = 141
	PINRef          = 0x81
	// SOPINRef is the local SO PIN of DF 5011: the PUK. OpenSC's AWP
	// emulator reads its state with an empty VERIFY and its driver verifies
	// it before unblocking the user PIN.
	SOPINRef = 0x84
	// PINRefChange is the reference CHANGE REFERENCE DATA and RESET RETRY
	// COUNTER name the user PIN by: without the local bit 80, as OpenSC sends them.
	PINRefChange  = 0x01
	pinLen        = 64
	pukLen        = 16
	maxDigestInfo = 96
)

// File types (FCI tag 82, first byte).
const (
	typeTransparent = 0x01
	typeLinear      = 0x04
	typeRSAPublic   = 0x12
	typeRSACRT      = 0x14
	typeDF          = 0x38
)

// Key is one key pair on the card with its certificate.
type Key struct {
	Key *rsa.PrivateKey
	// Cert is the certificate's DER; nil means the card holds the key pair
	// without a certificate (the driver then reads the public key with 80 B4).
	Cert []byte
	// Label is the label in the objects' info files.
	Label string
	// Index is the low byte of the key's files (pub 10xx, cert 20xx, prv 30xx).
	Index byte
}

// Config describes a card.
type Config struct {
	ATR []byte // default ATROberthur64k
	AID []byte // the applet the card answers to; default AIDAuthentIC
	// Serial is the IC serial number in the CPLC data (bytes 15-18 of GET DATA 9F7F).
	Serial [4]byte
	// NoCPLC makes GET DATA CPLC answer 6A88 (the driver then identifies the
	// card by its authentication certificate).
	NoCPLC bool
	// Label is the token label (token info file 1000, 32 bytes space-padded).
	Label string
	// PIN is the user PIN (at most 64 bytes). PUK is the unblock code (at most 16 bytes).
	PIN, PUK []byte
	// PINTries and PUKTries are the retry limits (default 3 and 10).
	PINTries, PUKTries int
	// Auth is the authentication key (the exchange key of the first
	// container); Sign the signing key (the signature key of the second).
	// Sign may be nil.
	Auth, Sign *Key
	// NoContainers leaves the containers file 3000 out, so a driver must find
	// the objects through the object lists 4000 and 5000.
	NoContainers bool
	// CertSlack allocates certificate files this many bytes larger than the
	// certificate (zero-filled), as cards created with a fixed file size do.
	CertSlack int
	// UnblockCode is the content of the PUK file 2000 (16 bytes): what
	// RESET RETRY COUNTER (00 2C 00 01) takes before the new PIN, readable
	// only while the SO PIN 84 (the PUK) is verified. Default: 16 random bytes.
	UnblockCode []byte
}

type file struct {
	fid      uint16
	typ      byte
	data     []byte   // transparent EF content (its length is the file size)
	records  [][]byte // linear EF records
	acl      [8]byte
	parent   *file
	children []*file
	pub      *rsa.PublicKey
	prv      *rsa.PrivateKey
}

func (f *file) child(fid uint16) *file {
	for _, c := range f.children {
		if c.fid == fid {
			return c
		}
	}
	return nil
}

func (f *file) add(c *file) *file {
	c.parent = f
	f.children = append(f.children, c)
	return c
}

// Card is a virtual series 8 card. It is safe for concurrent use.
type Card struct {
	mu  sync.Mutex
	cfg Config
	mf  *file

	pin, puk           []byte // padded to 64 bytes
	unblockCode        []byte
	pinTries, pukTries int

	// volatile state, cleared by Reset
	cmSelected, appSelected bool
	curDF, curEF            *file
	verified                bool // user PIN 81
	soVerified              bool // SO PIN 84 (the PUK)
	mseKey                  *file
	mseOp                   byte   // B6 sign, B8 decipher
	chain                   []byte // PSO DECIPHER data received with CLA 10

	writes     int
	signatures int
	log        [][]byte
}

// New builds a card from cfg.
func New(cfg Config) (*Card, error) {
	if cfg.ATR == nil {
		cfg.ATR = ATROberthur64k
	}
	if cfg.AID == nil {
		cfg.AID = AIDAuthentIC
	}
	if cfg.PINTries == 0 {
		cfg.PINTries = 3
	}
	if cfg.PUKTries == 0 {
		cfg.PUKTries = 10
	}
	if cfg.PINTries > 15 || cfg.PUKTries > 15 {
		return nil, errors.New("retry limits above 15 cannot be told in a 63Cx status word")
	}
	if len(cfg.PIN) == 0 || len(cfg.PIN) > pinLen {
		return nil, fmt.Errorf("PIN must have 1 to %d bytes", pinLen)
	}
	if len(cfg.PUK) == 0 || len(cfg.PUK) > pukLen {
		return nil, fmt.Errorf("PUK must have 1 to %d bytes", pukLen)
	}
	if cfg.Auth == nil || cfg.Auth.Key == nil {
		return nil, errors.New("an authentication key is required")
	}
	if cfg.Auth.Index == 0 {
		cfg.Auth.Index = 0x01
	}
	if cfg.Sign != nil && cfg.Sign.Index == 0 {
		cfg.Sign.Index = 0x02
	}
	if cfg.Sign != nil && cfg.Sign.Index == cfg.Auth.Index {
		return nil, errors.New("authentication and signing keys need different indexes")
	}
	if cfg.UnblockCode == nil {
		cfg.UnblockCode = make([]byte, pukLen)
		if _, err := rand.Read(cfg.UnblockCode); err != nil {
			return nil, err
		}
	}
	if len(cfg.UnblockCode) != pukLen {
		return nil, fmt.Errorf("the unblock code has %d bytes", pukLen)
	}
	c := &Card{
		cfg:         cfg,
		pin:         pad(cfg.PIN, pinLen),
		puk:         pad(cfg.PUK, pinLen),
		unblockCode: bytes.Clone(cfg.UnblockCode),
		pinTries:    cfg.PINTries,
		pukTries:    cfg.PUKTries,
	}
	if err := c.build(); err != nil {
		return nil, err
	}
	return c, nil
}

func pad(b []byte, n int) []byte {
	out := bytes.Repeat([]byte{0xFF}, n)
	copy(out, b)
	return out
}

// Access bytes (FCI tag 86), in the order OpenSC's card-oberthur.c reads
// them per file type: 00 always, 21 user PIN, 24 SO PIN (84 for unblocking),
// FF never.
var (
	// Transparent EF: write, update, read, erase. Read always, change by SO.
	aclPublic = [8]byte{0x24, 0x24, 0x00, 0x24, 0xFF, 0xFF, 0xFF, 0xFF}
	// The PUK file 2000: read only with the SO PIN.
	aclPUKFile = [8]byte{0xFF, 0x24, 0x24, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	// RSA public key: update, -, encrypt, -, verify, -, external authenticate.
	aclPublicKey = [8]byte{0x24, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF}
	// RSA private key: update, decipher, -, sign, -, internal authenticate.
	// The authentication (exchange) key deciphers and signs; the signing
	// key only signs.
	aclPrivateAuth = [8]byte{0x24, 0x21, 0xFF, 0x21, 0xFF, 0x21, 0xFF, 0xFF}
	aclPrivateSign = [8]byte{0x24, 0xFF, 0xFF, 0x21, 0xFF, 0xFF, 0xFF, 0xFF}
	// DF: create, crypto, list, delete, PIN define, PIN change (user PIN),
	// PIN reset (SO PIN, which OpenSC maps to the local 84), -.
	aclDF = [8]byte{0x24, 0x00, 0x00, 0x24, 0x24, 0x21, 0x24, 0xFF}
)

// Info file flags, as OpenSC's pkcs15-oberthur.c decodes them into key usage.
const (
	attrEncrypt = 0x0008
	attrDecrypt = 0x0010
	attrSign    = 0x0020
	attrVerify  = 0x0040
	attrWrap    = 0x0200
	attrUnwrap  = 0x0400
)

// Token info flags (bytes 34-35 of file 1000).
const (
	tokenPRNGeneration   = 0x0001
	tokenLoginRequired   = 0x0004
	tokenUserPINInit     = 0x0008
	tokenTokenInitalised = 0x0400
)

// build lays out the AWP file system.
func (c *Card) build() error {
	c.mf = &file{fid: FIDMF, typ: typeDF, acl: aclDF}
	awp := c.mf.add(&file{fid: FIDAWP, typ: typeDF, acl: aclDF})
	label := make([]byte, 36)
	copy(label, bytes.Repeat([]byte{' '}, 32))
	copy(label, c.cfg.Label)
	put16(label[0x22:], tokenPRNGeneration|tokenLoginRequired|tokenUserPINInit|tokenTokenInitalised)
	awp.add(&file{fid: FIDTokenInfo, typ: typeTransparent, data: label, acl: aclPublic})
	awp.add(&file{fid: FIDPUKFile, typ: typeTransparent, data: bytes.Clone(c.unblockCode), acl: aclPUKFile})
	pubDF := &file{fid: FIDPublicDF, typ: typeDF, acl: aclDF}
	prvDF := &file{fid: FIDPrivateDF, typ: typeDF, acl: aclDF}

	var pubList, prvList []byte
	var containers [][]byte
	for i, k := range []*Key{c.cfg.Auth, c.cfg.Sign} {
		if k == nil {
			continue
		}
		bits := k.Key.N.BitLen()
		if bits != 1024 && bits != 2048 {
			return fmt.Errorf("key %d: RSA-%d: only RSA-1024 and RSA-2048 are emulated", i, bits)
		}
		id := keyID(&k.Key.PublicKey)
		pubFID := 0x1000 | uint16(k.Index)
		certFID := 0x2000 | uint16(k.Index)
		prvFID := 0x3000 | uint16(k.Index)

		// The authentication key (exchange key of its container) deciphers
		// and signs; the signing key signs only.
		prvFlags, pubFlags, prvACL := uint16(attrDecrypt|attrSign|attrUnwrap), uint16(attrEncrypt|attrVerify|attrWrap), aclPrivateAuth
		if i == 1 {
			prvFlags, pubFlags, prvACL = attrSign, attrVerify, aclPrivateSign
		}
		var cert *x509.Certificate
		if k.Cert != nil {
			var err error
			if cert, err = x509.ParseCertificate(k.Cert); err != nil {
				return fmt.Errorf("key %d: %w", i, err)
			}
		}
		pubDF.add(&file{fid: pubFID, typ: typeRSAPublic, pub: &k.Key.PublicKey, acl: aclPublicKey})
		pubDF.add(&file{fid: pubFID | 0x0100, typ: typeTransparent, data: pubKeyInfo(pubFlags, k.Label, id, cert), acl: aclPublic})
		pubList = appendListEntry(pubList, pubFID, bits)
		prvDF.add(&file{fid: prvFID, typ: typeRSACRT, prv: k.Key, pub: &k.Key.PublicKey, acl: prvACL})
		prvDF.add(&file{fid: prvFID | 0x0100, typ: typeTransparent, data: prvKeyInfo(prvFlags, k.Label, id, cert, &k.Key.PublicKey), acl: aclPublic})
		prvList = appendListEntry(prvList, prvFID, bits)
		var certFIDInRecord uint16
		if cert != nil {
			data := make([]byte, len(k.Cert)+c.cfg.CertSlack)
			copy(data, k.Cert)
			pubDF.add(&file{fid: certFID, typ: typeTransparent, data: data, acl: aclPublic})
			pubDF.add(&file{fid: certFID | 0x0100, typ: typeTransparent, data: certInfo(0x0000, k.Label, id, cert), acl: aclPublic})
			pubList = appendListEntry(pubList, certFID, len(data))
			certFIDInRecord = certFID
		}
		// Container 1 holds the authentication key as its exchange key;
		// container 2 the signing key as its signature key.
		rec := make([]byte, ContainerRecLen)
		off := 0
		if i == 1 {
			off = 6
		}
		put16(rec[off:], pubFID)
		put16(rec[off+2:], prvFID)
		put16(rec[off+4:], certFIDInRecord)
		guid := fmt.Sprintf("{%08X-0000-4000-8000-%012X}", 0x5E8E5000+i, id[:6])
		put16(rec[12:], uint16(len(guid)))
		copy(rec[14:], guid)
		containers = append(containers, rec)
	}
	// A free slot in each list, as on a card with room for more objects.
	pubList = append(pubList, 0x00, 0x00, 0x00, 0x00, 0x00)
	prvList = append(prvList, 0x00, 0x00, 0x00, 0x00, 0x00)
	if !c.cfg.NoContainers {
		awp.add(&file{fid: FIDContainers, typ: typeLinear, records: containers, acl: aclPublic})
	}
	awp.add(&file{fid: FIDPublicList, typ: typeTransparent, data: pubList, acl: aclPublic})
	awp.add(&file{fid: FIDPrivateList, typ: typeTransparent, data: prvList, acl: aclPublic})
	awp.add(pubDF)
	awp.add(prvDF)
	return nil
}

func put16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }

func appendListEntry(list []byte, fid uint16, size int) []byte {
	return append(list, 0xFF, byte(fid>>8), byte(fid), byte(size>>8), byte(size))
}

// keyID is the object ID AWP uses: SHA-1 of the modulus.
func keyID(pub *rsa.PublicKey) []byte {
	sum := sha1.Sum(pub.N.Bytes())
	return sum[:]
}

// Object info files (the object's FID | 0100), as OpenSC's
// pkcs15-oberthur.c reads them: 2-byte flags (key usage bits), then 2-byte
// big-endian length + value fields, with fixed-size parts between:
//
//	certificate:  flags, label, ID, subject DER, issuer DER, serial number
//	public key:   flags, label, ID, start date (8 ASCII), end date (8 ASCII), 00 00
//	private key:  flags, label, ID, start date (8 ASCII), end date (8 ASCII),
//	              subject DER, modulus (its length), exponent (1-byte length)
//
// The ID is the SHA-1 of the modulus. The dates are the certificate's
// validity as YYYYMMDD (zeros without a certificate).

func appendField(b, v []byte) []byte {
	b = append(b, byte(len(v)>>8), byte(len(v)))
	return append(b, v...)
}

func infoHead(flags uint16, label string, id []byte) []byte {
	b := []byte{byte(flags >> 8), byte(flags)}
	b = appendField(b, []byte(label))
	return appendField(b, id)
}

func infoDates(b []byte, cert *x509.Certificate) []byte {
	if cert == nil {
		return append(b, make([]byte, 16)...)
	}
	b = append(b, cert.NotBefore.UTC().Format("20060102")...)
	return append(b, cert.NotAfter.UTC().Format("20060102")...)
}

func certInfo(flags uint16, label string, id []byte, cert *x509.Certificate) []byte {
	b := infoHead(flags, label, id)
	b = appendField(b, cert.RawSubject)
	b = appendField(b, cert.RawIssuer)
	return appendField(b, cert.SerialNumber.Bytes())
}

func pubKeyInfo(flags uint16, label string, id []byte, cert *x509.Certificate) []byte {
	b := infoDates(infoHead(flags, label, id), cert)
	return append(b, 0x00, 0x00)
}

func prvKeyInfo(flags uint16, label string, id []byte, cert *x509.Certificate, pub *rsa.PublicKey) []byte {
	b := infoDates(infoHead(flags, label, id), cert)
	var subject []byte
	if cert != nil {
		subject = cert.RawSubject
	}
	b = appendField(b, subject)
	b = appendField(b, pub.N.Bytes())
	e := big.NewInt(int64(pub.E)).Bytes()
	b = append(b, byte(len(e)))
	return append(b, e...)
}

// ATR returns the card's answer to reset.
func (c *Card) ATR() []byte { return bytes.Clone(c.cfg.ATR) }

// Reset returns the card to its power-on state: nothing selected, PIN not verified.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetLocked()
}

func (c *Card) resetLocked() {
	c.cmSelected, c.appSelected = false, false
	c.curDF, c.curEF = nil, nil
	c.verified, c.soVerified = false, false
	c.mseKey, c.mseOp, c.chain = nil, 0, nil
}

// PINTries is the number of PIN tries left.
func (c *Card) PINTries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinTries
}

// PUKTries is the number of PUK tries left.
func (c *Card) PUKTries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pukTries
}

// SOVerified reports whether the SO PIN 84 (the PUK) is verified in the card's security state.
func (c *Card) SOVerified() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.soVerified
}

// UnblockCode returns the content of the PUK file 2000.
func (c *Card) UnblockCode() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.unblockCode)
}

// Verified reports whether the PIN is verified in the card's security state.
func (c *Card) Verified() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified
}

// WriteCount is the number of commands that changed persistent data (the PIN
// or PUK value). Retry counters are not counted.
func (c *Card) WriteCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// APDUs returns copies of the command APDUs received since the last
// ClearLog. They include PINs: the log is for tests only.
func (c *Card) APDUs() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]byte, len(c.log))
	for i, a := range c.log {
		out[i] = bytes.Clone(a)
	}
	return out
}

// APDUCount is the number of command APDUs received since the last ClearLog.
func (c *Card) APDUCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.log)
}

// INSLog returns the INS byte of every command APDU received since the last ClearLog.
func (c *Card) INSLog() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]byte, 0, len(c.log))
	for _, a := range c.log {
		if len(a) > 1 {
			out = append(out, a[1])
		}
	}
	return out
}

// Signatures is the number of signatures the card has made.
func (c *Card) Signatures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signatures
}

// ClearLog empties the APDU log.
func (c *Card) ClearLog() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = nil
}

// SetPINTries sets the PIN's retry counter (0 blocks it), for tests.
func (c *Card) SetPINTries(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinTries = n
	if n == 0 {
		c.verified = false
	}
}

// SetPUKTries sets the PUK's retry counter (0 blocks it), for tests.
func (c *Card) SetPUKTries(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pukTries = n
}

// Status words.
const (
	swOK               = 0x9000
	swEOF              = 0x6282
	swWrongLength      = 0x6700
	swIncompatible     = 0x6981
	swSecurity         = 0x6982
	swBlocked          = 0x6983
	swConditions       = 0x6985
	swWrongData        = 0x6A80
	swNotFound         = 0x6A82
	swRecordNotFound   = 0x6A83
	swWrongP1P2        = 0x6A86
	swRefNotFound      = 0x6A88
	swWrongOffset      = 0x6B00
	swINSNotSupported  = 0x6D00
	swCLANotSupported  = 0x6E00
	swNoPreciseDiagnos = 0x6F00
)

// wrongLe is 6Cxx: "repeat with Le = xx" (00 for 256).
func wrongLe(n int) uint16 { return 0x6C00 | uint16(n&0xFF) }

func sw(code uint16) []byte { return []byte{byte(code >> 8), byte(code)} }

func withSW(data []byte, code uint16) []byte {
	out := make([]byte, 0, len(data)+2)
	out = append(out, data...)
	return append(out, byte(code>>8), byte(code))
}

// apdu is a parsed short command APDU.
type apdu struct {
	cla, ins, p1, p2 byte
	data             []byte
	le               int // -1 absent; 0 means 256
}

func parseAPDU(b []byte) (apdu, bool) {
	if len(b) < 4 {
		return apdu{}, false
	}
	a := apdu{cla: b[0], ins: b[1], p1: b[2], p2: b[3], le: -1}
	switch rest := b[4:]; {
	case len(rest) == 0:
	case len(rest) == 1:
		a.le = int(rest[0])
	default:
		lc := int(rest[0])
		if lc == 0 || len(rest) < 1+lc || len(rest) > 2+lc {
			return apdu{}, false
		}
		a.data = rest[1 : 1+lc]
		if len(rest) == 2+lc {
			a.le = int(rest[1+lc])
		}
	}
	return a, true
}

// leMax is the number of bytes Le asks for (0 means 256).
func (a apdu) leMax() int {
	if a.le <= 0 {
		return 256
	}
	return a.le
}

// Transmit processes one command APDU.
func (c *Card) Transmit(cmd []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, bytes.Clone(cmd))
	a, ok := parseAPDU(cmd)
	if !ok {
		return sw(swWrongLength), nil
	}
	if a.ins != 0x2A {
		c.chain = nil // a chain ends at the next command that does not continue it
	}
	switch {
	case a.cla == 0x00 && a.ins == 0xA4:
		return c.selectFile(a), nil
	case a.cla == 0x80 && a.ins == 0xCA:
		return c.getData(a), nil
	}
	if !c.appSelected {
		if a.cla == 0x00 || a.cla == 0x80 {
			return sw(swINSNotSupported), nil
		}
		return sw(swCLANotSupported), nil
	}
	switch {
	case a.cla == 0x00 && a.ins == 0xB0:
		return c.readBinary(a), nil
	case a.cla == 0x00 && a.ins == 0xB2:
		return c.readRecord(a), nil
	case a.cla == 0x80 && a.ins == 0xB4:
		return c.readPublic(a), nil
	case a.cla == 0x00 && a.ins == 0x20:
		return c.verify(a), nil
	case a.cla == 0x00 && a.ins == 0x24:
		return c.change(a), nil
	case a.cla == 0x00 && a.ins == 0x2C:
		return c.unblock(a), nil
	case a.cla == 0x80 && a.ins == 0x2E:
		return c.logout(a), nil
	case a.cla == 0x00 && a.ins == 0x22:
		return c.mse(a), nil
	case (a.cla == 0x00 || a.cla == 0x10) && a.ins == 0x2A:
		return c.pso(a), nil
	case a.cla == 0x00 || a.cla == 0x80:
		return sw(swINSNotSupported), nil
	}
	return sw(swCLANotSupported), nil
}

// matchAID reports whether a SELECT by name with data selects aid: the
// whole AID, or a leading part of it of at least 5 bytes (the registered
// application provider identifier), as ISO 7816-4 partial DF name
// selection allows.
func matchAID(data, aid []byte) bool {
	return len(data) >= 5 && len(data) <= len(aid) && bytes.Equal(aid[:len(data)], data)
}

func (c *Card) selectFile(a apdu) []byte {
	switch a.p1 {
	case 0x04: // by name
		if a.p2 != 0x0C && a.p2 != 0x00 {
			return sw(swWrongP1P2)
		}
		switch {
		case matchAID(a.data, AIDCardManager):
			c.resetLocked()
			c.cmSelected = true
		case matchAID(a.data, c.cfg.AID):
			c.resetLocked()
			c.appSelected = true
			c.curDF = c.mf
		default:
			return sw(swNotFound)
		}
		return sw(swOK)
	case 0x00, 0x03: // by FID, one at a time; 03: the parent of the current DF
		if !c.appSelected {
			return sw(swNotFound)
		}
		if a.p2 != 0x00 && a.p2 != 0x0C {
			return sw(swWrongP1P2)
		}
		var f *file
		if a.p1 == 0x03 {
			if len(a.data) != 0 {
				return sw(swWrongLength)
			}
			if c.curDF == nil || c.curDF.parent == nil {
				return sw(swNotFound)
			}
			f = c.curDF.parent
		} else {
			if len(a.data) != 2 {
				return sw(swWrongLength)
			}
			if f = c.find(uint16(a.data[0])<<8 | uint16(a.data[1])); f == nil {
				return sw(swNotFound)
			}
		}
		if f.typ == typeDF {
			c.curDF, c.curEF = f, nil
		} else {
			c.curDF, c.curEF = f.parent, f
		}
		if c.mseKey != c.curEF {
			c.mseKey, c.mseOp = nil, 0
		}
		if a.p2 == 0x0C {
			return sw(swOK)
		}
		return withSW(fci(f), swOK)
	}
	return sw(swWrongP1P2)
}

// find looks fid up where ISO 7816-4 allows: the MF, the current DF itself,
// its children, its parent, and the parent's children.
func (c *Card) find(fid uint16) *file {
	if fid == FIDMF {
		return c.mf
	}
	df := c.curDF
	if df == nil {
		return nil
	}
	if df.fid == fid {
		return df
	}
	if f := df.child(fid); f != nil {
		return f
	}
	if p := df.parent; p != nil {
		if p.fid == fid {
			return p
		}
		if f := p.child(fid); f != nil {
			return f
		}
	}
	return nil
}

// fci builds the select answer: 6F { 82 type, 83 FID, 80|85 size, 86 access }.
// The size is in tag 80 for transparent files and in tag 85 for every other
// type, as OpenSC's card-oberthur.c reads it: bytes for linear files (the
// record length and count are in tag 82), bits for keys, the number of
// children for a DF.
func fci(f *file) []byte {
	var v []byte
	switch f.typ {
	case typeLinear:
		recLen, n := 0, len(f.records)
		for _, r := range f.records {
			recLen = max(recLen, len(r))
		}
		v = append(v, 0x82, 0x05, typeLinear, 0x21, byte(recLen>>8), byte(recLen), byte(n))
	default:
		v = append(v, 0x82, 0x01, f.typ)
	}
	v = append(v, 0x83, 0x02, byte(f.fid>>8), byte(f.fid))
	switch f.typ {
	case typeTransparent:
		v = append(v, 0x80, 0x02, byte(len(f.data)>>8), byte(len(f.data)))
	case typeLinear:
		size := 0
		for _, r := range f.records {
			size += len(r)
		}
		v = append(v, 0x85, 0x02, byte(size>>8), byte(size))
	case typeRSAPublic, typeRSACRT:
		bits := f.pub.N.BitLen()
		v = append(v, 0x85, 0x02, byte(bits>>8), byte(bits))
	case typeDF:
		v = append(v, 0x85, 0x02, 0x00, byte(len(f.children)))
	}
	v = append(v, 0x86, 0x08)
	v = append(v, f.acl[:]...)
	return append([]byte{0x6F, byte(len(v))}, v...)
}

func (c *Card) getData(a apdu) []byte {
	if a.p1 != 0x9F || a.p2 != 0x7F {
		return sw(swRefNotFound)
	}
	if c.appSelected || c.cfg.NoCPLC {
		// CPLC belongs to the card manager; an applet does not know it.
		return sw(swRefNotFound)
	}
	cplc := make([]byte, 45)
	cplc[0], cplc[1], cplc[2] = 0x9F, 0x7F, 0x2A
	d := cplc[3:]
	d[0], d[1] = 0x40, 0x90 // IC fabricator (Philips/NXP-like)
	d[2], d[3] = 0x70, 0x44 // IC type
	d[4], d[5] = 0x47, 0x50 // OS identifier
	d[6], d[7] = 0x40, 0x00 // OS release date
	d[8], d[9] = 0x0A, 0x05 // OS release level
	d[10], d[11] = 0x50, 0x09
	copy(d[12:16], c.cfg.Serial[:]) // IC serial number: bytes 15-18 of the answer
	if a.le > 0 && a.le != len(cplc) {
		return sw(wrongLe(len(cplc)))
	}
	return withSW(cplc, swOK)
}

// allowed reports whether an access byte is satisfied now.
func (c *Card) allowed(acl byte) bool {
	switch acl {
	case 0x00:
		return true
	case 0x21, 0x22:
		return c.verified
	case 0x24, 0x25:
		return c.soVerified
	}
	return false
}

func (c *Card) readBinary(a apdu) []byte {
	f := c.curEF
	if f == nil {
		return sw(swConditions)
	}
	if f.typ != typeTransparent {
		return sw(swIncompatible)
	}
	if !c.allowed(f.acl[2]) {
		return sw(swSecurity)
	}
	if a.p1&0x80 != 0 {
		return sw(swWrongP1P2) // SFI addressing is not emulated
	}
	off := int(a.p1)<<8 | int(a.p2)
	if off >= len(f.data) {
		return sw(swWrongOffset)
	}
	n := min(a.leMax(), len(f.data)-off)
	if n < a.leMax() {
		return withSW(f.data[off:off+n], swEOF)
	}
	return withSW(f.data[off:off+n], swOK)
}

func (c *Card) readRecord(a apdu) []byte {
	f := c.curEF
	if f == nil {
		return sw(swConditions)
	}
	if f.typ != typeLinear {
		return sw(swIncompatible)
	}
	if a.p2 != 0x04 {
		return sw(swWrongP1P2)
	}
	n := int(a.p1)
	if n < 1 || n > len(f.records) {
		return sw(swRecordNotFound)
	}
	rec := f.records[n-1]
	if a.le > 0 && a.le < len(rec) {
		return sw(wrongLe(len(rec)))
	}
	return withSW(rec, swOK)
}

func (c *Card) readPublic(a apdu) []byte {
	f := c.curEF
	if f == nil || f.typ != typeRSAPublic {
		return sw(swConditions)
	}
	if a.p2 != 0x00 {
		return sw(swWrongP1P2)
	}
	var v []byte
	switch a.p1 {
	case 0x01:
		v = f.pub.N.FillBytes(make([]byte, (f.pub.N.BitLen()+7)/8))
	case 0x02:
		e := f.pub.E
		for e > 0 {
			v = append([]byte{byte(e)}, v...)
			e >>= 8
		}
	default:
		return sw(swWrongP1P2)
	}
	if a.le > 0 && a.le < len(v) {
		return sw(wrongLe(len(v)))
	}
	return withSW(v, swOK)
}

// pinDF reports whether the PINs local to DF 5011 are in scope.
func (c *Card) pinDF() bool {
	for df := c.curDF; df != nil; df = df.parent {
		if df.fid == FIDAWP {
			return true
		}
	}
	return false
}

// verify is VERIFY for the user PIN 81 and the SO PIN 84 (the PUK), both
// local to DF 5011 and padded with FF to 64 bytes. Without data it tells
// the state and spends no try. Any other reference (the global SO PIN 04
// OpenSC asks about first) is not on the card: 6A88.
func (c *Card) verify(a apdu) []byte {
	if a.p1 != 0x00 {
		return sw(swWrongP1P2)
	}
	if (a.p2 != PINRef && a.p2 != SOPINRef) || !c.pinDF() {
		return sw(swRefNotFound)
	}
	value, tries, limit, verified := &c.pin, &c.pinTries, c.cfg.PINTries, &c.verified
	if a.p2 == SOPINRef {
		value, tries, limit, verified = &c.puk, &c.pukTries, c.cfg.PUKTries, &c.soVerified
	}
	if len(a.data) == 0 {
		switch {
		case *tries == 0:
			return sw(swBlocked)
		case *verified:
			return sw(swOK)
		}
		return sw(0x63C0 | uint16(*tries))
	}
	if len(a.data) != pinLen {
		return sw(swWrongLength)
	}
	if *tries == 0 {
		return sw(swBlocked)
	}
	if !bytes.Equal(a.data, *value) {
		*tries--
		*verified = false
		return sw(0x63C0 | uint16(*tries))
	}
	*tries = limit
	*verified = true
	return sw(swOK)
}

// change is CHANGE REFERENCE DATA 00 24 00 01 80 old(64)||new(64): the
// user PIN named without its local bit, as OpenSC sends it.
func (c *Card) change(a apdu) []byte {
	if a.p1 != 0x00 {
		return sw(swWrongP1P2)
	}
	if a.p2 != PINRefChange || !c.pinDF() {
		return sw(swRefNotFound)
	}
	if len(a.data) != 2*pinLen {
		return sw(swWrongLength)
	}
	if c.pinTries == 0 {
		return sw(swBlocked)
	}
	oldPIN, newPIN := a.data[:pinLen], a.data[pinLen:]
	if newPIN[0] == 0xFF {
		return sw(swWrongData)
	}
	if !bytes.Equal(oldPIN, c.pin) {
		c.pinTries--
		c.verified = false
		return sw(0x63C0 | uint16(c.pinTries))
	}
	c.pin = bytes.Clone(newPIN)
	c.pinTries = c.cfg.PINTries
	c.verified = true
	c.writes++
	return sw(swOK)
}

// unblock is RESET RETRY COUNTER 00 2C 00 01 50: the 16-byte unblock code
// of file 2000, then the new PIN padded with FF to 64 bytes. Its access
// condition is the SO PIN 84 (the PUK), verified before: the DF's PIN reset
// access byte. A wrong code is 6A80 and spends nothing (the PUK's tries
// are spent by VERIFY 84).
func (c *Card) unblock(a apdu) []byte {
	if a.p1 != 0x00 || a.p2 != PINRefChange {
		return sw(swWrongP1P2)
	}
	if !c.pinDF() {
		return sw(swRefNotFound)
	}
	if len(a.data) != pukLen+pinLen {
		return sw(swWrongLength)
	}
	if !c.soVerified {
		return sw(swSecurity)
	}
	code, newPIN := a.data[:pukLen], a.data[pukLen:]
	if newPIN[0] == 0xFF || !bytes.Equal(code, c.unblockCode) {
		return sw(swWrongData)
	}
	c.pin = bytes.Clone(newPIN)
	c.pinTries = c.cfg.PINTries
	c.verified = false
	c.writes++
	return sw(swOK)
}

// logout is 80 2E 00 P2: 21 and 22 (what OpenSC sends) end the user PIN's
// verified state, 24 the SO PIN's.
func (c *Card) logout(a apdu) []byte {
	if a.p1 != 0x00 {
		return sw(swWrongP1P2)
	}
	switch a.p2 {
	case 0x21, 0x22:
		c.verified = false
	case 0x24:
		c.soVerified = false
	default:
		return sw(swWrongP1P2)
	}
	return sw(swOK)
}

// mse is MANAGE SECURITY ENVIRONMENT SET 00 22 41 B6 (sign) or B8
// (decipher) { 80 01 11: RSA PKCS#1 v1.5 } on the selected private key
// file, whose access bytes must allow the operation.
func (c *Card) mse(a apdu) []byte {
	if a.p1 != 0x41 || (a.p2 != 0xB6 && a.p2 != 0xB8) {
		return sw(swWrongP1P2)
	}
	if c.curEF == nil || c.curEF.typ != typeRSACRT {
		return sw(swConditions)
	}
	if !bytes.Equal(a.data, []byte{0x80, 0x01, 0x11}) {
		return sw(swWrongData)
	}
	op := c.curEF.acl[3] // sign
	if a.p2 == 0xB8 {
		op = c.curEF.acl[1] // decipher
	}
	if op == 0xFF {
		return sw(swConditions)
	}
	c.mseKey, c.mseOp = c.curEF, a.p2
	return sw(swOK)
}

func (c *Card) pso(a apdu) []byte {
	switch {
	case a.p1 == 0x9E && a.p2 == 0x9A && a.cla == 0x00:
		return c.sign(a)
	case a.p1 == 0x80 && a.p2 == 0x86:
		return c.decipher(a)
	}
	return sw(swWrongP1P2)
}

func (c *Card) sign(a apdu) []byte {
	if c.mseKey == nil || c.mseKey != c.curEF || c.mseOp != 0xB6 {
		return sw(swConditions)
	}
	if !c.allowed(c.mseKey.acl[3]) {
		return sw(swSecurity)
	}
	if len(a.data) == 0 || len(a.data) > maxDigestInfo {
		return sw(swWrongLength)
	}
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.mseKey.prv, crypto.Hash(0), a.data)
	if err != nil {
		return sw(swNoPreciseDiagnos)
	}
	c.signatures++
	return withSW(sig, swOK)
}

// decipher is PSO DECIPHER 00 2A 80 86 over an RSA cryptogram of the key's
// size. A 2048-bit cryptogram does not fit one short APDU: OpenSC sends its
// first 8 bytes with CLA 10 (command chaining) and the rest with CLA 00.
// The card removes the PKCS#1 v1.5 padding and answers the plaintext.
func (c *Card) decipher(a apdu) []byte {
	if c.mseKey == nil || c.mseKey != c.curEF || c.mseOp != 0xB8 {
		return sw(swConditions)
	}
	if !c.allowed(c.mseKey.acl[1]) {
		return sw(swSecurity)
	}
	in := append(c.chain, a.data...)
	if a.cla == 0x10 {
		if len(in) >= c.mseKey.prv.Size() {
			c.chain = nil
			return sw(swWrongLength)
		}
		c.chain = in
		return sw(swOK)
	}
	c.chain = nil
	if len(in) != c.mseKey.prv.Size() {
		return sw(swWrongLength)
	}
	out, err := rsa.DecryptPKCS1v15(nil, c.mseKey.prv, in)
	if err != nil {
		return sw(swWrongData)
	}
	return withSW(out, swOK)
}

// Defaults of NewNHS.
const (
	DefaultPIN = "123456"
	DefaultPUK = "1234567890123456"
)

// NewNHS issues a card for spec from pki (RSA keys only) and builds an NHS
// series 8 card holding it: the authentication certificate with its key in
// the first container (exchange key), the signing certificate with its key in
// the second (signature key), PIN DefaultPIN, PUK DefaultPUK, three PIN
// tries, and a CPLC serial taken from the holder's UUID.
func NewNHS(pki *testpki.PKI, spec testpki.CardSpec) (*Card, error) {
	if spec.KeyType == "" {
		spec.KeyType = testpki.RSA2048
	}
	creds, err := pki.IssueCard(spec)
	if err != nil {
		return nil, err
	}
	cfg, err := NHSConfig(creds)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// NHSConfig is the Config NewNHS uses for creds, for tests that change a
// detail (ATR, AID, NoCPLC, NoContainers ...) before calling New.
func NHSConfig(creds *testpki.CardCreds) (Config, error) {
	authKey, ok := creds.AuthKey.(*rsa.PrivateKey)
	if !ok {
		return Config{}, fmt.Errorf("series 8 cards hold RSA keys, not %T", creds.AuthKey)
	}
	signKey, ok := creds.SignKey.(*rsa.PrivateKey)
	if !ok {
		return Config{}, fmt.Errorf("series 8 cards hold RSA keys, not %T", creds.SignKey)
	}
	var serial [4]byte
	var n uint32
	for _, d := range creds.Spec.UUID {
		n = n*10 + uint32(d-'0') // wraps: only needs to differ between test cards
	}
	serial[0], serial[1], serial[2], serial[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	label := creds.Spec.CommonName()
	if len(label) > 32 {
		label = label[:32]
	}
	return Config{
		Serial:   serial,
		Label:    label,
		PIN:      []byte(DefaultPIN),
		PUK:      []byte(DefaultPUK),
		PINTries: 3,
		Auth:     &Key{Key: authKey, Cert: creds.AuthCert.Raw, Label: "Authentication", Index: 0x01},
		Sign:     &Key{Key: signKey, Cert: creds.SignCert.Raw, Label: "Signature", Index: 0x02},
	}, nil
}
