//go:build cgo

package p11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/miekg/pkcs11"
	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

var _ pcsc.Card = (*Card)(nil)

// Card is a token of a PKCS#11 module, used as a pcsc.Card. Its methods are
// safe for concurrent use; calls into one module are serialised.
type Card struct {
	log    *zap.Logger
	mod    *module
	slot   uint
	info   pcsc.CardInfo
	minPIN int
	maxPIN int
	mechs  map[uint]bool // nil when the module did not list its mechanisms

	certMu sync.Mutex
	certs  []classified
	loaded bool

	closeMu sync.RWMutex // held for reading by every operation, for writing by Close
	closed  bool
}

// Open loads cfg.Module (once per process), initialises it, and picks the
// token: the configured slot or label, else the token in info.Reader, else
// the only token present. info comes from PC/SC identification; the Card keeps
// it with Driver "pkcs11" and fills Reader, Applet and ID when they are empty
// (ID is then the authentication certificate's SHA-256, IDSource "certificate").
func Open(ctx context.Context, cfg Config, info pcsc.CardInfo, log *zap.Logger) (*Card, error) {
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("p11")
	if ctx.Err() != nil {
		return nil, cancelled(ctx)
	}
	if cfg.Module == "" {
		return nil, fmt.Errorf("%w: no module configured", ErrModuleLoad)
	}
	m, err := modules.acquire(cfg.Module)
	if err != nil {
		return nil, err
	}
	c := &Card{log: log, mod: m, info: info}
	if err := c.selectToken(ctx, cfg); err != nil {
		modules.release(m)
		return nil, err
	}
	if c.info.ID == "" {
		if err := c.fillID(ctx); err != nil {
			modules.release(m)
			return nil, err
		}
	}
	log.Debug("opened PKCS#11 token", zap.String("module", cfg.Module), zap.Uint("slot", c.slot),
		zap.String("reader", c.info.Reader), zap.String("applet", c.info.Applet))
	return c, nil
}

func (c *Card) selectToken(ctx context.Context, cfg Config) error {
	if err := c.mod.lock(ctx); err != nil {
		return err
	}
	defer c.mod.unlock()
	l := c.mod.lib
	slots, err := l.GetSlotList(true)
	for i := 0; i < 3 && code(err) == ckrBufferTooSmall; i++ {
		// miekg asks for the count, then the list; a module that found a
		// card in between (OpenSC adds its slots then) answers this.
		slots, err = l.GetSlotList(true)
	}
	if err != nil {
		return fmt.Errorf("listing PKCS#11 slots: %w", mapErr(err))
	}
	var tokens []token
	infos := map[uint]pkcs11.TokenInfo{}
	for _, s := range slots {
		ti, err := l.GetTokenInfo(s)
		if err != nil { // removed since the list was made, or not recognised
			c.log.Debug("skipping slot", zap.Uint("slot", s), zap.Error(mapErr(err)))
			continue
		}
		if ti.Flags&ckfTokenInitialized == 0 { // a blank token (SoftHSM keeps a spare one) holds no card's keys
			continue
		}
		si, err := l.GetSlotInfo(s)
		if err != nil {
			c.log.Debug("skipping slot", zap.Uint("slot", s), zap.Error(mapErr(err)))
			continue
		}
		infos[s] = ti
		tokens = append(tokens, token{Slot: s, Description: si.SlotDescription, Label: ti.Label})
	}
	t, err := chooseToken(tokens, cfg, c.info.Reader)
	if err != nil {
		return err
	}
	ti := infos[t.Slot]
	c.slot = t.Slot
	c.minPIN, c.maxPIN = saneLen(ti.MinPinLen), saneLen(ti.MaxPinLen)
	if ms, err := l.GetMechanismList(t.Slot); err == nil && len(ms) > 0 { // else unknown: try and let the module say
		c.mechs = map[uint]bool{}
		for _, m := range ms {
			c.mechs[m.Mechanism] = true
		}
	}
	c.info.Driver = "pkcs11"
	if c.info.Reader == "" {
		c.info.Reader = strings.TrimSpace(t.Description)
	}
	if c.info.Applet == "" {
		c.info.Applet = fmt.Sprintf("PKCS#11 token %q (%s %s) via %s", strings.TrimSpace(ti.Label),
			strings.TrimSpace(ti.ManufacturerID), strings.TrimSpace(ti.Model), filepath.Base(cfg.Module))
	}
	return nil
}

func (c *Card) fillID(ctx context.Context) error {
	certs, err := c.Certificates(ctx)
	if err != nil {
		return err
	}
	for _, want := range []pcsc.KeyRef{pcsc.KeyAuthentication, ""} {
		for _, cert := range certs {
			if want == "" || cert.Key == want {
				sum := sha256.Sum256(cert.Cert.Raw)
				c.info.ID, c.info.IDSource = hex.EncodeToString(sum[:]), "certificate"
				return nil
			}
		}
	}
	return nil
}

// Info returns the card's identity (Driver "pkcs11").
func (c *Card) Info() pcsc.CardInfo { return c.info }

// Close ends this Card's use of the module; the last user finalises it.
func (c *Card) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return modules.release(c.mod)
}

// op runs fn with a fresh session, holding the module lock throughout.
func (c *Card) op(ctx context.Context, rw bool, fn func(sh pkcs11.SessionHandle) error) error {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	if err := c.mod.lock(ctx); err != nil {
		return err
	}
	defer c.mod.unlock()
	if ctx.Err() != nil {
		return cancelled(ctx)
	}
	flags := uint(pkcs11.CKF_SERIAL_SESSION)
	if rw {
		flags |= pkcs11.CKF_RW_SESSION
	}
	sh, err := c.mod.lib.OpenSession(c.slot, flags)
	if err != nil {
		return fmt.Errorf("opening session: %w", mapErr(err))
	}
	defer func() {
		if err := c.mod.lib.CloseSession(sh); err != nil {
			c.log.Debug("closing session", zap.Error(mapErr(err)))
		}
	}()
	err = fn(sh)
	if generic(err) && c.tokenGone() {
		return fmt.Errorf("%w: %w", pcsc.ErrCardRemoved, err)
	}
	return err
}

// generic reports whether err is a module failure that says nothing about
// its cause (OpenSC answers a card pulled mid-APDU with CKR_GENERAL_ERROR).
func generic(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case ckrGeneralError, ckrFunctionFailed, ckrDeviceError:
		return true
	}
	return false
}

// tokenGone asks the module once whether the card left the slot. It sends
// no PIN and repeats no operation.
func (c *Card) tokenGone() bool {
	si, err := c.mod.lib.GetSlotInfo(c.slot)
	if err != nil {
		e := mapErr(err)
		return errors.Is(e, pcsc.ErrCardRemoved) || errors.Is(e, pcsc.ErrNoReader)
	}
	return si.Flags&ckfTokenPresent == 0
}

// Certificates returns the token's X.509 certificates (CA certificates
// excepted) with their key references. They are read once and cached.
func (c *Card) Certificates(ctx context.Context) ([]pcsc.Certificate, error) {
	cs, err := c.certificates(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]pcsc.Certificate, len(cs))
	for i, cl := range cs {
		out[i] = cl.Certificate
	}
	return out, nil
}

func (c *Card) certificates(ctx context.Context) ([]classified, error) {
	c.certMu.Lock()
	defer c.certMu.Unlock()
	if c.loaded {
		return c.certs, nil
	}
	var objs []object
	err := c.op(ctx, false, func(sh pkcs11.SessionHandle) error {
		var err error
		objs, err = c.readObjects(sh)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.certs, c.loaded = classify(objs), true
	return c.certs, nil
}

func (c *Card) readObjects(sh pkcs11.SessionHandle) ([]object, error) {
	l := c.mod.lib
	handles, err := c.find(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_CERTIFICATE),
		pkcs11.NewAttribute(pkcs11.CKA_CERTIFICATE_TYPE, pkcs11.CKC_X_509),
	})
	if err != nil {
		return nil, fmt.Errorf("finding certificates: %w", err)
	}
	var objs []object
	for _, h := range handles {
		as, err := l.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading certificate: %w", mapErr(err))
		}
		objs = append(objs, object{ID: as[0].Value, Label: string(as[1].Value), Value: as[2].Value})
	}
	// Private keys are often hidden until login; use what is visible.
	keys, err := c.find(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
	if err != nil {
		return nil, fmt.Errorf("finding private keys: %w", err)
	}
	for _, k := range keys {
		id := c.attr(sh, k, pkcs11.CKA_ID)
		decrypt := c.attr(sh, k, pkcs11.CKA_DECRYPT)
		for i := range objs {
			if len(id) > 0 && bytes.Equal(objs[i].ID, id) {
				objs[i].KeyVisible = true
				objs[i].KeyDecrypt = objs[i].KeyDecrypt || (len(decrypt) == 1 && decrypt[0] != 0)
			}
		}
	}
	return objs, nil
}

// attr reads one attribute, nil when the object lacks it or hides it.
func (c *Card) attr(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, typ uint) []byte {
	as, err := c.mod.lib.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(typ, nil)})
	if err != nil || len(as) != 1 {
		return nil
	}
	return as[0].Value
}

func (c *Card) find(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute) ([]pkcs11.ObjectHandle, error) {
	l := c.mod.lib
	if err := l.FindObjectsInit(sh, tmpl); err != nil {
		return nil, mapErr(err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := l.FindObjects(sh, 32)
		if err != nil {
			l.FindObjectsFinal(sh)
			return nil, mapErr(err)
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := l.FindObjectsFinal(sh); err != nil {
		return nil, mapErr(err)
	}
	return all, nil
}

// PINStatus reads the user PIN's state from the token flags (no login).
// Retries is 0 when locked, 1 on the final try, else -1; Verified is always
// false, since every operation logs out.
func (c *Card) PINStatus(ctx context.Context) (pcsc.PINStatus, error) {
	c.closeMu.RLock()
	defer c.closeMu.RUnlock()
	if c.closed {
		return pcsc.PINStatus{}, ErrClosed
	}
	if err := c.mod.lock(ctx); err != nil {
		return pcsc.PINStatus{}, err
	}
	defer c.mod.unlock()
	ti, err := c.mod.lib.GetTokenInfo(c.slot)
	if err != nil {
		return pcsc.PINStatus{}, fmt.Errorf("reading token info: %w", mapErr(err))
	}
	return pinStatus(ti.Flags, ti.MinPinLen, ti.MaxPinLen), nil
}

// PrivateKey returns the key of the certificate with reference ref. See the
// package documentation for what each Sign does with the PIN.
func (c *Card) PrivateKey(ref pcsc.KeyRef, pin pcsc.PINFunc) (pcsc.Signer, error) {
	certs, err := c.certificates(context.Background())
	if err != nil {
		return nil, err
	}
	for _, cl := range certs {
		if cl.Key == ref {
			return &signer{card: c, cert: cl, pin: pin}, nil
		}
	}
	return nil, fmt.Errorf("key %s: %w", ref, pcsc.ErrNotFound)
}

type signer struct {
	card *Card
	cert classified
	pin  pcsc.PINFunc
}

func (s *signer) Public() crypto.PublicKey { return s.cert.Cert.PublicKey }

// Sign signs digest (already hashed with opts.HashFunc()) in one PKCS#11
// session: C_Login once, C_SignInit, C_Sign, C_Logout. *rsa.PSSOptions selects
// RSA-PSS (salt length: as given, or the hash length for Auto and EqualsHash).
func (s *signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.SignContext(context.Background(), rand, digest, opts)
}

// SignContext is Sign with ctx bounding the wait for the module's session.
func (s *signer) SignContext(ctx context.Context, _ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	c := s.card
	var has func(uint) bool
	if c.mechs != nil {
		has = func(m uint) bool { return c.mechs[m] }
	}
	plan, err := planSign(s.Public(), digest, opts, has)
	if err != nil {
		return nil, err
	}
	if s.pin == nil {
		return nil, errors.New("no PIN function")
	}
	pin, err := s.pin()
	if err != nil {
		zero(pin)
		return nil, fmt.Errorf("reading PIN: %w", err)
	}
	defer zero(pin)
	if err := checkPINFormat(pin, c.minPIN, c.maxPIN); err != nil {
		return nil, fmt.Errorf("checking PIN: %w", err)
	}
	start := time.Now()
	var sig []byte
	err = c.op(ctx, false, func(sh pkcs11.SessionHandle) error {
		c.ensureLoggedOut(sh)
		if err := c.login(sh, pkcs11.CKU_USER, pin); err != nil {
			return fmt.Errorf("logging in: %w", err)
		}
		defer c.logout(sh)
		key, always, err := c.findKey(sh, s.cert)
		if err != nil {
			return fmt.Errorf("finding private key: %w", err)
		}
		mech := pkcs11.NewMechanism(plan.mech, nil)
		if plan.mech == ckmRSAPKCSPSS {
			mech = pkcs11.NewMechanism(plan.mech, pkcs11.NewPSSParams(plan.pssHash, plan.pssMGF, plan.pssSalt))
		}
		if err := c.mod.lib.SignInit(sh, []*pkcs11.Mechanism{mech}, key); err != nil {
			return fmt.Errorf("starting signature: %w", mapErr(err))
		}
		if always { // CKA_ALWAYS_AUTHENTICATE: the same PIN, after a successful user login
			if err := c.login(sh, pkcs11.CKU_CONTEXT_SPECIFIC, pin); err != nil {
				return fmt.Errorf("logging in for the key: %w", err)
			}
		}
		zero(pin)
		out, err := c.mod.lib.Sign(sh, plan.input)
		if err != nil {
			return fmt.Errorf("signing: %w", mapErr(err))
		}
		sig, err = plan.finish(out)
		return err
	})
	if err != nil {
		return nil, err
	}
	// As every driver does: a faulty token, or a key that does not match its
	// certificate, is an error here, never a signature handed on.
	if err := verifySignature(s.Public(), digest, sig, opts); err != nil {
		return nil, fmt.Errorf("the token's signature does not verify with the certificate's key: %w", err)
	}
	c.log.Debug("signed", zap.String("key", string(s.cert.Key)), zap.Uint("mechanism", plan.mech),
		zap.Duration("took", time.Since(start)))
	return sig, nil
}

// findKey finds the private key of cl: by CKA_ID, else (RSA) by modulus.
func (c *Card) findKey(sh pkcs11.SessionHandle, cl classified) (key pkcs11.ObjectHandle, alwaysAuth bool, err error) {
	var hs []pkcs11.ObjectHandle
	if len(cl.ID) > 0 {
		hs, err = c.find(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_ID, cl.ID),
		})
		if err != nil {
			return 0, false, err
		}
	}
	if pub, ok := cl.Cert.PublicKey.(*rsa.PublicKey); ok && len(hs) == 0 {
		all, err := c.find(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		})
		if err != nil {
			return 0, false, err
		}
		for _, h := range all {
			if bytes.Equal(bytes.TrimLeft(c.attr(sh, h, pkcs11.CKA_MODULUS), "\x00"), pub.N.Bytes()) {
				hs = append(hs, h)
			}
		}
	}
	if len(hs) == 0 {
		return 0, false, pcsc.ErrNotFound
	}
	aa := c.attr(sh, hs[0], pkcs11.CKA_ALWAYS_AUTHENTICATE)
	return hs[0], len(aa) == 1 && aa[0] != 0, nil
}

// ensureLoggedOut logs out a session that starts logged in (left over from
// an earlier failure), so that C_Login is sent exactly once and checks the PIN.
func (c *Card) ensureLoggedOut(sh pkcs11.SessionHandle) {
	si, err := c.mod.lib.GetSessionInfo(sh)
	if err != nil {
		return
	}
	switch si.State {
	case pkcs11.CKS_RO_USER_FUNCTIONS, pkcs11.CKS_RW_USER_FUNCTIONS, pkcs11.CKS_RW_SO_FUNCTIONS:
		c.logout(sh)
	}
}

func (c *Card) logout(sh pkcs11.SessionHandle) {
	if err := c.mod.lib.Logout(sh); err != nil {
		c.log.Debug("logging out", zap.Error(mapErr(err)))
	}
}

// login calls C_Login once. A wrong PIN is *pcsc.AuthError with the tries the
// token flags tell; a locked one pcsc.ErrPINBlocked (ErrPUKBlocked for the SO/PUK).
func (c *Card) login(sh pkcs11.SessionHandle, userType uint, pin []byte) error {
	err := c.mod.lib.Login(sh, userType, alias(pin))
	return c.pinErr(err, userType == pkcs11.CKU_SO)
}

// pinErr translates the result of a call that checked a PIN (or, with puk, the SO PIN / PUK).
func (c *Card) pinErr(err error, puk bool) error {
	switch code(err) {
	case 0:
		return nil
	case ckrPINIncorrect:
		retries := -1
		if ti, err := c.mod.lib.GetTokenInfo(c.slot); err == nil {
			retries, _ = retriesFromFlags(ti.Flags, puk)
		}
		return &pcsc.AuthError{Retries: retries, PUK: puk}
	case ckrPINLocked:
		if puk {
			return fmt.Errorf("%w (%w)", pcsc.ErrPUKBlocked, mapErr(err))
		}
	case ckrUserTypeInvalid, ckrFunctionNotSupported:
		if puk {
			return fmt.Errorf("%w (%w)", ErrUnblockNotSupported, mapErr(err))
		}
	}
	return mapErr(err)
}

// ChangePIN changes the user PIN: C_Login with the old PIN (sent once; a
// wrong one is *pcsc.AuthError and nothing else happens), then C_SetPIN in
// that logged-in read/write session. C_SetPIN in a session that is not
// logged in is avoided on purpose: some modules read it as an unblock with
// the "old PIN" taken for the PUK (OpenSC's user_pin_unblock_style =
// set_pin_in_unlogged_session). The caller owns and zeroes the PINs.
func (c *Card) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	if err := checkPINFormat(oldPIN, c.minPIN, c.maxPIN); err != nil {
		return fmt.Errorf("checking old PIN: %w", err)
	}
	if err := checkPINFormat(newPIN, c.minPIN, c.maxPIN); err != nil {
		return fmt.Errorf("checking new PIN: %w", err)
	}
	return c.op(ctx, true, func(sh pkcs11.SessionHandle) error {
		c.ensureLoggedOut(sh)
		if err := c.login(sh, pkcs11.CKU_USER, oldPIN); err != nil {
			return fmt.Errorf("logging in: %w", err)
		}
		defer c.logout(sh)
		if err := c.pinErr(c.mod.lib.SetPIN(sh, alias(oldPIN), alias(newPIN)), false); err != nil {
			return fmt.Errorf("changing PIN: %w", err)
		}
		return nil
	})
}

// UnblockPIN logs in as the security officer with puk and sets newPIN with
// C_InitPIN, which resets the user PIN's retry counter. Modules whose SO PIN
// is the PUK allow it (SoftHSM's SO PIN stands in for it in the tests); when
// the module refuses the SO login (for any reason other than a wrong,
// blocked or malformed PUK, or the card leaving) or C_InitPIN as unsupported,
// the error matches ErrUnblockNotSupported. A wrong PUK is
// *pcsc.AuthError{PUK: true}. OpenSC cannot unblock a PIV card this way: its
// SO login VERIFYs the PUK, which PIV forbids. The caller owns and zeroes the secrets.
func (c *Card) UnblockPIN(ctx context.Context, puk, newPIN []byte) error {
	if err := checkPINFormat(puk, 0, 0); err != nil {
		return fmt.Errorf("checking PUK: %w", err)
	}
	if err := checkPINFormat(newPIN, c.minPIN, c.maxPIN); err != nil {
		return fmt.Errorf("checking new PIN: %w", err)
	}
	return c.op(ctx, true, func(sh pkcs11.SessionHandle) error {
		c.ensureLoggedOut(sh)
		if err := c.login(sh, pkcs11.CKU_SO, puk); err != nil {
			if aboutPUK(err) {
				return fmt.Errorf("logging in with the PUK: %w", err)
			}
			// The SO login failed for a reason other than the PUK itself
			// (OpenSC on a PIV card VERIFYs key 81, which PIV forbids).
			return fmt.Errorf("logging in with the PUK: %w (%w)", ErrUnblockNotSupported, err)
		}
		defer c.logout(sh)
		err := c.mod.lib.InitPIN(sh, alias(newPIN))
		switch code(err) {
		case 0:
			return nil
		case ckrFunctionNotSupported, ckrUserNotLoggedIn, ckrUserTypeInvalid:
			return fmt.Errorf("setting the new PIN: %w (%w)", ErrUnblockNotSupported, mapErr(err))
		}
		return fmt.Errorf("setting the new PIN: %w", mapErr(err))
	})
}

// aboutPUK reports whether a failed SO login says something about the PUK
// or the card (wrong, blocked, badly formatted, card gone, cancelled) rather
// than about the module's support for unblocking.
func aboutPUK(err error) bool {
	var ae *pcsc.AuthError
	return errors.As(err, &ae) || errors.Is(err, ErrUnblockNotSupported) ||
		errors.Is(err, pcsc.ErrPUKBlocked) || errors.Is(err, pcsc.ErrPINFormat) ||
		errors.Is(err, pcsc.ErrCardRemoved) || errors.Is(err, pcsc.ErrNoReader) ||
		errors.Is(err, pcsc.ErrCancelled)
}

// alias passes a secret to miekg/pkcs11 as a string sharing its bytes, so no
// Go copy outlives the caller's zeroing. The string must not be kept.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
