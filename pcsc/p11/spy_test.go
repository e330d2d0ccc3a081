//go:build cgo

package p11

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"
)

// spy wraps a real module: it records every call (name, and the user type
// for C_Login) and can replace a call's result with an injected error, so
// tests see exactly what the driver asks of the module while the
// cryptography stays real.
type spy struct {
	lib

	mu    sync.Mutex
	calls []string
	// fail, when set, is asked before each call; a non-nil error is returned
	// instead of calling the module.
	fail func(call string) error
	// flags are ORed into every CK_TOKEN_INFO.flags the module reports.
	flags uint
	// gone clears CKF_TOKEN_PRESENT in every CK_SLOT_INFO the module reports.
	gone bool
}

// spyOn loads the module at path and routes its calls through a spy until the test ends.
func spyOn(t testing.TB, path string) *spy {
	t.Helper()
	m, err := modules.acquire(path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	s := &spy{lib: m.lib}
	m.sem <- struct{}{}
	m.lib = s
	<-m.sem
	if err := modules.release(m); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.sem <- struct{}{}
		m.lib = s.lib
		<-m.sem
	})
	return s
}

func (s *spy) record(call string) error {
	s.mu.Lock()
	s.calls = append(s.calls, call)
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		return fail(call)
	}
	return nil
}

// Calls returns the calls recorded so far and forgets them.
func (s *spy) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *spy) setFail(f func(string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = f
}

func (s *spy) setGone(gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone = gone
}

func (s *spy) setFlags(f uint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flags = f
}

// count is how many recorded calls start with prefix.
func count(calls []string, prefix string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (s *spy) Initialize(opts ...pkcs11.InitializeOption) error {
	if err := s.record("Initialize"); err != nil {
		return err
	}
	return s.lib.Initialize(opts...)
}

func (s *spy) Finalize() error {
	if err := s.record("Finalize"); err != nil {
		return err
	}
	return s.lib.Finalize()
}

func (s *spy) GetSlotList(tokenPresent bool) ([]uint, error) {
	if err := s.record("GetSlotList"); err != nil {
		return nil, err
	}
	return s.lib.GetSlotList(tokenPresent)
}

func (s *spy) GetSlotInfo(slot uint) (pkcs11.SlotInfo, error) {
	if err := s.record("GetSlotInfo"); err != nil {
		return pkcs11.SlotInfo{}, err
	}
	si, err := s.lib.GetSlotInfo(slot)
	s.mu.Lock()
	if s.gone {
		si.Flags &^= ckfTokenPresent
	}
	s.mu.Unlock()
	return si, err
}

func (s *spy) GetTokenInfo(slot uint) (pkcs11.TokenInfo, error) {
	if err := s.record("GetTokenInfo"); err != nil {
		return pkcs11.TokenInfo{}, err
	}
	ti, err := s.lib.GetTokenInfo(slot)
	s.mu.Lock()
	ti.Flags |= s.flags
	s.mu.Unlock()
	return ti, err
}

func (s *spy) GetMechanismList(slot uint) ([]*pkcs11.Mechanism, error) {
	if err := s.record("GetMechanismList"); err != nil {
		return nil, err
	}
	return s.lib.GetMechanismList(slot)
}

func (s *spy) OpenSession(slot uint, flags uint) (pkcs11.SessionHandle, error) {
	if err := s.record("OpenSession"); err != nil {
		return 0, err
	}
	return s.lib.OpenSession(slot, flags)
}

func (s *spy) CloseSession(sh pkcs11.SessionHandle) error {
	if err := s.record("CloseSession"); err != nil {
		return err
	}
	return s.lib.CloseSession(sh)
}

func (s *spy) GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error) {
	if err := s.record("GetSessionInfo"); err != nil {
		return pkcs11.SessionInfo{}, err
	}
	return s.lib.GetSessionInfo(sh)
}

func (s *spy) Login(sh pkcs11.SessionHandle, userType uint, pin string) error {
	if err := s.record(fmt.Sprintf("Login(%d)", userType)); err != nil {
		return err
	}
	return s.lib.Login(sh, userType, pin)
}

func (s *spy) Logout(sh pkcs11.SessionHandle) error {
	if err := s.record("Logout"); err != nil {
		return err
	}
	return s.lib.Logout(sh)
}

func (s *spy) FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error {
	if err := s.record("FindObjectsInit"); err != nil {
		return err
	}
	return s.lib.FindObjectsInit(sh, temp)
}

func (s *spy) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	if err := s.record("FindObjects"); err != nil {
		return nil, false, err
	}
	return s.lib.FindObjects(sh, max)
}

func (s *spy) FindObjectsFinal(sh pkcs11.SessionHandle) error {
	if err := s.record("FindObjectsFinal"); err != nil {
		return err
	}
	return s.lib.FindObjectsFinal(sh)
}

func (s *spy) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	if err := s.record("GetAttributeValue"); err != nil {
		return nil, err
	}
	return s.lib.GetAttributeValue(sh, o, a)
}

func (s *spy) SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error {
	if err := s.record(fmt.Sprintf("SignInit(%#x)", m[0].Mechanism)); err != nil {
		return err
	}
	return s.lib.SignInit(sh, m, o)
}

func (s *spy) Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error) {
	if err := s.record("Sign"); err != nil {
		return nil, err
	}
	return s.lib.Sign(sh, message)
}

func (s *spy) SetPIN(sh pkcs11.SessionHandle, oldpin, newpin string) error {
	if err := s.record("SetPIN"); err != nil {
		return err
	}
	return s.lib.SetPIN(sh, oldpin, newpin)
}

func (s *spy) InitPIN(sh pkcs11.SessionHandle, pin string) error {
	if err := s.record("InitPIN"); err != nil {
		return err
	}
	return s.lib.InitPIN(sh, pin)
}
