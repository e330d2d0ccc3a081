package piv

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

// Certificates returns the certificates in slots 9A, 9C, 9D, 9E and the
// retired key management slots the Key History object says are in use. They
// are read once, in one transaction, and cached for the life of the Card.
// Certificates that do not parse are skipped with a logged warning.
func (c *Card) Certificates(ctx context.Context) ([]pcsc.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadCertificates(ctx); err != nil {
		return nil, err
	}
	return slices.Clone(c.certs), nil
}

// loadCertificates fills the cache. c.mu must be held.
func (c *Card) loadCertificates(ctx context.Context) error {
	if c.certsRead {
		return nil
	}
	var certs []pcsc.Certificate
	err := c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		certs = nil
		if err := reselect(t); err != nil {
			return err
		}
		var err error
		certs, err = c.readCertificates(t)
		return err
	})
	if err != nil {
		return fmt.Errorf("reading certificates: %w", err)
	}
	c.certs, c.certsRead, c.auth = certs, true, nil
	c.log.Debug("read certificates", zap.Int("count", len(certs)))
	return nil
}

func (c *Card) readCertificates(t pcsc.Transmitter) ([]pcsc.Certificate, error) {
	slots := slices.Clone(primarySlots)
	// Retired slots are read only when the Key History object says they hold
	// certificates; probing all twenty would cost twenty APDUs on every card.
	switch b, err := readObject(t, tagKeyHistory); {
	case err == nil:
		h, err := parseKeyHistory(b)
		if err != nil {
			c.log.Warn("skipping retired key slots: unreadable key history", zap.Error(err))
			break
		}
		for n := 1; n <= h.OnCard; n++ {
			slots = append(slots, retiredSlot(n))
		}
	case errors.Is(err, pcsc.ErrNotFound):
	case !isTransport(err):
		c.log.Warn("skipping retired key slots: key history refused", zap.Error(err))
	default:
		return nil, fmt.Errorf("reading key history: %w", err)
	}

	var certs []pcsc.Certificate
	for _, s := range slots {
		var raw []byte
		if s.key == slot9A.key && c.auth != nil {
			raw = c.auth // read at Open for the identity
		} else {
			b, err := readObject(t, s.object)
			switch {
			case errors.Is(err, pcsc.ErrNotFound):
				continue
			case err != nil && !isTransport(err):
				// A status the card should not give for a certificate: skip that slot only.
				c.log.Warn("skipping certificate the card refused", zap.String("slot", string(s.ref)), zap.Error(err))
				continue
			case err != nil:
				return nil, fmt.Errorf("slot %s: %w", s.ref, err)
			}
			raw = b
		}
		der, err := parseCertContainer(raw)
		if err != nil {
			c.log.Warn("skipping unreadable certificate", zap.String("slot", string(s.ref)), zap.Error(err))
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			c.log.Warn("skipping certificate that does not parse", zap.String("slot", string(s.ref)), zap.Error(err))
			continue
		}
		certs = append(certs, pcsc.Certificate{Key: s.ref, Cert: cert, Label: s.label})
	}
	return certs, nil
}

// certificate returns the cached certificate for s, reading the certificates first if needed.
func (c *Card) certificate(ctx context.Context, s slot) (*x509.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadCertificates(ctx); err != nil {
		return nil, err
	}
	for _, cert := range c.certs {
		if cert.Key == s.ref {
			return cert.Cert, nil
		}
	}
	return nil, fmt.Errorf("%w: no certificate in slot %s", pcsc.ErrNotFound, s.ref)
}
