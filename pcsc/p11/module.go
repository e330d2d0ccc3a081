//go:build cgo

package p11

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/cardagent/cardagent/pcsc"
)

// lib is the part of *pkcs11.Ctx the driver uses. Tests swap newLib for a fake.
type lib interface {
	Initialize(opts ...pkcs11.InitializeOption) error
	Finalize() error
	GetSlotList(tokenPresent bool) ([]uint, error)
	GetSlotInfo(slotID uint) (pkcs11.SlotInfo, error)
	GetTokenInfo(slotID uint) (pkcs11.TokenInfo, error)
	GetMechanismList(slotID uint) ([]*pkcs11.Mechanism, error)
	OpenSession(slotID uint, flags uint) (pkcs11.SessionHandle, error)
	CloseSession(sh pkcs11.SessionHandle) error
	GetSessionInfo(sh pkcs11.SessionHandle) (pkcs11.SessionInfo, error)
	Login(sh pkcs11.SessionHandle, userType uint, pin string) error
	Logout(sh pkcs11.SessionHandle) error
	FindObjectsInit(sh pkcs11.SessionHandle, temp []*pkcs11.Attribute) error
	FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error)
	FindObjectsFinal(sh pkcs11.SessionHandle) error
	GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error)
	SignInit(sh pkcs11.SessionHandle, m []*pkcs11.Mechanism, o pkcs11.ObjectHandle) error
	Sign(sh pkcs11.SessionHandle, message []byte) ([]byte, error)
	SetPIN(sh pkcs11.SessionHandle, oldpin string, newpin string) error
	InitPIN(sh pkcs11.SessionHandle, pin string) error
}

// newLib loads a PKCS#11 library. miekg/pkcs11's New returns nil (and no
// reason) when dlopen or C_GetFunctionList fails.
var newLib = func(path string) (lib, error) {
	if filepath.IsAbs(path) {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrModuleLoad, err)
		}
	}
	c := pkcs11.New(path)
	if c == nil {
		return nil, fmt.Errorf("%w: %s is not a loadable PKCS#11 library", ErrModuleLoad, path)
	}
	return c, nil
}

// module is one loaded PKCS#11 library. It stays loaded for the life of the
// process (unloading vendor modules is a common source of crashes); it is
// initialised while at least one Card uses it.
type module struct {
	path string
	lib  lib
	sem  chan struct{} // held for every call, and for a whole operation

	// Guarded by registry.mu.
	refs    int
	ownInit bool // we called C_Initialize, so we call C_Finalize
}

// lock takes the module's lock, giving up when ctx ends.
func (m *module) lock(ctx context.Context) error {
	select {
	case m.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return cancelled(ctx)
	}
}

func (m *module) unlock() { <-m.sem }

// registry holds the process's modules. PKCS#11 initialisation is process-wide
// state (a second C_Initialize fails), so this one is too.
type registry struct {
	mu   sync.Mutex
	mods map[string]*module
}

var modules = &registry{mods: map[string]*module{}}

// acquire loads the module at path if needed, initialises it for its first
// user, and counts the caller as a user until release.
func (r *registry) acquire(path string) (*module, error) {
	key := path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		key = p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.mods[key]
	if m == nil {
		l, err := newLib(path)
		if err != nil {
			return nil, err
		}
		m = &module{path: path, lib: l, sem: make(chan struct{}, 1)}
		r.mods[key] = m
	}
	if m.refs == 0 {
		m.sem <- struct{}{}
		err := m.lib.Initialize()
		<-m.sem
		switch code(err) {
		case 0:
			m.ownInit = true
		case ckrCryptokiAlreadyInit: // another part of the process initialised it; leave it to them
			m.ownInit = false
		default:
			return nil, fmt.Errorf("initialising PKCS#11 module %s: %w", path, mapErr(err))
		}
	}
	m.refs++
	return m, nil
}

// release ends one user's use of m and finalises it after the last.
func (r *registry) release(m *module) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.refs--
	if m.refs > 0 || !m.ownInit {
		return nil
	}
	m.sem <- struct{}{}
	defer func() { <-m.sem }()
	m.ownInit = false
	if err := m.lib.Finalize(); err != nil {
		return fmt.Errorf("finalising PKCS#11 module %s: %w", m.path, mapErr(err))
	}
	return nil
}

// users is how many Cards use the module at path (for tests).
func (r *registry) users(path string) int {
	key := path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		key = p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.mods[key]; m != nil {
		return m.refs
	}
	return 0
}

// code is the CKR_* value of a miekg/pkcs11 error, 0 for nil, and
// ckrGeneralError for anything else.
func code(err error) uint {
	if err == nil {
		return 0
	}
	var e pkcs11.Error
	if errors.As(err, &e) {
		return uint(e)
	}
	return ckrGeneralError
}

// mapErr turns a module error into *Error, which matches pcsc's typed errors.
func mapErr(err error) error {
	var e pkcs11.Error
	if errors.As(err, &e) {
		return &Error{Code: uint(e)}
	}
	return err
}

func cancelled(ctx context.Context) error {
	return fmt.Errorf("%w: %w", pcsc.ErrCancelled, context.Cause(ctx))
}
