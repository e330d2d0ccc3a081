package piv

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha1" // registers crypto.SHA1 for legacy PKCS#1 v1.5 signatures
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"

	"go.uber.org/zap"

	"github.com/cardagent/cardagent/pcsc"
)

// Algorithm identifiers for GENERAL AUTHENTICATE (SP 800-78-4 table 6-2, SP 800-78-5).
const (
	algRSA3072 = 0x05
	algRSA1024 = 0x06
	algRSA2048 = 0x07
	algECCP256 = 0x11
	algECCP384 = 0x14
)

// Key is a private key on a PIV card. It implements crypto.Signer.
type Key struct {
	card *Card
	slot slot
	pub  crypto.PublicKey
	alg  byte
	pin  pcsc.PINFunc
}

var _ pcsc.Signer = (*Key)(nil)

// PrivateKey returns the key in slot ref ("9a", "9c", "9d", "9e", "82".."95")
// as a crypto.Signer whose public key is the slot's certificate's. It reads the
// certificates first when they are not cached yet.
//
// Each Sign asks pin for the PIN exactly once, before the card is locked; the
// card authentication key (9e) needs no PIN and pin is not called for it.
func (c *Card) PrivateKey(ref pcsc.KeyRef, pin pcsc.PINFunc) (pcsc.Signer, error) {
	s, ok := slotFor(ref)
	if !ok {
		return nil, fmt.Errorf("%w: no PIV key %q", pcsc.ErrNotFound, ref)
	}
	cert, err := c.certificate(context.Background(), s)
	if err != nil {
		return nil, fmt.Errorf("opening key %s: %w", s.ref, err)
	}
	alg, err := algorithmFor(cert)
	if err != nil {
		return nil, fmt.Errorf("opening key %s: %w", s.ref, err)
	}
	return &Key{card: c, slot: s, pub: cert.PublicKey, alg: alg, pin: pin}, nil
}

func algorithmFor(cert *x509.Certificate) (byte, error) {
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		switch pub.N.BitLen() {
		case 1024:
			return algRSA1024, nil
		case 2048:
			return algRSA2048, nil
		case 3072:
			return algRSA3072, nil
		}
		return 0, fmt.Errorf("%w: RSA-%d", pcsc.ErrUnsupportedAlgorithm, pub.N.BitLen())
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			return algECCP256, nil
		case elliptic.P384():
			return algECCP384, nil
		}
		return 0, fmt.Errorf("%w: ECDSA %s", pcsc.ErrUnsupportedAlgorithm, pub.Curve.Params().Name)
	}
	return 0, fmt.Errorf("%w: %s key", pcsc.ErrUnsupportedAlgorithm, cert.PublicKeyAlgorithm)
}

// Public returns the public key from the slot's certificate.
func (k *Key) Public() crypto.PublicKey { return k.pub }

// Slot returns the key's reference.
func (k *Key) Slot() pcsc.KeyRef { return k.slot.ref }

// Sign signs digest with the card's key. RSA keys take PKCS#1 v1.5 (SHA-1,
// SHA-224, SHA-256, SHA-384, SHA-512, or crypto.Hash(0) for a prepared
// DigestInfo) or PSS (*rsa.PSSOptions, SHA-256/384/512); ECDSA keys (P-256,
// P-384) return an ASN.1 DER signature. See SignContext.
func (k *Key) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.SignContext(context.Background(), rand, digest, opts)
}

// SignContext is Sign with a context for the card transaction.
//
// The order is fixed: the algorithm is checked (pcsc.ErrUnsupportedAlgorithm
// before anything else), the PIN is asked for once, its format is checked
// (pcsc.ErrPINFormat without touching the card), then one transaction does
// SELECT, VERIFY, GENERAL AUTHENTICATE and VERIFY P1=FF (reset). A wrong PIN is
// a *pcsc.AuthError and is not retried; a transport error after VERIFY is
// returned as is, never followed by a second VERIFY. The PIN bytes are zeroed.
// The card's signature is verified with the public key before it is returned.
func (k *Key) SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.sign(ctx, rand, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("signing with key %s: %w", k.slot.ref, err)
	}
	return sig, nil
}

func (k *Key) sign(ctx context.Context, rnd io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts == nil {
		return nil, fmt.Errorf("%w: no signer options", pcsc.ErrUnsupportedAlgorithm)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	var (
		input  []byte
		finish func(resp []byte) ([]byte, error)
		err    error
	)
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		input, err = rsaInput(rnd, pub, digest, opts)
		finish = func(resp []byte) ([]byte, error) { return rsaFinish(pub, digest, opts, resp) }
	case *ecdsa.PublicKey:
		input, err = ecdsaInput(pub, digest, opts)
		finish = func(resp []byte) ([]byte, error) { return ecdsaFinish(pub, input, resp) }
	default:
		err = fmt.Errorf("%w: %T", pcsc.ErrUnsupportedAlgorithm, k.pub)
	}
	if err != nil {
		return nil, err
	}

	var padded []byte
	if k.slot.key != slot9E.key { // the card authentication key has no PIN (SP 800-73-4 Part 1, 3.2.4)
		if k.pin == nil {
			return nil, fmt.Errorf("%w: no PIN source", pcsc.ErrCancelled)
		}
		pin, err := k.pin()
		if err != nil {
			pcsc.Zero(pin)
			return nil, fmt.Errorf("reading PIN: %w", err)
		}
		padded, err = padPIN(pin)
		pcsc.Zero(pin)
		if err != nil {
			return nil, err
		}
		defer pcsc.Zero(padded)
	}

	var resp []byte
	err = k.card.s.Transact(ctx, func(t pcsc.Transmitter) error {
		if err := reselect(t); err != nil {
			return err
		}
		if padded != nil {
			if err := verifyPIN(t, padded); err != nil {
				return err
			}
		}
		var gaErr error
		resp, gaErr = generalAuthenticate(t, k.alg, k.slot.key, input)
		if padded != nil && !isTransport(gaErr) {
			if err := k.card.resetPIN(t); err != nil && gaErr == nil {
				// The signature is made; failing to reset is worth a log line, not an error.
				k.card.log.Warn("could not reset the PIN's security status", zap.Error(err))
			}
		}
		return gaErr
	})
	if err != nil {
		return nil, err
	}
	return finish(resp)
}

// isTransport reports whether err came from the transport rather than from
// the card's status word: after one, nothing more is sent.
func isTransport(err error) bool {
	if err == nil {
		return false
	}
	var se *pcsc.StatusError
	return !errors.As(err, &se) && !errors.Is(err, errMalformed) && !errors.Is(err, pcsc.ErrMalformedTLV)
}

// generalAuthenticate sends GENERAL AUTHENTICATE 00 87 alg key 7C { 82 00, 81 input } and
// returns the 82 response.
func generalAuthenticate(t pcsc.Transmitter, alg, key byte, input []byte) ([]byte, error) {
	inner := append([]byte{0x82, 0x00}, pcsc.AppendTLV(nil, 0x81, input)...)
	data := pcsc.AppendTLV(nil, 0x7C, inner)
	resp, err := pcsc.Exchange(t, pcsc.Command{INS: insGeneralAuth, P1: alg, P2: key, Data: data, Le: 0})
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	return parseAuthResponse(resp.Data)
}

// DigestInfo prefixes (RFC 8017 9.2 note 1).
var digestInfoPrefix = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// rsaInput builds the k-byte block the card raises to the private exponent.
func rsaInput(rnd io.Reader, pub *rsa.PublicKey, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h := opts.HashFunc()
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		switch h {
		case crypto.SHA256, crypto.SHA384, crypto.SHA512:
		default:
			return nil, fmt.Errorf("%w: RSA-PSS with %v", pcsc.ErrUnsupportedAlgorithm, h)
		}
		if len(digest) != h.Size() {
			return nil, fmt.Errorf("digest of %d bytes for %v", len(digest), h)
		}
		return emsaPSSEncode(rnd, pub, digest, h, pss.SaltLength)
	}
	var prefix []byte
	if h != 0 {
		p, ok := digestInfoPrefix[h]
		if !ok {
			return nil, fmt.Errorf("%w: RSA PKCS#1 v1.5 with %v", pcsc.ErrUnsupportedAlgorithm, h)
		}
		if len(digest) != h.Size() {
			return nil, fmt.Errorf("digest of %d bytes for %v", len(digest), h)
		}
		prefix = p
	}
	return emsaPKCS1v15Encode(pub.Size(), prefix, digest)
}

// emsaPKCS1v15Encode builds 00 01 FF..FF 00 DigestInfo (RFC 8017 9.2).
func emsaPKCS1v15Encode(k int, prefix, digest []byte) ([]byte, error) {
	tLen := len(prefix) + len(digest)
	if k < tLen+11 {
		return nil, fmt.Errorf("%w: message too long for the RSA key", pcsc.ErrUnsupportedAlgorithm)
	}
	em := make([]byte, k)
	em[1] = 0x01
	for i := 2; i < k-tLen-1; i++ {
		em[i] = 0xFF
	}
	copy(em[k-tLen:], prefix)
	copy(em[k-len(digest):], digest)
	return em, nil
}

// emsaPSSEncode is EMSA-PSS-ENCODE (RFC 8017 9.1.1) with MGF1 over the same
// hash, for a modulus of pub.N.BitLen() bits; the result is left-padded to the
// modulus length k for the raw RSA operation.
func emsaPSSEncode(rnd io.Reader, pub *rsa.PublicKey, mHash []byte, h crypto.Hash, saltLength int) ([]byte, error) {
	hLen := h.Size()
	emBits := pub.N.BitLen() - 1
	emLen := (emBits + 7) / 8
	sLen := saltLength
	switch {
	case saltLength == rsa.PSSSaltLengthAuto:
		sLen = emLen - hLen - 2 // the largest salt that fits, as crypto/rsa does
	case saltLength == rsa.PSSSaltLengthEqualsHash:
		sLen = hLen
	case saltLength < 0:
		return nil, fmt.Errorf("%w: PSS salt length %d", pcsc.ErrUnsupportedAlgorithm, saltLength)
	}
	if sLen < 0 || emLen < hLen+sLen+2 {
		return nil, fmt.Errorf("%w: PSS salt of %d bytes does not fit the key", pcsc.ErrUnsupportedAlgorithm, sLen)
	}
	salt := make([]byte, sLen)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return nil, fmt.Errorf("reading PSS salt: %w", err)
	}
	// M' = 00*8 || mHash || salt; H = Hash(M')
	hh := h.New()
	hh.Write(make([]byte, 8))
	hh.Write(mHash)
	hh.Write(salt)
	H := hh.Sum(nil)
	// DB = PS || 01 || salt, masked with MGF1(H).
	db := make([]byte, emLen-hLen-1)
	db[emLen-sLen-hLen-2] = 0x01
	copy(db[emLen-sLen-hLen-1:], salt)
	mgf1XOR(db, h, H)
	db[0] &= 0xFF >> (8*emLen - emBits)
	k := pub.Size()
	em := make([]byte, k) // leading zero byte when emLen < k
	off := k - emLen
	copy(em[off:], db)
	copy(em[off+len(db):], H)
	em[k-1] = 0xBC
	return em, nil
}

// mgf1XOR xors out with MGF1(seed) (RFC 8017 B.2.1).
func mgf1XOR(out []byte, h crypto.Hash, seed []byte) {
	var counter [4]byte
	done := 0
	for done < len(out) {
		hh := h.New()
		hh.Write(seed)
		hh.Write(counter[:])
		for _, b := range hh.Sum(nil) {
			if done == len(out) {
				break
			}
			out[done] ^= b
			done++
		}
		for i := 3; i >= 0; i-- {
			counter[i]++
			if counter[i] != 0 {
				break
			}
		}
	}
}

// rsaFinish checks the card's RSA signature with the public key, so a faulty
// card or a key that does not match its certificate is an error, not a bad signature.
func rsaFinish(pub *rsa.PublicKey, digest []byte, opts crypto.SignerOpts, sig []byte) ([]byte, error) {
	k := pub.Size()
	if len(sig) > k {
		return nil, fmt.Errorf("%w: RSA signature of %d bytes for a %d-byte key", errMalformed, len(sig), k)
	}
	if len(sig) < k { // a card may drop leading zero bytes
		sig = append(make([]byte, k-len(sig)), sig...)
	}
	var err error
	if pss, ok := opts.(*rsa.PSSOptions); ok {
		err = rsa.VerifyPSS(pub, pss.Hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	} else {
		err = rsa.VerifyPKCS1v15(pub, opts.HashFunc(), digest, sig)
	}
	if err != nil {
		return nil, fmt.Errorf("the card's signature does not verify with the certificate's key: %w", err)
	}
	return sig, nil
}

// ecdsaInput gives the card the digest as an integer of the curve's size:
// longer digests are truncated to their leftmost bytes, shorter ones
// left-padded with zeros (the same integer, FIPS 186-5 6.4.1).
func ecdsaInput(pub *ecdsa.PublicKey, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, ok := opts.(*rsa.PSSOptions); ok {
		return nil, fmt.Errorf("%w: PSS with an ECDSA key", pcsc.ErrUnsupportedAlgorithm)
	}
	if h := opts.HashFunc(); h != 0 && len(digest) != h.Size() {
		return nil, fmt.Errorf("digest of %d bytes for %v", len(digest), h)
	}
	if len(digest) == 0 {
		return nil, errors.New("empty digest")
	}
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(digest) >= size {
		return bytes.Clone(digest[:size]), nil
	}
	out := make([]byte, size)
	copy(out[size-len(digest):], digest)
	return out, nil
}

// ecdsaFinish checks the card's DER signature with the public key.
// SP 800-73-4 asks for DER; a card answering with bare r||s is converted.
func ecdsaFinish(pub *ecdsa.PublicKey, input, sig []byte) ([]byte, error) {
	if ecdsa.VerifyASN1(pub, input, sig) {
		return bytes.Clone(sig), nil
	}
	if size := (pub.Curve.Params().BitSize + 7) / 8; len(sig) == 2*size {
		r := new(big.Int).SetBytes(sig[:size])
		s := new(big.Int).SetBytes(sig[size:])
		der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
		if err == nil && ecdsa.VerifyASN1(pub, input, der) {
			return der, nil
		}
	}
	return nil, errors.New("the card's signature does not verify with the certificate's key")
}
