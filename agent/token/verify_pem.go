package token

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// CertificatesFromPEM parses every CERTIFICATE block in data (other blocks
// are skipped). It fails when there is none.
func CertificatesFromPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// PoolFromPEM returns a pool of the certificates in data (see CertificatesFromPEM).
func PoolFromPEM(data []byte) (*x509.CertPool, error) {
	certs, err := CertificatesFromPEM(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
