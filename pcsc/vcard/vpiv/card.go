// Package vpiv is a virtual PIV card.
//
// It emulates the PIV Card Application of NIST SP 800-73-4 over short APDUs,
// as an Idemia PIV card (NHS series 9/10) presents it. It implements
// vcard.Card, so it answers APDUs in-process and can be inserted into vpcd
// for pcscd to see.
//
// What it implements: SELECT (full or right-truncated AID; a GlobalPlatform
// card manager is selected at power-on), GET DATA (CHUID, CCC, discovery
// object, key history, certificate containers with optional gzip
// compression), VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER, GENERAL
// AUTHENTICATE (RSA-1024/2048 raw, ECDSA P-256/P-384 and ECDH), command
// chaining and GET RESPONSE (61xx). What it refuses: any instruction it does
// not implement answers 6D00, including every YubiKey extension (GET
// VERSION FD, GET SERIAL F8, GET METADATA F7, ATTEST F9, SET MANAGEMENT KEY
// FF, IMPORT FE, RESET FB, SET RETRIES FA); writes (PUT DATA, GENERATE
// ASYMMETRIC KEY PAIR) answer 6982, since a card issued by an RA is
// read-only for the agent. Every refused write is counted (WriteCount).
//
// Security conditions (the NHS card's policy): keys 9A, 9D and retired
// keys need the PIN verified once; 9C needs a VERIFY before each signature
// (PIN "always"); 9E needs nothing.
package vpiv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Algorithm identifiers (SP 800-78-4, table 6-2).
const (
	AlgRSA1024 = 0x06
	AlgRSA2048 = 0x07
	AlgECCP256 = 0x11
	AlgECCP384 = 0x14
)

// Key references.
const (
	SlotAuthentication     = 0x9A
	SlotSignature          = 0x9C
	SlotKeyManagement      = 0x9D
	SlotCardAuthentication = 0x9E
	keyPIN                 = 0x80
	keyPUK                 = 0x81
)

// Defaults of a test card.
const (
	DefaultPIN     = "123456"   // 6 digits, as NHS policy requires
	DefaultPUK     = "12345678" // 8 bytes
	DefaultRetries = 3          // NHS: three wrong tries block the card
)

// DefaultATR is the ATR of an Idemia PIV card on ID-One V8 (pcsc-tools list).
var DefaultATR = []byte{0x3B, 0xD6, 0x97, 0x00, 0x81, 0xB1, 0xFE, 0x45, 0x1F, 0x87, 0x80, 0x31, 0xC1, 0x52, 0x41, 0x1A, 0x2B}

// maxLog bounds the INS log (INSLog keeps the most recent entries).
const maxLog = 1 << 16

// maxChain bounds the data collected through command chaining.
const maxChain = 4096

// Slot is a key and its certificate.
type Slot struct {
	Cert *x509.Certificate // may be nil: a key without a certificate object
	// Key must be an *rsa.PrivateKey (RSA-1024 or RSA-2048: the card does raw
	// RSA) or an ECDSA P-256/P-384 crypto.Signer. May be nil: a certificate alone.
	Key crypto.Signer
	// Compress stores the certificate gzip-compressed (CertInfo 01).
	Compress bool
}

// Config sets up a card. The zero value is a valid empty PIV card.
type Config struct {
	ATR   []byte // default DefaultATR
	GUID  []byte // CHUID GUID, 16 bytes; default random
	FASCN []byte // CHUID FASC-N, 25 bytes; default EncodeFASCN of agency 9999 ... (see defaultFASCN)
	// CHUIDExpiry is the CHUID expiration date; default five years from now.
	CHUIDExpiry time.Time
	// Label is the application label in SELECT's answer; default "PIV".
	Label string

	PIN string // 6-8 digits; default DefaultPIN
	PUK string // 8 bytes; default DefaultPUK
	// PINRetries and PUKRetries are the retry limits (default DefaultRetries).
	PINRetries, PUKRetries int
	// PINTriesLeft and PUKTriesLeft are the tries left at start: 0 means the
	// limit, -1 means blocked.
	PINTriesLeft, PUKTriesLeft int

	// Slots maps a key reference (9A, 9C, 9D, 9E, 82..95) to its key and certificate.
	Slots map[byte]Slot
	// Objects adds or replaces data objects: the exact bytes GET DATA answers
	// for the tag (normally 53 L ... or 7E L ...). A nil value removes the
	// object (for example Objects[TagCHUID] = nil gives a card without CHUID).
	Objects map[uint32][]byte
}

// Card is the emulated PIV card. It is safe for concurrent use.
type Card struct {
	atr     []byte
	guid    []byte
	objects map[uint32][]byte
	slots   map[byte]Slot

	mu         sync.Mutex
	pin, puk   []byte // padded to 8 bytes
	pinRetries int
	pukRetries int
	pinTries   int
	pukTries   int

	// Volatile state, cleared by Reset.
	selected  bool   // PIV application selected (else the card manager)
	verified  bool   // PIN verified (security status of key reference 80)
	pinAlways bool   // a VERIFY not yet consumed by a signature with key 9C
	pending   []byte // response bytes left for GET RESPONSE
	chain     *chain // command chaining in progress

	// Introspection for tests.
	insLog     []byte
	apdus      int
	writes     int
	signatures int
}

type chain struct {
	ins, p1, p2 byte
	data        []byte
}

var _ interface {
	ATR() []byte
	Reset()
	Transmit([]byte) ([]byte, error)
} = (*Card)(nil)

// New builds a card from cfg.
func New(cfg Config) (*Card, error) {
	c := &Card{
		atr:        cfg.ATR,
		guid:       cfg.GUID,
		objects:    make(map[uint32][]byte),
		slots:      make(map[byte]Slot),
		pinRetries: cfg.PINRetries,
		pukRetries: cfg.PUKRetries,
	}
	if c.atr == nil {
		c.atr = DefaultATR
	}
	c.atr = append([]byte(nil), c.atr...)
	if c.guid == nil {
		c.guid = make([]byte, 16)
		if _, err := rand.Read(c.guid); err != nil {
			return nil, err
		}
	}
	if len(c.guid) != 16 {
		return nil, fmt.Errorf("GUID must be 16 bytes, got %d", len(c.guid))
	}
	c.guid = append([]byte(nil), c.guid...)
	fascn := cfg.FASCN
	if fascn == nil {
		var err error
		if fascn, err = EncodeFASCN(defaultFASCN); err != nil {
			return nil, err
		}
	}
	if len(fascn) != 25 {
		return nil, fmt.Errorf("FASC-N must be 25 bytes, got %d", len(fascn))
	}
	expiry := cfg.CHUIDExpiry
	if expiry.IsZero() {
		expiry = time.Now().AddDate(5, 0, 0)
	}
	label := cfg.Label
	if label == "" {
		label = "PIV"
	}
	c.objects[tagAPT] = applicationPropertyTemplate(label)

	pin, puk := cfg.PIN, cfg.PUK
	if pin == "" {
		pin = DefaultPIN
	}
	if puk == "" {
		puk = DefaultPUK
	}
	var ok bool
	if c.pin, ok = padPIN([]byte(pin)); !ok || !validPIN(c.pin) {
		return nil, errors.New("PIN must be 6 to 8 digits")
	}
	if len(puk) != 8 {
		return nil, errors.New("PUK must be 8 bytes")
	}
	c.puk = []byte(puk)
	if c.pinRetries == 0 {
		c.pinRetries = DefaultRetries
	}
	if c.pukRetries == 0 {
		c.pukRetries = DefaultRetries
	}
	if c.pinRetries < 1 || c.pinRetries > 15 || c.pukRetries < 1 || c.pukRetries > 15 {
		return nil, errors.New("retry limits must be 1 to 15")
	}
	var err error
	if c.pinTries, err = triesLeft(cfg.PINTriesLeft, c.pinRetries); err != nil {
		return nil, fmt.Errorf("PIN tries: %w", err)
	}
	if c.pukTries, err = triesLeft(cfg.PUKTriesLeft, c.pukRetries); err != nil {
		return nil, fmt.Errorf("PUK tries: %w", err)
	}

	c.objects[TagCHUID] = chuid(fascn, c.guid, expiry)
	c.objects[TagCCC] = ccc(c.guid)
	c.objects[TagDiscovery] = discovery()
	retired := 0
	for ref, s := range cfg.Slots {
		tag := CertTag(ref)
		if tag == 0 {
			return nil, fmt.Errorf("slot %02X is not a PIV key reference", ref)
		}
		if s.Key != nil {
			if _, err := algorithmOf(s.Key); err != nil {
				return nil, fmt.Errorf("slot %02X: %w", ref, err)
			}
		}
		if s.Cert != nil {
			if s.Key != nil {
				pub, ok := s.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
				if !ok || !pub.Equal(s.Cert.PublicKey) {
					return nil, fmt.Errorf("slot %02X: key does not match certificate", ref)
				}
			}
			obj, err := certObject(s.Cert, s.Compress)
			if err != nil {
				return nil, fmt.Errorf("slot %02X: %w", ref, err)
			}
			c.objects[tag] = obj
			if ref >= 0x82 && ref <= 0x95 {
				retired++
			}
		}
		c.slots[ref] = s
	}
	if retired > 0 {
		c.objects[TagKeyHistory] = keyHistory(retired)
	}
	for tag, v := range cfg.Objects {
		if v == nil {
			delete(c.objects, tag)
			continue
		}
		c.objects[tag] = append([]byte(nil), v...)
	}
	return c, nil
}

// tagAPT is an internal key for SELECT's answer (not reachable by GET DATA:
// real tags are at most three bytes).
const tagAPT = 0xFFFFFFFF

func triesLeft(v, limit int) (int, error) {
	switch {
	case v == 0:
		return limit, nil
	case v == -1:
		return 0, nil
	case v > 0 && v <= limit:
		return v, nil
	}
	return 0, fmt.Errorf("%d is not -1 (blocked), 0 (the limit) or 1..%d", v, limit)
}

// algorithmOf returns the PIV algorithm identifier of key.
func algorithmOf(key crypto.Signer) (byte, error) {
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if _, ok := key.(*rsa.PrivateKey); !ok {
			return 0, errors.New("RSA keys must be *rsa.PrivateKey (the card does raw RSA)")
		}
		switch pub.N.BitLen() {
		case 1024:
			return AlgRSA1024, nil
		case 2048:
			return AlgRSA2048, nil
		}
		return 0, fmt.Errorf("RSA-%d is not a PIV key size", pub.N.BitLen())
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return AlgECCP256, nil
		case elliptic.P384():
			return AlgECCP384, nil
		}
		return 0, fmt.Errorf("curve %s is not a PIV curve", pub.Curve.Params().Name)
	}
	return 0, fmt.Errorf("key type %T is not supported", key.Public())
}

// ATR returns the card's answer to reset.
func (c *Card) ATR() []byte { return append([]byte(nil), c.atr...) }

// Reset is a power cycle: the card manager is selected again and the PIN is
// no longer verified. PINs, keys and retry counters stay.
func (c *Card) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resetVolatile()
}

func (c *Card) resetVolatile() {
	c.selected = false
	c.verified = false
	c.pinAlways = false
	c.pending = nil
	c.chain = nil
}

// Transmit processes one command APDU and returns the response APDU. It
// never returns an error: every failure is a status word, as on a card.
func (c *Card) Transmit(raw []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.transmit(raw), nil
}

func (c *Card) transmit(raw []byte) []byte {
	c.apdus++
	if len(raw) >= 2 {
		if len(c.insLog) >= maxLog {
			// A long-running virtual card must not grow without bound.
			c.insLog = append(c.insLog[:0], c.insLog[maxLog/2:]...)
		}
		c.insLog = append(c.insLog, raw[1])
	}
	cmd, sw := parseCommand(raw)
	if sw != 0 {
		c.pending, c.chain = nil, nil
		return status(sw)
	}
	if cmd.ins != insGetResponse {
		c.pending = nil
	}
	if writeINS[cmd.ins] {
		c.writes++
		c.chain = nil
		if cmd.ins == insPutData || cmd.ins == insGenerateKey {
			return status(swSecurityStatus)
		}
		return status(swINSNotSupported)
	}
	switch {
	case cmd.cla&^0x10 == 0x00: // interindustry, with or without chaining
	case cmd.cla == 0x80 && cmd.ins == insGetDataGP && !c.selected:
	case cmd.cla&^0x13 == 0x00: // logical channel 1-3
		return status(swLogicalChannel)
	default:
		return status(swCLANotSupported)
	}

	if cmd.cla&0x10 != 0 {
		if cmd.ins != insGeneralAuthenticate || !c.selected {
			c.chain = nil
			return status(swChainingUnsupported)
		}
		if c.chain == nil {
			c.chain = &chain{ins: cmd.ins, p1: cmd.p1, p2: cmd.p2}
		} else if c.chain.ins != cmd.ins || c.chain.p1 != cmd.p1 || c.chain.p2 != cmd.p2 {
			c.chain = nil
			return status(swLastCommandExpected)
		}
		if len(c.chain.data)+len(cmd.data) > maxChain {
			c.chain = nil
			return status(swWrongLength)
		}
		c.chain.data = append(c.chain.data, cmd.data...)
		return status(swOK)
	}
	if c.chain != nil {
		ch := c.chain
		c.chain = nil
		if ch.ins != cmd.ins || ch.p1 != cmd.p1 || ch.p2 != cmd.p2 {
			return status(swLastCommandExpected)
		}
		cmd.data = append(ch.data, cmd.data...)
	}

	switch cmd.ins {
	case insSelect:
		return c.selectApp(cmd)
	case insGetResponse:
		return c.getResponse(cmd)
	}
	if !c.selected {
		// The card manager is selected: it knows none of the PIV commands.
		switch cmd.ins {
		case insGetDataGP:
			return c.getDataGP(cmd)
		case insGetData:
			return status(swNotFound)
		}
		return status(swINSNotSupported)
	}
	switch cmd.ins {
	case insGetData:
		return c.getData(cmd)
	case insVerify:
		return c.verify(cmd)
	case insChangeReference:
		return c.changeReference(cmd)
	case insResetRetry:
		return c.resetRetryCounter(cmd)
	case insGeneralAuthenticate:
		return c.generalAuthenticate(cmd)
	}
	return status(swINSNotSupported)
}

// Instructions.
const (
	insSelect              = 0xA4
	insGetData             = 0xCB
	insGetDataGP           = 0xCA
	insGetResponse         = 0xC0
	insVerify              = 0x20
	insChangeReference     = 0x24
	insResetRetry          = 0x2C
	insGeneralAuthenticate = 0x87
	insPutData             = 0xDB
	insGenerateKey         = 0x47
)

// writeINS are instructions that would change the card's contents. All are
// refused and counted.
var writeINS = [256]bool{
	insPutData:     true, // PUT DATA
	insGenerateKey: true, // GENERATE ASYMMETRIC KEY PAIR
	0xFE:           true, // YubiKey IMPORT ASYMMETRIC KEY
	0xFF:           true, // YubiKey SET MANAGEMENT KEY
	0xFB:           true, // YubiKey RESET
	0xFA:           true, // YubiKey SET PIN RETRIES
	0xF6:           true, // YubiKey MOVE/DELETE KEY
	0xD6:           true, // UPDATE BINARY
	0xD7:           true, // UPDATE BINARY (odd)
	0xDC:           true, // UPDATE RECORD
	0xDA:           true, // PUT DATA (even)
	0xE0:           true, // CREATE FILE
	0xE4:           true, // DELETE FILE
	0xE2:           true, // APPEND RECORD
	0xE6:           true, // TERMINATE DF / GP INSTALL
	0xE8:           true, // GP LOAD
	0xD8:           true, // GP PUT KEY
	0xF0:           true, // GP SET STATUS
}

func (c *Card) selectApp(cmd command) []byte {
	if cmd.p1 != 0x04 {
		return status(swWrongP1P2)
	}
	if cmd.p2 != 0x00 && cmd.p2 != 0x0C {
		return status(swWrongP1P2)
	}
	aid := cmd.data
	if len(aid) >= ridLen && len(aid) <= len(AID) && string(aid) == string(AID[:len(aid)]) {
		c.selected = true
		if cmd.p2 == 0x0C {
			return status(swOK)
		}
		return c.respond(c.objects[tagAPT], cmd.le)
	}
	for _, cm := range cardManagerAIDs {
		if string(aid) == string(cm) {
			c.selected = false
			c.verified, c.pinAlways = false, false
			if cmd.p2 == 0x0C {
				return status(swOK)
			}
			return c.respond(cardManagerFCI(cm), cmd.le)
		}
	}
	// Not found: the current selection stays (SP 800-73-4 part 2, 3.1.1).
	return status(swNotFound)
}

// respond returns up to le bytes of data (256 when le is absent) and keeps
// the rest for GET RESPONSE, announcing it with 61xx.
func (c *Card) respond(data []byte, le int) []byte {
	if le < 0 {
		le = 256
	}
	n := min(len(data), le)
	if rest := data[n:]; len(rest) > 0 {
		c.pending = rest
		return withStatus(data[:n], swMoreData|uint16(min(len(rest), 256)&0xFF))
	}
	return withStatus(data, swOK)
}

func (c *Card) getResponse(cmd command) []byte {
	if cmd.p1 != 0 || cmd.p2 != 0 {
		c.pending = nil
		return status(swWrongP1P2)
	}
	if c.pending == nil || len(cmd.data) > 0 {
		c.pending = nil
		return status(swConditionsOfUse)
	}
	data := c.pending
	c.pending = nil
	return c.respond(data, cmd.le)
}

func (c *Card) getData(cmd command) []byte {
	if cmd.p1 != 0x3F || cmd.p2 != 0xFF {
		return status(swWrongP1P2)
	}
	d := cmd.data
	if len(d) < 3 || d[0] != 0x5C || int(d[1]) != len(d)-2 || len(d) > 5 {
		return status(swWrongData)
	}
	var tag uint32
	for _, b := range d[2:] {
		tag = tag<<8 | uint32(b)
	}
	obj, ok := c.objects[tag]
	if !ok {
		return status(swNotFound)
	}
	return c.respond(obj, cmd.le)
}

// getDataGP answers the card manager's GET DATA for CPLC (9F7F).
func (c *Card) getDataGP(cmd command) []byte {
	if cmd.p1 != 0x9F || cmd.p2 != 0x7F {
		return status(swRefDataNotFound)
	}
	return c.respond(cplc(c.guid[:4]), cmd.le)
}

// Test introspection. None of these are APDUs.

// PINTries returns the PIN tries left (0 when blocked).
func (c *Card) PINTries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinTries
}

// PUKTries returns the PUK tries left (0 when blocked).
func (c *Card) PUKTries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pukTries
}

// Verified reports whether the PIN is currently verified.
func (c *Card) Verified() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.verified
}

// PIN returns the current PIN (after CHANGE REFERENCE DATA or RESET RETRY COUNTER).
func (c *Card) PIN() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(unpad(c.pin))
}

// PUK returns the current PUK.
func (c *Card) PUK() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.puk)
}

// WriteCount returns how many commands tried to change the card's contents
// (PUT DATA, GENERATE ASYMMETRIC KEY PAIR, YubiKey key import/reset/..., ISO
// file writes). All were refused. VERIFY, CHANGE REFERENCE DATA and RESET
// RETRY COUNTER are not counted.
func (c *Card) WriteCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// Signatures returns how many GENERAL AUTHENTICATE operations produced a result.
func (c *Card) Signatures() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signatures
}

// INSLog returns the INS byte of every APDU received since New or ClearLog,
// GET RESPONSE and chained parts included (at most the last 65536).
func (c *Card) INSLog() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.insLog...)
}

// APDUCount returns the number of APDUs received since New or ClearLog.
func (c *Card) APDUCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.apdus
}

// ClearLog empties the INS log.
func (c *Card) ClearLog() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insLog = nil
	c.apdus = 0
}

// GUID returns the CHUID GUID.
func (c *Card) GUID() []byte { return append([]byte(nil), c.guid...) }

// Certificate returns the certificate loaded into slot, or nil.
func (c *Card) Certificate(slot byte) *x509.Certificate { return c.slots[slot].Cert }

// PublicKey returns the public key of the key in slot, or nil.
func (c *Card) PublicKey(slot byte) crypto.PublicKey {
	if k := c.slots[slot].Key; k != nil {
		return k.Public()
	}
	return nil
}
