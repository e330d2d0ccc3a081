package testpki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// File names WritePEM uses.
const (
	RootFile    = "root.pem"               // NHS TEST Root Authority G2
	AuthCAFile  = "authentication-ca.pem"  // NHS TEST Authentication G2
	SignCAFile  = "signing-ca.pem"         // NHS TEST Signing G2
	ChainFile   = "chain.pem"              // both issuing CAs and the root
	AuthFile    = "authentication.pem"     // card authentication certificate
	AuthKeyFile = "authentication-key.pem" // its private key (PKCS#8)
	SignFile    = "signing.pem"            // card signing certificate
	SignKeyFile = "signing-key.pem"        // its private key (PKCS#8)
)

// CertPEM encodes a certificate as PEM.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM encodes a private key as unencrypted PKCS#8 PEM (these are test keys).
func KeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WritePEM writes the CA certificates into dir (created if needed):
// root.pem, authentication-ca.pem, signing-ca.pem and chain.pem.
// CA private keys are not written.
func (p *PKI) WritePEM(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing PKI: %w", err)
	}
	var chain []byte
	for _, c := range p.Chain() {
		chain = append(chain, CertPEM(c)...)
	}
	files := []struct {
		name string
		data []byte
	}{
		{RootFile, CertPEM(p.Root)},
		{AuthCAFile, CertPEM(p.AuthCA)},
		{SignCAFile, CertPEM(p.SignCA)},
		{ChainFile, chain},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return fmt.Errorf("writing PKI: %w", err)
		}
	}
	return nil
}

// WritePEM writes the card's certificates and private keys into dir (created
// if needed): authentication.pem, authentication-key.pem, signing.pem,
// signing-key.pem. Key files are mode 0600.
func (c *CardCreds) WritePEM(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing card credentials: %w", err)
	}
	authKey, err := KeyPEM(c.AuthKey)
	if err != nil {
		return err
	}
	signKey, err := KeyPEM(c.SignKey)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{AuthFile, CertPEM(c.AuthCert), 0o644},
		{AuthKeyFile, authKey, 0o600},
		{SignFile, CertPEM(c.SignCert), 0o644},
		{SignKeyFile, signKey, 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("writing card credentials: %w", err)
		}
	}
	return nil
}
