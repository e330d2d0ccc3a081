package vpiv

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"math/big"

	"github.com/cardagent/cardagent/pcsc"
)

// Dynamic authentication template tags (SP 800-73-4 part 2, table 7).
const (
	tagDynAuth   = 0x7C
	tagChallenge = 0x81
	tagResponse  = 0x82
	tagExponent  = 0x85 // the other party's public point, for ECDH
)

// generalAuthenticate is GENERAL AUTHENTICATE (00 87 alg key) with
// 7C{82 00, 81 input} (sign, or raw RSA for decryption) or 7C{82 00, 85 point}
// (ECDH key agreement). It answers 7C{82 result}.
func (c *Card) generalAuthenticate(cmd command) []byte {
	ref := cmd.p2
	if CertTag(ref) == 0 {
		// Not an asymmetric key reference (9B, the card management key, is not emulated).
		return status(swWrongP1P2)
	}
	slot := c.slots[ref]
	if slot.Key == nil {
		return status(swRefDataNotFound)
	}
	alg, _ := algorithmOf(slot.Key) // checked in New
	if cmd.p1 != alg {
		return status(swWrongP1P2)
	}
	switch ref {
	case SlotCardAuthentication: // no PIN
	case SlotSignature: // PIN always: one VERIFY, one signature
		if !c.verified || !c.pinAlways {
			return status(swSecurityStatus)
		}
		c.pinAlways = false
	default:
		if !c.verified {
			return status(swSecurityStatus)
		}
	}

	outer, err := pcsc.ParseTLV(cmd.data)
	if err != nil || len(outer) != 1 || outer[0].Tag != tagDynAuth {
		return status(swWrongData)
	}
	inner, err := pcsc.ParseTLV(outer[0].Value)
	if err != nil {
		return status(swWrongData)
	}
	if v, ok := pcsc.FindTLV(inner, tagResponse); !ok || len(v) != 0 {
		return status(swWrongData)
	}
	challenge, hasChallenge := pcsc.FindTLV(inner, tagChallenge)
	point, hasPoint := pcsc.FindTLV(inner, tagExponent)
	if hasChallenge == hasPoint {
		return status(swWrongData)
	}

	var result []byte
	switch key := slot.Key.(type) {
	case *rsa.PrivateKey:
		if !hasChallenge {
			return status(swWrongData)
		}
		if result = rawRSA(key, challenge); result == nil {
			return status(swWrongData)
		}
	default:
		pub, ok := key.Public().(*ecdsa.PublicKey)
		if !ok {
			return status(swNoPreciseDiagnosis)
		}
		size := (pub.Curve.Params().BitSize + 7) / 8
		if hasChallenge {
			// The input is the hash, exactly as long as the curve's order.
			if len(challenge) != size {
				return status(swWrongData)
			}
			if result, err = key.Sign(rand.Reader, challenge, nil); err != nil {
				return status(swNoPreciseDiagnosis)
			}
		} else {
			if result = ecdhSecret(key, point); result == nil {
				return status(swWrongData)
			}
		}
	}
	c.signatures++
	return c.respond(pcsc.AppendTLV(nil, tagDynAuth, pcsc.AppendTLV(nil, tagResponse, result)), cmd.le)
}

// rawRSA computes input^d mod n: the card's RSA primitive. The input must be
// exactly the modulus length and less than the modulus; padding is the
// client's business. It returns nil for an invalid input.
func rawRSA(key *rsa.PrivateKey, input []byte) []byte {
	k := (key.N.BitLen() + 7) / 8
	if len(input) != k {
		return nil
	}
	m := new(big.Int).SetBytes(input)
	if m.Cmp(key.N) >= 0 {
		return nil
	}
	return new(big.Int).Exp(m, key.D, key.N).FillBytes(make([]byte, k))
}

// ecdhSecret computes the ECDH shared secret with the peer's uncompressed
// point, or nil when the point is invalid or the key cannot do ECDH.
func ecdhSecret(key any, point []byte) []byte {
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil
	}
	ek, err := priv.ECDH()
	if err != nil {
		return nil
	}
	peer, err := ek.Curve().NewPublicKey(point)
	if err != nil {
		return nil
	}
	secret, err := ek.ECDH(peer)
	if err != nil {
		return nil
	}
	return secret
}
