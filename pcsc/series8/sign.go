package series8

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"

	"github.com/cardagent/cardagent/pcsc"
)

// DigestInfo prefixes (RFC 8017, 9.2 note 1) of the hashes the driver signs.
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// maxDigestInfo is the largest DigestInfo the card's PSO takes (OpenSC).
const maxDigestInfo = 96

// PrivateKey returns the key for ref ("9a" authentication, "9c" signature,
// or a private key file such as "3003") as a crypto.Signer. When the key map
// is not cached yet, or the key has no certificate and its public key must be
// read from its file (80 B4), that happens in one transaction; otherwise no
// APDU is sent. Each Sign call asks pin for the PIN once, then in one
// transaction selects the applet, verifies the PIN, selects the key file,
// sets the security environment, signs, and logs out.
func (c *Card) PrivateKey(ref pcsc.KeyRef, pin pcsc.PINFunc) (pcsc.Signer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var k *keyObj
	find := func() error {
		if k = c.inv.key(ref); k == nil {
			return fmt.Errorf("%w: no key %s on the card", pcsc.ErrNotFound, ref)
		}
		if k.pub == nil && k.files.Pub == 0 {
			return fmt.Errorf("%w: key %s has neither certificate nor public key file", pcsc.ErrNotFound, ref)
		}
		return nil
	}
	if c.inv == nil || c.inv.key(ref) != nil && c.inv.key(ref).pub == nil {
		err := c.s.Transact(context.Background(), func(t pcsc.Transmitter) error {
			if err := c.begin(t); err != nil {
				return err
			}
			if c.inv == nil {
				inv, err := c.readInventory(t)
				if err != nil {
					return fmt.Errorf("reading key map: %w", err)
				}
				c.inv = inv
			}
			if err := find(); err != nil || k.pub != nil {
				return err
			}
			pub, err := readPublicKey(t, k.files.Pub)
			if err != nil {
				return fmt.Errorf("reading public key %s: %w", ref, err)
			}
			k.pub = pub
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := find(); err != nil {
		return nil, err
	}
	pub, ok := k.pub.(*rsa.PublicKey)
	if !ok {
		// Oberthur AWP keys are RSA; a certificate for anything else cannot belong to one.
		return nil, fmt.Errorf("%w: key %s has a %T public key", pcsc.ErrUnsupportedAlgorithm, ref, k.pub)
	}
	return &signer{c: c, ref: k.ref, prv: k.files.Prv, pub: pub, pin: pin}, nil
}

// signer is a card key as a crypto.Signer.
type signer struct {
	c   *Card
	ref pcsc.KeyRef
	prv uint16 // private key file in DF 9002
	pub *rsa.PublicKey
	pin pcsc.PINFunc
}

func (s *signer) Public() crypto.PublicKey { return s.pub }

// Sign signs digest with PKCS#1 v1.5 (SHA-1, SHA-256, SHA-384, SHA-512).
// PSS, other hashes and a missing hash are pcsc.ErrUnsupportedAlgorithm,
// before the PIN is asked for and before any APDU. A wrong PIN is a
// *pcsc.AuthError and is never retried; a transport error after VERIFY is
// returned as it is, and the PIN is never sent again.
func (s *signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.SignContext(context.Background(), rand, digest, opts)
}

// SignContext is Sign with ctx bounding the card transaction.
func (s *signer) SignContext(ctx context.Context, _ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, fmt.Errorf("signing: %w: no hash given", pcsc.ErrUnsupportedAlgorithm)
	}
	if _, ok := opts.(*rsa.PSSOptions); ok {
		return nil, fmt.Errorf("signing: %w: the card signs PKCS#1 v1.5 only, not PSS", pcsc.ErrUnsupportedAlgorithm)
	}
	h := opts.HashFunc()
	prefix, ok := digestInfoPrefix[h]
	if !ok {
		return nil, fmt.Errorf("signing: %w: hash %v", pcsc.ErrUnsupportedAlgorithm, h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("signing: digest of %d bytes for %v", len(digest), h)
	}
	di := append(append(make([]byte, 0, len(prefix)+len(digest)), prefix...), digest...)
	if len(di) > maxDigestInfo || len(di) > s.pub.Size()-11 {
		return nil, fmt.Errorf("signing: %w: %v DigestInfo too long for the key", pcsc.ErrUnsupportedAlgorithm, h)
	}

	if s.pin == nil {
		return nil, errors.New("signing: no PIN function")
	}
	pin, err := s.pin()
	defer pcsc.Zero(pin)
	if err != nil {
		return nil, fmt.Errorf("signing: reading PIN: %w", err)
	}
	padded, err := s.c.checkPIN(pin)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	defer pcsc.Zero(padded)

	var sig []byte
	err = s.c.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := s.c.begin(t); err != nil {
			return err
		}
		if err := verifyPIN(t, padded); err != nil {
			return err
		}
		pcsc.Zero(padded)
		var err error
		sig, err = s.pso(t, di)
		if isTransport(err) {
			return err // the card is gone or mute: no logout to send
		}
		if lerr := s.c.logout(t); err == nil {
			err = lerr
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", s.ref, err)
	}
	if err := rsa.VerifyPKCS1v15(s.pub, h, digest, sig); err != nil {
		// The card signed with a key other than the certificate's: the key
		// map (a hypothesis for series 8) is wrong for this card.
		return nil, fmt.Errorf("signing with key %s: the card's signature does not verify with the key's certificate: %w", s.ref, err)
	}
	return sig, nil
}

// isTransport reports whether err is neither nil nor the card's answer.
func isTransport(err error) bool {
	return err != nil && !isCardError(err)
}

// pso selects the private key file 3F00/5011/9002/30xx (DF 5011 is
// selected), sets the security environment for PKCS#1 v1.5 (MSE 00 22 41 B6
// 03 80 01 11) and signs the DigestInfo (PSO 00 2A 9E 9A, Le 00).
func (s *signer) pso(t pcsc.Transmitter, di []byte) ([]byte, error) {
	if _, err := selectFID(t, fidPrivateDF); err != nil {
		return nil, fmt.Errorf("private objects: %w", err)
	}
	f, err := selectFID(t, s.prv)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	if f.Type != typeRSACRT {
		return nil, fmt.Errorf("%w: private key file %04X has type %02X", errMalformed, s.prv, f.Type)
	}
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insMSE, P1: 0x41, P2: 0xB6, Data: []byte{0x80, 0x01, 0x11}, Le: -1})
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, fmt.Errorf("setting security environment: %w", err)
	}
	resp, err = pcsc.Exchange(t, pcsc.Command{INS: insPSO, P1: 0x9E, P2: 0x9A, Data: di, Le: 0})
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, fmt.Errorf("computing signature: %w", err)
	}
	k := s.pub.Size()
	switch n := len(resp.Data); {
	case n == k:
		return resp.Data, nil
	case n > 0 && n < k:
		return append(make([]byte, k-n, k), resp.Data...), nil
	}
	return nil, fmt.Errorf("%w: signature of %d bytes for a %d-bit key", errMalformed, len(resp.Data), s.pub.N.BitLen())
}
