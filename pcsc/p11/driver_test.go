//go:build cgo

package p11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cardagent/cardagent/pcsc"
)

func TestSoftHSMCertificatesAndInfo(t *testing.T) {
	tok := newSoftHSM(t)
	c := openHSM(t, tok, Config{})
	certs, err := c.Certificates(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[pcsc.KeyRef]pcsc.Certificate{}
	for _, cert := range certs {
		got[cert.Key] = cert
	}
	if len(certs) != 2 {
		t.Errorf("%d certificates, want 2 (the CA certificate must be left out): %v", len(certs), keysOf(certs))
	}
	if a := got[pcsc.KeyAuthentication]; a.Cert == nil || !a.Cert.Equal(tok.AuthCert) || a.Label != "Certificate 1" {
		t.Errorf("9a = %+v, want the RSA authentication certificate labelled Certificate 1", a)
	}
	if s := got[pcsc.KeySignature]; s.Cert == nil || !s.Cert.Equal(tok.SignCert) {
		t.Errorf("9c = %+v, want the P-256 signing certificate", s)
	}
	info := c.Info()
	sum := sha256.Sum256(tok.AuthCert.Raw)
	if info.Driver != "pkcs11" || info.Kind != pcsc.KindSeries8 || info.ID != hex.EncodeToString(sum[:]) || info.IDSource != "certificate" {
		t.Errorf("Info = %+v", info)
	}
	if !strings.Contains(info.Applet, "SoftHSM") || !strings.Contains(info.Applet, hsmLabel) {
		t.Errorf("Applet = %q, want the token label and maker", info.Applet)
	}
}

func keysOf(certs []pcsc.Certificate) []pcsc.KeyRef {
	var refs []pcsc.KeyRef
	for _, c := range certs {
		refs = append(refs, c.Key)
	}
	return refs
}

// TestSoftHSMSignCalls checks the exact module calls of one signature: one
// user login, the context-specific login only for the CKA_ALWAYS_AUTHENTICATE
// key and only after SignInit, logout and session close every time.
func TestSoftHSMSignCalls(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	c := openHSM(t, tok, Config{})
	if _, err := c.Certificates(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref     pcsc.KeyRef
		opts    crypto.SignerOpts
		mech    string
		context bool
	}{
		{pcsc.KeyAuthentication, crypto.SHA256, "SignInit(0x1)", false},
		{pcsc.KeyAuthentication, &rsa.PSSOptions{Hash: crypto.SHA384, SaltLength: rsa.PSSSaltLengthEqualsHash}, "SignInit(0xd)", false},
		{pcsc.KeySignature, crypto.SHA256, "SignInit(0x1041)", true},
	} {
		t.Run(string(tc.ref)+"-"+tc.mech, func(t *testing.T) {
			s.Calls()
			sig, digest := signDigest(t, mustSigner(t, c, tc.ref, staticPIN(hsmPIN)), tc.opts)
			verifySig(t, c, tc.ref, tc.opts, digest, sig)
			calls := s.Calls()
			if n := count(calls, "Login(1)"); n != 1 {
				t.Errorf("%d user logins, want 1: %v", n, calls)
			}
			want := 0
			if tc.context {
				want = 1
			}
			if n := count(calls, "Login(2)"); n != want {
				t.Errorf("%d context-specific logins, want %d: %v", n, want, calls)
			}
			if tc.context && slices.Index(calls, "Login(2)") < slices.Index(calls, tc.mech) {
				t.Errorf("context-specific login before SignInit: %v", calls)
			}
			if count(calls, tc.mech) != 1 || count(calls, "Sign") != 2 || count(calls, "Logout") != 1 || count(calls, "CloseSession") != 1 {
				t.Errorf("calls %v: want one %s, Sign, Logout and CloseSession", calls, tc.mech)
			}
		})
	}
}

func signDigest(t testing.TB, k crypto.Signer, opts crypto.SignerOpts) (sig, digest []byte) {
	t.Helper()
	digest = make([]byte, opts.HashFunc().Size())
	rand.Read(digest)
	sig, err := k.Sign(rand.Reader, digest, opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return sig, digest
}

func verifySig(t testing.TB, c *Card, ref pcsc.KeyRef, opts crypto.SignerOpts, digest, sig []byte) {
	t.Helper()
	k := mustSigner(t, c, ref, staticPIN(hsmPIN))
	switch pub := k.Public().(type) {
	case *rsa.PublicKey:
		var err error
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			err = rsa.VerifyPSS(pub, pss.Hash, digest, sig, pss)
		} else {
			err = rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig)
		}
		if err != nil {
			t.Fatalf("signature does not verify: %v", err)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			t.Fatal("ECDSA signature does not verify")
		}
	}
}

// observed returns a debug-level logger whose entries the test can read.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// TestSoftHSMWrongPIN: a wrong PIN is one C_Login, an *AuthError with
// unknown retries, the PIN zeroed and absent from errors and logs; the next
// correct PIN works.
func TestSoftHSMWrongPIN(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	log, logs := observed()
	c, err := Open(t.Context(), Config{Module: tok.Module}, pcsc.CardInfo{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const marker = "73196482"
	var given []byte
	calls := 0
	k := mustSigner(t, c, pcsc.KeyAuthentication, func() ([]byte, error) {
		calls++
		given = []byte(marker)
		return given, nil
	})
	s.Calls()
	_, err = k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	var ae *pcsc.AuthError
	if !errors.As(err, &ae) || ae.Retries != -1 || ae.PUK {
		t.Fatalf("Sign with a wrong PIN: %v, want *AuthError{Retries: -1}", err)
	}
	if errors.Is(err, pcsc.ErrPINBlocked) {
		t.Error("a wrong PIN with unknown retries matches ErrPINBlocked")
	}
	mc := s.Calls()
	if n := count(mc, "Login"); n != 1 || count(mc, "SignInit") != 0 {
		t.Errorf("calls %v: want exactly one Login and no signature", mc)
	}
	if calls != 1 || !bytes.Equal(given, make([]byte, len(marker))) {
		t.Errorf("PINFunc called %d times, PIN bytes after Sign %q: want 1 call and zeroed bytes", calls, given)
	}
	if strings.Contains(err.Error(), marker) || strings.Contains(err.Error(), hex.EncodeToString([]byte(marker))) {
		t.Errorf("error %q contains the PIN", err)
	}
	sig, digest := signDigest(t, mustSigner(t, c, pcsc.KeyAuthentication, staticPIN(hsmPIN)), crypto.SHA256)
	verifySig(t, c, pcsc.KeyAuthentication, crypto.SHA256, digest, sig)
	if logs.Len() == 0 {
		t.Error("nothing logged at debug level: the log check below would prove nothing")
	}
	for _, e := range logs.All() {
		text := e.Message + " " + fmt.Sprint(e.ContextMap())
		if strings.Contains(text, marker) || strings.Contains(text, hsmPIN) {
			t.Errorf("log entry %q contains a PIN", text)
		}
	}
}

// TestSoftHSMPINFormat: a PIN the token cannot take is refused before any module call.
func TestSoftHSMPINFormat(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	c := openHSM(t, tok, Config{})
	if st, err := c.PINStatus(t.Context()); err != nil || st.MinLen != 4 || st.MaxLen != 255 {
		t.Fatalf("PINStatus = %+v, %v; want SoftHSM's 4..255", st, err)
	}
	k := mustSigner(t, c, pcsc.KeyAuthentication, nil)
	for _, bad := range []string{"", "123", strings.Repeat("1", 256), "12\x0034", "1234\x7f", "\xff\xfe1234"} {
		t.Run(hex.EncodeToString([]byte(bad)), func(t *testing.T) {
			pin := []byte(bad)
			k := mustSigner(t, c, pcsc.KeyAuthentication, func() ([]byte, error) { return pin, nil })
			s.Calls()
			if _, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, pcsc.ErrPINFormat) {
				t.Errorf("Sign: %v, want ErrPINFormat", err)
			}
			if err := c.ChangePIN(t.Context(), []byte(hsmPIN), []byte(bad)); !errors.Is(err, pcsc.ErrPINFormat) {
				t.Errorf("ChangePIN: %v, want ErrPINFormat", err)
			}
			if err := c.UnblockPIN(t.Context(), []byte(hsmSOPIN), []byte(bad)); !errors.Is(err, pcsc.ErrPINFormat) {
				t.Errorf("UnblockPIN: %v, want ErrPINFormat", err)
			}
			if calls := s.Calls(); len(calls) != 0 {
				t.Errorf("module calls for a bad PIN: %v", calls)
			}
		})
	}
	if _, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); err == nil {
		t.Error("Sign with a nil PINFunc succeeded")
	}
}

func TestSoftHSMPINFuncError(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	c := openHSM(t, tok, Config{})
	k := mustSigner(t, c, pcsc.KeyAuthentication, func() ([]byte, error) { return nil, pcsc.ErrCancelled })
	s.Calls()
	if _, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, pcsc.ErrCancelled) {
		t.Errorf("Sign with a cancelled prompt: %v, want ErrCancelled", err)
	}
	if calls := s.Calls(); len(calls) != 0 {
		t.Errorf("module calls after a cancelled prompt: %v", calls)
	}
}

func TestSoftHSMChangePIN(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	c := openHSM(t, tok, Config{})
	s.Calls()
	err := c.ChangePIN(t.Context(), []byte("999999"), []byte("24681357"))
	var ae *pcsc.AuthError
	if !errors.As(err, &ae) || ae.PUK {
		t.Fatalf("ChangePIN with a wrong old PIN: %v, want *AuthError", err)
	}
	if calls := s.Calls(); count(calls, "Login") != 1 || count(calls, "SetPIN") != 0 {
		t.Errorf("calls %v: want one Login and no SetPIN", calls)
	}
	if err := c.ChangePIN(t.Context(), []byte(hsmPIN), []byte("24681357")); err != nil {
		t.Fatalf("ChangePIN: %v", err)
	}
	if calls := s.Calls(); count(calls, "Login(1)") != 1 || count(calls, "SetPIN") != 1 || count(calls, "Logout") != 1 ||
		slices.Index(calls, "Login(1)") > slices.Index(calls, "SetPIN") {
		t.Errorf("calls %v: want Login, SetPIN, Logout", calls)
	}
	sig, digest := signDigest(t, mustSigner(t, c, pcsc.KeyAuthentication, staticPIN("24681357")), crypto.SHA256)
	verifySig(t, c, pcsc.KeyAuthentication, crypto.SHA256, digest, sig)
	if _, err := mustSigner(t, c, pcsc.KeyAuthentication, staticPIN(hsmPIN)).Sign(rand.Reader, digest, crypto.SHA256); !errors.As(err, &ae) {
		t.Errorf("the old PIN: %v, want *AuthError", err)
	}
}

// TestSoftHSMUnblockPIN: SoftHSM's SO PIN stands in for the PUK.
func TestSoftHSMUnblockPIN(t *testing.T) {
	tok := newSoftHSM(t)
	c := openHSM(t, tok, Config{})
	err := c.UnblockPIN(t.Context(), []byte("87654321"), []byte("13572468"))
	var ae *pcsc.AuthError
	if !errors.As(err, &ae) || !ae.PUK || ae.Retries != -1 {
		t.Fatalf("UnblockPIN with a wrong PUK: %v, want *AuthError{PUK: true, Retries: -1}", err)
	}
	if err := c.UnblockPIN(t.Context(), []byte(hsmSOPIN), []byte("13572468")); err != nil {
		t.Fatalf("UnblockPIN: %v", err)
	}
	sig, digest := signDigest(t, mustSigner(t, c, pcsc.KeySignature, staticPIN("13572468")), crypto.SHA256)
	verifySig(t, c, pcsc.KeySignature, crypto.SHA256, digest, sig)
}

// TestUnblockNotSupported: a module that refuses the SO login or C_InitPIN
// gives ErrUnblockNotSupported; a locked SO PIN is ErrPUKBlocked.
func TestUnblockNotSupported(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	c := openHSM(t, tok, Config{})
	for _, tc := range []struct {
		call string
		ckr  uint
		want error
	}{
		{"Login(0)", pkcs11.CKR_USER_TYPE_INVALID, ErrUnblockNotSupported},
		{"Login(0)", pkcs11.CKR_FUNCTION_NOT_SUPPORTED, ErrUnblockNotSupported},
		{"InitPIN", pkcs11.CKR_FUNCTION_NOT_SUPPORTED, ErrUnblockNotSupported},
		{"Login(0)", pkcs11.CKR_PIN_LOCKED, pcsc.ErrPUKBlocked},
		{"Login(0)", pkcs11.CKR_GENERAL_ERROR, ErrUnblockNotSupported},
		{"Login(0)", pkcs11.CKR_DEVICE_REMOVED, pcsc.ErrCardRemoved},
	} {
		t.Run(tc.call+"-"+ckrNames[tc.ckr], func(t *testing.T) {
			s.setFail(func(call string) error {
				if call == tc.call {
					return pkcs11.Error(tc.ckr)
				}
				return nil
			})
			defer s.setFail(nil)
			if err := c.UnblockPIN(t.Context(), []byte(hsmSOPIN), []byte("13572468")); !errors.Is(err, tc.want) {
				t.Errorf("UnblockPIN: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestInjectedErrors: module return values become pcsc's typed errors, and
// C_Login is never sent twice.
func TestInjectedErrors(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	c := openHSM(t, tok, Config{})
	if _, err := c.Certificates(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		call  string
		ckr   uint
		flags uint // token flags after the failure
		gone  bool // the slot reports no token after the failure
		want  error
		check func(t *testing.T, err error)
	}{
		{name: "removed-at-sign", call: "Sign", ckr: pkcs11.CKR_DEVICE_REMOVED, want: pcsc.ErrCardRemoved},
		{name: "token-gone-at-open", call: "OpenSession", ckr: pkcs11.CKR_TOKEN_NOT_PRESENT, want: pcsc.ErrCardRemoved},
		{name: "session-invalid", call: "SignInit(0x1)", ckr: pkcs11.CKR_SESSION_HANDLE_INVALID, want: pcsc.ErrCardRemoved},
		{name: "cancelled-on-pinpad", call: "Login(1)", ckr: pkcs11.CKR_FUNCTION_CANCELED, want: pcsc.ErrCancelled},
		{name: "pin-locked", call: "Login(1)", ckr: pkcs11.CKR_PIN_LOCKED, want: pcsc.ErrPINBlocked},
		{name: "pin-len-range", call: "Login(1)", ckr: pkcs11.CKR_PIN_LEN_RANGE, want: pcsc.ErrPINFormat},
		{name: "mechanism-invalid", call: "SignInit(0x1)", ckr: pkcs11.CKR_MECHANISM_INVALID, want: pcsc.ErrUnsupportedAlgorithm},
		{name: "device-error", call: "Sign", ckr: pkcs11.CKR_DEVICE_ERROR, want: pcsc.ErrCardUnresponsive},
		{name: "general-error-card-gone", call: "Sign", ckr: pkcs11.CKR_GENERAL_ERROR, gone: true, want: pcsc.ErrCardRemoved},
		{name: "general-error-card-present", call: "Sign", ckr: pkcs11.CKR_GENERAL_ERROR,
			check: func(t *testing.T, err error) {
				var pe *Error
				if !errors.As(err, &pe) || pe.Code != pkcs11.CKR_GENERAL_ERROR || errors.Is(err, pcsc.ErrCardRemoved) {
					t.Errorf("error %v, want CKR_GENERAL_ERROR and not ErrCardRemoved", err)
				}
			}},
		{name: "wrong-pin-final-try", call: "Login(1)", ckr: pkcs11.CKR_PIN_INCORRECT, flags: ckfUserPINFinalTry | ckfUserPINCountLow,
			check: func(t *testing.T, err error) {
				var ae *pcsc.AuthError
				if !errors.As(err, &ae) || ae.Retries != 1 {
					t.Errorf("error %v, want *AuthError{Retries: 1}", err)
				}
			}},
		{name: "wrong-pin-now-locked", call: "Login(1)", ckr: pkcs11.CKR_PIN_INCORRECT, flags: ckfUserPINLocked,
			check: func(t *testing.T, err error) {
				var ae *pcsc.AuthError
				if !errors.As(err, &ae) || ae.Retries != 0 || !errors.Is(err, pcsc.ErrPINBlocked) {
					t.Errorf("error %v, want *AuthError{Retries: 0} matching ErrPINBlocked", err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.setFail(func(call string) error {
				if call == tc.call {
					s.setFlags(tc.flags)
					s.setGone(tc.gone)
					return pkcs11.Error(tc.ckr)
				}
				return nil
			})
			defer s.setFail(nil)
			defer s.setFlags(0)
			defer s.setGone(false)
			s.Calls()
			pinCalls := 0
			k := mustSigner(t, c, pcsc.KeyAuthentication, func() ([]byte, error) { pinCalls++; return []byte(hsmPIN), nil })
			_, err := k.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
			if err == nil {
				t.Fatal("Sign succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Sign: %v, want %v", err, tc.want)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
			calls := s.Calls()
			if count(calls, "Login") > 1 || pinCalls != 1 {
				t.Errorf("calls %v, PINFunc called %d times: want at most one Login and one PIN", calls, pinCalls)
			}
			if tc.call != "OpenSession" && count(calls, "CloseSession") != 1 {
				t.Errorf("calls %v: session not closed", calls)
			}
			var pe *Error
			if tc.want != nil && !errors.As(err, &pe) {
				t.Errorf("error %v does not carry the module's return value", err)
			}
		})
	}
	// And the card still works afterwards.
	sig, digest := signDigest(t, mustSigner(t, c, pcsc.KeyAuthentication, staticPIN(hsmPIN)), crypto.SHA256)
	verifySig(t, c, pcsc.KeyAuthentication, crypto.SHA256, digest, sig)
}

func TestSoftHSMPINStatusFlags(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	c := openHSM(t, tok, Config{})
	for _, tc := range []struct {
		flags   uint
		retries int
		blocked bool
	}{
		{0, -1, false},
		{ckfUserPINCountLow, -1, false},
		{ckfUserPINCountLow | ckfUserPINFinalTry, 1, false},
		{ckfUserPINLocked, 0, true},
		{ckfSOPINLocked, -1, false}, // the PUK's state is not the PIN's
	} {
		s.setFlags(tc.flags)
		st, err := c.PINStatus(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Retries != tc.retries || st.Blocked != tc.blocked || st.Verified {
			t.Errorf("flags %#x: %+v, want Retries %d Blocked %v", tc.flags, st, tc.retries, tc.blocked)
		}
	}
}

// TestTokenSelection opens a module with two tokens.
func TestTokenSelection(t *testing.T) {
	tok := newSoftHSMWith(t, "OTHER TOKEN")
	ctx := t.Context()
	other := "OTHER TOKEN"
	c, err := Open(ctx, Config{Module: tok.Module, TokenLabel: other}, pcsc.CardInfo{}, testLogger(t))
	if err != nil {
		t.Fatalf("Open by label: %v", err)
	}
	certs, err := c.Certificates(ctx)
	if err != nil || len(certs) != 0 {
		t.Errorf("the empty token has %d certificates (%v)", len(certs), err)
	}
	slot := c.slot
	c.Close()
	c, err = Open(ctx, Config{Module: tok.Module, Slot: &slot}, pcsc.CardInfo{}, testLogger(t))
	if err != nil || c.slot != slot {
		t.Fatalf("Open by slot: %v", err)
	}
	c.Close()
	if _, err := Open(ctx, Config{Module: tok.Module}, pcsc.CardInfo{Reader: "Some Reader 00 00"}, testLogger(t)); !errors.Is(err, ErrTokenAmbiguous) {
		t.Errorf("Open with two tokens, none in the reader: %v, want ErrTokenAmbiguous", err)
	}
	if _, err := Open(ctx, Config{Module: tok.Module, TokenLabel: "NO SUCH"}, pcsc.CardInfo{}, testLogger(t)); !errors.Is(err, pcsc.ErrNoCard) {
		t.Errorf("Open with an unknown label: %v, want ErrNoCard", err)
	}
	if n := modules.users(tok.Module); n != 0 {
		t.Errorf("%d module users left after failed opens", n)
	}
}

func TestOpenErrors(t *testing.T) {
	requireSoftHSM(t)
	notLib := filepath.Join(t.TempDir(), "libnot.so")
	if err := os.WriteFile(notLib, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, module := range []string{"", "/nonexistent/libOcsCryptoki.so", notLib, "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		_, err := Open(t.Context(), Config{Module: module}, pcsc.CardInfo{}, testLogger(t))
		if !errors.Is(err, ErrModuleLoad) {
			t.Errorf("Open(%q): %v, want ErrModuleLoad", module, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Open(ctx, Config{Module: SoftHSMModule}, pcsc.CardInfo{}, testLogger(t)); !errors.Is(err, pcsc.ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
}

// TestModuleLifecycle: one C_Initialize for the first user, one C_Finalize
// after the last; a closed Card refuses work.
func TestModuleLifecycle(t *testing.T) {
	tok := newSoftHSM(t)
	s := spyOn(t, tok.Module)
	s.Calls()
	a := openHSM(t, tok, Config{})
	b := openHSM(t, tok, Config{})
	if n := modules.users(tok.Module); n != 2 {
		t.Errorf("%d users, want 2", n)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := b.Certificates(t.Context()); err != nil {
		t.Errorf("the other card after one Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	calls := s.Calls()
	if count(calls, "Initialize") != 1 || count(calls, "Finalize") != 1 || calls[len(calls)-1] != "Finalize" {
		t.Errorf("calls %v: want one Initialize first and one Finalize last", calls)
	}
	if _, err := a.PINStatus(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("PINStatus after Close: %v, want ErrClosed", err)
	}
	if _, err := mustSigner(t, b, pcsc.KeyAuthentication, staticPIN(hsmPIN)).Sign(rand.Reader, make([]byte, 32), crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Errorf("Sign after Close: %v, want ErrClosed", err)
	}
}

// TestLockCancelled: an operation waiting for a busy module gives up when its context ends.
func TestLockCancelled(t *testing.T) {
	tok := newSoftHSM(t)
	c := openHSM(t, tok, Config{})
	c.mod.sem <- struct{}{} // someone else is in the module
	defer func() { <-c.mod.sem }()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.PINStatus(ctx); !errors.Is(err, pcsc.ErrCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PINStatus on a busy module: %v, want ErrCancelled", err)
	}
}

var rsaPSS256 = rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}
