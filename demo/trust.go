package demo

import (
	"crypto/x509"
	"fmt"
	"os"
	"sync"

	"github.com/cardagent/cardagent/agent/token"
)

// FileTrust reads the trusted roots (and optional intermediates) from PEM
// files, and reads them again whenever a file changes. The development
// virtual card makes a new test PKI each time it starts
// (`cardagent-vcard insert --certs-out DIR` rewrites DIR/root.pem and
// DIR/chain.pem), so the demo keeps working across virtual card restarts.
type FileTrust struct {
	RootsFile, IntermediatesFile string

	mu    sync.Mutex
	stamp string
	roots *x509.CertPool
	inter *x509.CertPool
}

// NewFileTrust reads the files once, so that a wrong path fails at start.
// intermediatesFile may be empty.
func NewFileTrust(rootsFile, intermediatesFile string) (*FileTrust, error) {
	t := &FileTrust{RootsFile: rootsFile, IntermediatesFile: intermediatesFile}
	if _, _, err := t.Pools(); err != nil {
		return nil, err
	}
	return t, nil
}

// Pools implements Trust.
func (t *FileTrust) Pools() (roots, intermediates *x509.CertPool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	stamp, err := t.currentStamp()
	if err != nil {
		return nil, nil, err
	}
	if stamp == t.stamp && t.roots != nil {
		return t.roots, t.inter, nil
	}
	r, err := loadPool(t.RootsFile)
	if err != nil {
		return nil, nil, err
	}
	var in *x509.CertPool
	if t.IntermediatesFile != "" {
		if in, err = loadPool(t.IntermediatesFile); err != nil {
			return nil, nil, err
		}
	}
	t.stamp, t.roots, t.inter = stamp, r, in
	return r, in, nil
}

func (t *FileTrust) currentStamp() (string, error) {
	var stamp string
	for _, f := range []string{t.RootsFile, t.IntermediatesFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("reading trusted certificates: %w", err)
		}
		stamp += fmt.Sprintf("%s %d %d;", f, fi.ModTime().UnixNano(), fi.Size())
	}
	return stamp, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading trusted certificates: %w", err)
	}
	pool, err := token.PoolFromPEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading trusted certificates from %s: %w", file, err)
	}
	return pool, nil
}
