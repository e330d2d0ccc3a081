// Package p11 is cardagent's PKCS#11 card driver.
//
// When IT configures a vendor PKCS#11 module (NHS series 8 cards ship with
// the Oberthur AWP module, libOcsCryptoki; see KnownModules), the agent
// reads certificates and signs through that module, while PC/SC is still
// used to monitor readers and identify the card. Open picks the token
// (configured slot, else configured label, else the token in the PC/SC
// reader, else the only token) and returns a *Card, which implements
// pcsc.Card with Driver "pkcs11".
//
// The driver uses github.com/miekg/pkcs11, which needs cgo. A build without
// cgo (CGO_ENABLED=0, the default when cross-compiling for Windows) still
// compiles: Open then returns ErrNoCgo.
//
// Module life cycle: a module is loaded (dlopen) once per process and kept
// loaded; C_Initialize is called when the first Card on it is opened and
// C_Finalize when the last one is closed. Every call into one module is
// serialised with a per-module lock, and one operation (open session, log in,
// sign, log out, close session) holds the lock throughout, because PKCS#11
// login state is shared by all sessions of a process.
//
// Key references: a certificate gets, by the first rule that applies (each
// reference goes to one certificate): OpenSC's PIV labels ("Certificate for
// PIV Authentication" 9a, "Digital Signature" 9c, "Key Management" 9d, "Card
// Authentication" 9e); KeyUsage contentCommitment (non-repudiation) 9c; a
// private key visible before login with CKA_DECRYPT true 9a (the NHSbuntu
// identity agent's choice); a label with "auth" 9a, "sign" or "repudiation"
// 9c; the only remaining digitalSignature certificate 9a. Others get
// "id:<hex CKA_ID>". CA certificates on the token are not listed. The private
// key is found after login by CKA_ID (or, for RSA, by modulus).
//
// PIN handling: every Sign asks the PINFunc once, checks the PIN's format
// locally (pcsc.ErrPINFormat, no module call), logs in once (C_Login is never
// retried), signs, logs out and zeroes the PIN. A key with
// CKA_ALWAYS_AUTHENTICATE (OpenSC marks the PIV 9C key so) also gets the
// context-specific login the standard requires, with the same PIN and only
// after the user login succeeded. PKCS#11 reports PIN tries only as token
// flags, so *pcsc.AuthError.Retries and PINStatus.Retries are 0 when the PIN
// is locked, 1 on the final try, and -1 (unknown) otherwise. ChangePIN logs in
// with the old PIN, then calls C_SetPIN. UnblockPIN logs in as SO with the
// PUK and calls C_InitPIN; a module that cannot do that gives
// ErrUnblockNotSupported.
//
// Module return values become pcsc's typed errors through *Error
// (CKR_DEVICE_REMOVED is pcsc.ErrCardRemoved, and so on). When an operation
// fails with a value that says nothing (CKR_GENERAL_ERROR, as OpenSC reports a
// card pulled mid-APDU), the driver asks once whether the token is still in
// its slot and reports pcsc.ErrCardRemoved if not.
//
// C_Logout only resets the card's own PIN-verified state if the module does
// so. OpenSC's PIV driver does not (its card logout is unsupported); with
// OpenSC, configure "lock_login = true" (pkcs11 block) and
// "transaction_end_action = reset" (reader_driver pcsc block), which make one
// PC/SC transaction span C_Login..C_Logout and reset the card at its end, and
// "use_pin_caching = false". The tests show that configuration.
//
// The PIN reaches miekg/pkcs11 as a string that aliases the PIN bytes (no Go
// copy); miekg copies it into C memory for the call and frees that copy
// without zeroing it, which this package cannot change.
package p11

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf8"

	"github.com/cardagent/cardagent/pcsc"
)

// Config says which PKCS#11 module and token to use.
type Config struct {
	// Module is the path of the PKCS#11 library (see KnownModules).
	Module string
	// TokenLabel, when set, selects the token with this label.
	TokenLabel string
	// Slot, when set, selects the token in this slot ID.
	Slot *uint
}

// Errors of this package, besides pcsc's typed errors.
var (
	// ErrNoCgo: this binary was built without cgo, so it cannot load a PKCS#11 module.
	ErrNoCgo = errors.New("PKCS#11 support needs a cgo build")
	// ErrModuleLoad: the PKCS#11 library could not be loaded (missing file, wrong architecture, not a PKCS#11 module).
	ErrModuleLoad = errors.New("PKCS#11 module could not be loaded")
	// ErrTokenAmbiguous: several tokens match and nothing in the configuration or the reader name tells them apart.
	ErrTokenAmbiguous = errors.New("several PKCS#11 tokens match; configure a token label or slot")
	// ErrUnblockNotSupported: the module offers no way to reset the PIN with the
	// PUK (it refused an SO login or C_InitPIN); the card must be unblocked elsewhere.
	ErrUnblockNotSupported = errors.New("the PKCS#11 module cannot unblock the PIN")
	// ErrClosed: the Card was closed.
	ErrClosed = errors.New("card closed")
)

// KnownModules lists where the Oberthur AWP module (the series 8 middleware)
// is usually installed on goos, most likely first. They are defaults for IT
// configuration; nothing is loaded without being configured.
func KnownModules(goos string) []string {
	switch goos {
	case "windows":
		return []string{`C:\Windows\System32\OcsCryptoki.dll`, "OcsCryptoki.dll"}
	case "darwin":
		return []string{"/Library/AWP/lib/libOcsCryptoki.dylib"}
	default:
		return []string{"/usr/local/AWP/lib/libOcsCryptoki.so", "/usr/lib/libOcsCryptoki.so"}
	}
}

// Error is a PKCS#11 return value (CKR_*) from the module. errors.Is matches
// it against pcsc's typed errors where one applies (CKR_DEVICE_REMOVED is
// pcsc.ErrCardRemoved, CKR_PIN_LOCKED is pcsc.ErrPINBlocked, ...).
type Error struct {
	Code uint
}

func (e *Error) Error() string {
	if name, ok := ckrNames[e.Code]; ok {
		return fmt.Sprintf("PKCS#11 module returned %s", name)
	}
	return fmt.Sprintf("PKCS#11 module returned 0x%X", e.Code)
}

// Is maps the return value onto pcsc's sentinel errors.
func (e *Error) Is(target error) bool {
	s := sentinel(e.Code)
	return s != nil && s == target
}

// PKCS#11 return values this package names or maps (PKCS#11 v2.40 values).
const (
	ckrCancel                  = 0x001
	ckrSlotIDInvalid           = 0x003
	ckrGeneralError            = 0x005
	ckrFunctionFailed          = 0x006
	ckrAttributeTypeInvalid    = 0x012
	ckrDataInvalid             = 0x020
	ckrDataLenRange            = 0x021
	ckrDeviceError             = 0x030
	ckrDeviceMemory            = 0x031
	ckrDeviceRemoved           = 0x032
	ckrFunctionCanceled        = 0x050
	ckrFunctionNotSupported    = 0x054
	ckrKeyHandleInvalid        = 0x060
	ckrKeySizeRange            = 0x062
	ckrKeyTypeInconsistent     = 0x063
	ckrKeyFunctionNotPermitted = 0x068
	ckrMechanismInvalid        = 0x070
	ckrMechanismParamInvalid   = 0x071
	ckrObjectHandleInvalid     = 0x082
	ckrOperationActive         = 0x090
	ckrPINIncorrect            = 0x0A0
	ckrPINInvalid              = 0x0A1
	ckrPINLenRange             = 0x0A2
	ckrPINExpired              = 0x0A3
	ckrPINLocked               = 0x0A4
	ckrSessionClosed           = 0x0B0
	ckrSessionHandleInvalid    = 0x0B3
	ckrTokenNotPresent         = 0x0E0
	ckrTokenNotRecognized      = 0x0E1
	ckrBufferTooSmall          = 0x150
	ckrUserAlreadyLoggedIn     = 0x100
	ckrUserNotLoggedIn         = 0x101
	ckrUserPINNotInitialized   = 0x102
	ckrUserTypeInvalid         = 0x103
	ckrCryptokiNotInitialized  = 0x190
	ckrCryptokiAlreadyInit     = 0x191
)

var ckrNames = map[uint]string{
	ckrCancel:                  "CKR_CANCEL",
	ckrSlotIDInvalid:           "CKR_SLOT_ID_INVALID",
	ckrGeneralError:            "CKR_GENERAL_ERROR",
	ckrFunctionFailed:          "CKR_FUNCTION_FAILED",
	ckrAttributeTypeInvalid:    "CKR_ATTRIBUTE_TYPE_INVALID",
	ckrDataInvalid:             "CKR_DATA_INVALID",
	ckrDataLenRange:            "CKR_DATA_LEN_RANGE",
	ckrDeviceError:             "CKR_DEVICE_ERROR",
	ckrDeviceMemory:            "CKR_DEVICE_MEMORY",
	ckrDeviceRemoved:           "CKR_DEVICE_REMOVED",
	ckrFunctionCanceled:        "CKR_FUNCTION_CANCELED",
	ckrFunctionNotSupported:    "CKR_FUNCTION_NOT_SUPPORTED",
	ckrKeyHandleInvalid:        "CKR_KEY_HANDLE_INVALID",
	ckrKeySizeRange:            "CKR_KEY_SIZE_RANGE",
	ckrKeyTypeInconsistent:     "CKR_KEY_TYPE_INCONSISTENT",
	ckrKeyFunctionNotPermitted: "CKR_KEY_FUNCTION_NOT_PERMITTED",
	ckrMechanismInvalid:        "CKR_MECHANISM_INVALID",
	ckrMechanismParamInvalid:   "CKR_MECHANISM_PARAM_INVALID",
	ckrObjectHandleInvalid:     "CKR_OBJECT_HANDLE_INVALID",
	ckrOperationActive:         "CKR_OPERATION_ACTIVE",
	ckrPINIncorrect:            "CKR_PIN_INCORRECT",
	ckrPINInvalid:              "CKR_PIN_INVALID",
	ckrPINLenRange:             "CKR_PIN_LEN_RANGE",
	ckrPINExpired:              "CKR_PIN_EXPIRED",
	ckrPINLocked:               "CKR_PIN_LOCKED",
	ckrSessionClosed:           "CKR_SESSION_CLOSED",
	ckrSessionHandleInvalid:    "CKR_SESSION_HANDLE_INVALID",
	ckrTokenNotPresent:         "CKR_TOKEN_NOT_PRESENT",
	ckrTokenNotRecognized:      "CKR_TOKEN_NOT_RECOGNIZED",
	ckrBufferTooSmall:          "CKR_BUFFER_TOO_SMALL",
	ckrUserAlreadyLoggedIn:     "CKR_USER_ALREADY_LOGGED_IN",
	ckrUserNotLoggedIn:         "CKR_USER_NOT_LOGGED_IN",
	ckrUserPINNotInitialized:   "CKR_USER_PIN_NOT_INITIALIZED",
	ckrUserTypeInvalid:         "CKR_USER_TYPE_INVALID",
	ckrCryptokiNotInitialized:  "CKR_CRYPTOKI_NOT_INITIALIZED",
	ckrCryptokiAlreadyInit:     "CKR_CRYPTOKI_ALREADY_INITIALIZED",
}

// sentinel is the pcsc error a return value means, or nil.
func sentinel(code uint) error {
	switch code {
	case ckrDeviceRemoved, ckrTokenNotPresent, ckrSessionHandleInvalid, ckrSessionClosed:
		return pcsc.ErrCardRemoved
	case ckrSlotIDInvalid:
		return pcsc.ErrNoReader
	case ckrDeviceError:
		return pcsc.ErrCardUnresponsive
	case ckrTokenNotRecognized:
		return pcsc.ErrUnsupportedCard
	case ckrPINLenRange, ckrPINInvalid:
		return pcsc.ErrPINFormat
	case ckrPINLocked:
		return pcsc.ErrPINBlocked
	case ckrFunctionCanceled, ckrCancel:
		return pcsc.ErrCancelled
	case ckrMechanismInvalid, ckrMechanismParamInvalid, ckrKeyTypeInconsistent,
		ckrKeyFunctionNotPermitted, ckrKeySizeRange, ckrDataLenRange:
		return pcsc.ErrUnsupportedAlgorithm
	case ckrKeyHandleInvalid, ckrObjectHandleInvalid:
		return pcsc.ErrNotFound
	}
	return nil
}

// CK_SLOT_INFO.flags: a token is in the slot.
const ckfTokenPresent = 0x00000001

// Token flags (CK_TOKEN_INFO.flags).
const (
	ckfProtectedAuthenticationPath = 0x00000100
	ckfTokenInitialized            = 0x00000400
	ckfUserPINCountLow             = 0x00010000
	ckfUserPINFinalTry             = 0x00020000
	ckfUserPINLocked               = 0x00040000
	ckfSOPINCountLow               = 0x00100000
	ckfSOPINFinalTry               = 0x00200000
	ckfSOPINLocked                 = 0x00400000
)

// retriesFromFlags is the best the token flags say about tries left: 0 when
// locked, 1 on the final try, -1 when unknown.
func retriesFromFlags(flags uint, puk bool) (retries int, blocked bool) {
	locked, final := uint(ckfUserPINLocked), uint(ckfUserPINFinalTry)
	if puk {
		locked, final = ckfSOPINLocked, ckfSOPINFinalTry
	}
	switch {
	case flags&locked != 0:
		return 0, true
	case flags&final != 0:
		return 1, false
	}
	return -1, false
}

// pinStatus turns token info into a pcsc.PINStatus. Lengths the module
// reports that no card could mean (0, above 255, CK_UNAVAILABLE_INFORMATION) are 0.
func pinStatus(flags, minLen, maxLen uint) pcsc.PINStatus {
	retries, blocked := retriesFromFlags(flags, false)
	return pcsc.PINStatus{Retries: retries, Blocked: blocked, MinLen: saneLen(minLen), MaxLen: saneLen(maxLen)}
}

func saneLen(n uint) int {
	if n == 0 || n > 255 {
		return 0
	}
	return int(n)
}

// checkPINFormat refuses, without any module call, a PIN the token cannot
// take: empty, outside the token's length limits (when known), not UTF-8, or
// holding control characters.
func checkPINFormat(pin []byte, minLen, maxLen int) error {
	if len(pin) == 0 || (minLen > 0 && len(pin) < minLen) || (maxLen > 0 && len(pin) > maxLen) {
		return pcsc.ErrPINFormat
	}
	if !utf8.Valid(pin) {
		return pcsc.ErrPINFormat
	}
	for _, b := range pin {
		if b < 0x20 || b == 0x7F {
			return pcsc.ErrPINFormat
		}
	}
	return nil
}

func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// token is what selection needs to know about one slot with a token.
type token struct {
	Slot        uint
	Description string // slot description (usually the reader name)
	Label       string
}

// chooseToken picks the token to use: the configured slot; else the token
// with the configured label (narrowed by reader when several have it); else
// the token whose slot description names the PC/SC reader; else the only
// token present.
func chooseToken(tokens []token, cfg Config, reader string) (token, error) {
	if len(tokens) == 0 {
		return token{}, fmt.Errorf("no PKCS#11 token present: %w", pcsc.ErrNoCard)
	}
	if cfg.Slot != nil {
		for _, t := range tokens {
			if t.Slot == *cfg.Slot {
				return t, nil
			}
		}
		return token{}, fmt.Errorf("no PKCS#11 token in slot %d: %w", *cfg.Slot, pcsc.ErrNoCard)
	}
	if cfg.TokenLabel != "" {
		var labelled []token
		for _, t := range tokens {
			if strings.TrimSpace(t.Label) == strings.TrimSpace(cfg.TokenLabel) {
				labelled = append(labelled, t)
			}
		}
		switch len(labelled) {
		case 0:
			return token{}, fmt.Errorf("no PKCS#11 token labelled %q: %w", cfg.TokenLabel, pcsc.ErrNoCard)
		case 1:
			return labelled[0], nil
		}
		tokens = labelled
	}
	var inReader []token
	for _, t := range tokens {
		if reader != "" && matchReader(t.Description, reader) {
			inReader = append(inReader, t)
		}
	}
	switch {
	case len(inReader) == 1:
		return inReader[0], nil
	case len(inReader) > 1:
		return token{}, fmt.Errorf("%d tokens in reader %q: %w", len(inReader), reader, ErrTokenAmbiguous)
	case len(tokens) == 1:
		return tokens[0], nil
	}
	return token{}, fmt.Errorf("%d tokens, none in reader %q: %w", len(tokens), reader, ErrTokenAmbiguous)
}

// matchReader reports whether a slot description names the PC/SC reader.
// Modules copy the reader name into the 64-byte, space-padded description,
// sometimes truncated and sometimes with a suffix.
func matchReader(desc, reader string) bool {
	d := strings.TrimSpace(desc)
	if d == "" {
		return false
	}
	if strings.HasPrefix(d, reader) {
		return true
	}
	return len(d) >= 32 && strings.HasPrefix(reader, d) // truncated description
}

// object is a certificate object read from the token, with what is known
// about the private key of the same CKA_ID (when the module shows it before login).
type object struct {
	ID         []byte
	Label      string
	Value      []byte // DER
	KeyVisible bool   // a private key with this CKA_ID was found
	KeyDecrypt bool   // and it has CKA_DECRYPT true
}

// classified is a certificate with the key reference the driver gives it.
type classified struct {
	pcsc.Certificate
	ID []byte
}

// pivLabels are the labels OpenSC's PIV emulation gives certificates and keys.
var pivLabels = []struct {
	label string
	ref   pcsc.KeyRef
}{
	{"piv authentication", pcsc.KeyAuthentication},
	{"digital signature", pcsc.KeySignature},
	{"key management", "9d"},
	{"card authentication", "9e"},
}

// classify parses certificate objects and gives each a key reference. Each
// reference goes to at most one certificate, by the first rule that assigns it:
//  1. OpenSC PIV labels ("Certificate for PIV Authentication" -> 9a, "Digital Signature" -> 9c, 9d, 9e);
//  2. KeyUsage contentCommitment (non-repudiation) -> 9c;
//  3. a visible private key with CKA_DECRYPT true -> 9a (as the NHSbuntu identity agent chose);
//  4. a label mentioning "auth" -> 9a, "sign" or "repudiation" -> 9c;
//  5. when 9a is still free, the only remaining certificate with KeyUsage digitalSignature -> 9a.
//
// Others get "id:<hex CKA_ID>" (or "object:<n>" without an ID). CA
// certificates and objects that do not parse are skipped, since they have no
// key of the card holder.
func classify(objs []object) []classified {
	type entry struct {
		obj  object
		cert *x509.Certificate
		ref  pcsc.KeyRef
	}
	var es []*entry
	for _, o := range objs {
		c, err := x509.ParseCertificate(o.Value)
		if err != nil || (c.BasicConstraintsValid && c.IsCA) {
			continue
		}
		es = append(es, &entry{obj: o, cert: c})
	}
	taken := map[pcsc.KeyRef]bool{}
	assign := func(e *entry, ref pcsc.KeyRef) {
		if e.ref == "" && !taken[ref] {
			e.ref, taken[ref] = ref, true
		}
	}
	lower := func(e *entry) string { return strings.ToLower(e.obj.Label) }
	for _, e := range es { // 1
		for _, p := range pivLabels {
			if strings.Contains(lower(e), p.label) {
				assign(e, p.ref)
				break
			}
		}
	}
	for _, e := range es { // 2
		if e.cert.KeyUsage&x509.KeyUsageContentCommitment != 0 {
			assign(e, pcsc.KeySignature)
		}
	}
	for _, e := range es { // 3
		if e.obj.KeyVisible && e.obj.KeyDecrypt {
			assign(e, pcsc.KeyAuthentication)
		}
	}
	for _, e := range es { // 4
		l := lower(e)
		switch {
		case strings.Contains(l, "auth"):
			assign(e, pcsc.KeyAuthentication)
		case strings.Contains(l, "sign") || strings.Contains(l, "repudiation"):
			assign(e, pcsc.KeySignature)
		}
	}
	if !taken[pcsc.KeyAuthentication] { // 5
		var cand []*entry
		for _, e := range es {
			if e.ref == "" && e.cert.KeyUsage&x509.KeyUsageDigitalSignature != 0 {
				cand = append(cand, e)
			}
		}
		if len(cand) == 1 {
			assign(cand[0], pcsc.KeyAuthentication)
		}
	}
	out := make([]classified, 0, len(es))
	for i, e := range es {
		if e.ref == "" {
			ref := pcsc.KeyRef(fmt.Sprintf("object:%d", i))
			if len(e.obj.ID) > 0 {
				ref = pcsc.KeyRef("id:" + hex.EncodeToString(e.obj.ID))
			}
			if !taken[ref] {
				assign(e, ref)
			} else {
				assign(e, pcsc.KeyRef(fmt.Sprintf("object:%d", i)))
			}
		}
		out = append(out, classified{
			Certificate: pcsc.Certificate{Key: e.ref, Cert: e.cert, Label: strings.TrimSpace(e.obj.Label)},
			ID:          bytes.Clone(e.obj.ID),
		})
	}
	return out
}

// PKCS#11 mechanism and MGF identifiers used for signing.
const (
	ckmRSAPKCS    = 0x0001
	ckmRSAPKCSPSS = 0x000D
	ckmECDSA      = 0x1041
	ckmSHA1       = 0x0220
	ckmSHA224     = 0x0255
	ckmSHA256     = 0x0250
	ckmSHA384     = 0x0260
	ckmSHA512     = 0x0270
	ckgMGF1SHA1   = 0x1
	ckgMGF1SHA256 = 0x2
	ckgMGF1SHA384 = 0x3
	ckgMGF1SHA512 = 0x4
	ckgMGF1SHA224 = 0x5
)

// digestInfoPrefix is the DER DigestInfo header for PKCS#1 v1.5 (RFC 8017 section 9.2).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:    {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224:  {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256:  {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384:  {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512:  {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
	crypto.MD5SHA1: {}, // TLS 1.0/1.1: the 36 bytes are signed without a DigestInfo
}

var pssHash = map[crypto.Hash]struct{ mech, mgf uint }{
	crypto.SHA1:   {ckmSHA1, ckgMGF1SHA1},
	crypto.SHA224: {ckmSHA224, ckgMGF1SHA224},
	crypto.SHA256: {ckmSHA256, ckgMGF1SHA256},
	crypto.SHA384: {ckmSHA384, ckgMGF1SHA384},
	crypto.SHA512: {ckmSHA512, ckgMGF1SHA512},
}

// signPlan is what one Sign sends to the module.
type signPlan struct {
	mech uint
	// PSS parameters (mech == ckmRSAPKCSPSS).
	pssHash, pssMGF, pssSalt uint
	input                    []byte
	// How the module's output becomes the signature crypto.Signer returns.
	rsaSize int // RSA: left-pad to the modulus size
	ecSize  int // ECDSA: raw r||s of 2*ecSize bytes, converted to ASN.1 DER
}

// planSign chooses the mechanism and input for signing digest with pub.
// has reports whether the token offers a mechanism (nil: unknown, try anyway).
func planSign(pub crypto.PublicKey, digest []byte, opts crypto.SignerOpts, has func(mech uint) bool) (signPlan, error) {
	if opts == nil {
		opts = crypto.Hash(0)
	}
	h := opts.HashFunc()
	if h != 0 && len(digest) != h.Size() {
		return signPlan{}, fmt.Errorf("digest is %d bytes, %v needs %d", len(digest), h, h.Size())
	}
	can := func(mech uint) bool { return has == nil || has(mech) }
	switch k := pub.(type) {
	case *rsa.PublicKey:
		size := (k.N.BitLen() + 7) / 8
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			p, ok := pssHash[h]
			if !ok || !can(ckmRSAPKCSPSS) {
				return signPlan{}, fmt.Errorf("RSA-PSS with %v: %w", h, pcsc.ErrUnsupportedAlgorithm)
			}
			salt := pss.SaltLength
			switch {
			case salt == rsa.PSSSaltLengthAuto || salt == rsa.PSSSaltLengthEqualsHash:
				salt = h.Size()
			case salt < 0:
				return signPlan{}, fmt.Errorf("RSA-PSS salt length %d: %w", salt, pcsc.ErrUnsupportedAlgorithm)
			}
			return signPlan{mech: ckmRSAPKCSPSS, pssHash: p.mech, pssMGF: p.mgf, pssSalt: uint(salt),
				input: bytes.Clone(digest), rsaSize: size}, nil
		}
		if !can(ckmRSAPKCS) {
			return signPlan{}, fmt.Errorf("RSA PKCS#1 v1.5: %w", pcsc.ErrUnsupportedAlgorithm)
		}
		if h == 0 { // the caller formatted the input itself
			return signPlan{mech: ckmRSAPKCS, input: bytes.Clone(digest), rsaSize: size}, nil
		}
		prefix, ok := digestInfoPrefix[h]
		if !ok {
			return signPlan{}, fmt.Errorf("RSA PKCS#1 v1.5 with %v: %w", h, pcsc.ErrUnsupportedAlgorithm)
		}
		if h == crypto.MD5SHA1 && len(digest) != 36 {
			return signPlan{}, fmt.Errorf("digest is %d bytes, MD5SHA1 needs 36", len(digest))
		}
		return signPlan{mech: ckmRSAPKCS, input: append(bytes.Clone(prefix), digest...), rsaSize: size}, nil
	case *ecdsa.PublicKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			return signPlan{}, fmt.Errorf("PSS with an EC key: %w", pcsc.ErrUnsupportedAlgorithm)
		}
		if !can(ckmECDSA) {
			return signPlan{}, fmt.Errorf("ECDSA: %w", pcsc.ErrUnsupportedAlgorithm)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		in := bytes.Clone(digest)
		if len(in) > size { // FIPS 186-4 6.4: use the leftmost bits (whole bytes for P-256/384)
			in = in[:size]
		}
		return signPlan{mech: ckmECDSA, input: in, ecSize: size}, nil
	}
	return signPlan{}, fmt.Errorf("public key type %T: %w", pub, pcsc.ErrUnsupportedAlgorithm)
}

// finish turns the module's output into the signature crypto.Signer returns.
func (p signPlan) finish(out []byte) ([]byte, error) {
	switch {
	case p.ecSize > 0:
		return rawToDER(out, p.ecSize)
	case p.rsaSize > 0:
		if len(out) > p.rsaSize || len(out) == 0 {
			return nil, fmt.Errorf("module returned a %d-byte RSA signature for a %d-byte key", len(out), p.rsaSize)
		}
		if len(out) < p.rsaSize { // some modules drop leading zero bytes
			out = append(make([]byte, p.rsaSize-len(out)), out...)
		}
		return out, nil
	}
	return out, nil
}

// verifySignature checks sig (as Sign returns it) over digest with pub.
func verifySignature(pub crypto.PublicKey, digest, sig []byte, opts crypto.SignerOpts) error {
	if opts == nil {
		opts = crypto.Hash(0)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if _, ok := opts.(*rsa.PSSOptions); ok {
			return rsa.VerifyPSS(k, opts.HashFunc(), digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
		return rsa.VerifyPKCS1v15(k, opts.HashFunc(), digest, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA verification failed")
		}
		return nil
	}
	return fmt.Errorf("public key type %T: %w", pub, pcsc.ErrUnsupportedAlgorithm)
}

// rawToDER converts a PKCS#11 ECDSA signature (r||s, each size bytes) to the
// ASN.1 DER SEQUENCE { r INTEGER, s INTEGER } that Go's ecdsa verifies.
func rawToDER(raw []byte, size int) ([]byte, error) {
	if size <= 0 || len(raw) != 2*size {
		return nil, fmt.Errorf("module returned a %d-byte ECDSA signature, want %d", len(raw), 2*size)
	}
	r := new(big.Int).SetBytes(raw[:size])
	s := new(big.Int).SetBytes(raw[size:])
	if r.Sign() == 0 || s.Sign() == 0 {
		return nil, errors.New("module returned an ECDSA signature with a zero component")
	}
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}
