package agent

import (
	"errors"
	"fmt"

	"github.com/cardagent/cardagent/agent/certinfo"
	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// errNoPINHere is the PIN source of the key check: the check never signs.
var errNoPINHere = errors.New("no PIN: the key is only checked")

// unusableSignInKey names the card's authentication key ("RSA-4096") when it
// cannot make a sign-in signature (the token's algorithms, and the driver's own
// limits: the PIV driver signs with RSA-1024 to RSA-3072, P-256 and P-384),
// or returns "" when it can, or when there is no authentication certificate (that is
// no_certificate, said at sign-in). It is decided from the certificate and
// the driver, before any PIN prompt; no PIN is asked for and no try is spent.
func unusableSignInKey(card pcsc.Card, certs []pcsc.Certificate) string {
	var auth *pcsc.Certificate
	for i := range certs {
		if certs[i].Key == pcsc.KeyAuthentication && certs[i].Cert != nil {
			auth = &certs[i]
		}
	}
	if auth == nil || card == nil {
		return ""
	}
	_, _, err := SignatureAlgorithm(auth.Cert.PublicKey)
	if err == nil {
		_, err = card.PrivateKey(pcsc.KeyAuthentication, func() ([]byte, error) { return nil, errNoPINHere })
	}
	if !errors.Is(err, pcsc.ErrUnsupportedAlgorithm) {
		return ""
	}
	return certinfo.KeyType(auth.Cert)
}

// unsupportedKeyHint is the hint (status, cards, tray) for such a key.
func unsupportedKeyHint(keyType string) string {
	return fmt.Sprintf("The card's sign-in key is %s, a kind of key cardagent cannot sign with (it signs with RSA keys of 1024 to 3072 bits and ECDSA P-256 or P-384 keys), so this card cannot be used to sign in.", keyType)
}

// errUnsupportedKey is the sign-in error for such a key.
func errUnsupportedKey(keyType string) *Error {
	return NewError(wire.CodeUnsupportedCard,
		fmt.Sprintf("the card's sign-in key is %s, which cardagent cannot sign with", keyType), pcsc.ErrUnsupportedAlgorithm)
}

// cardName is what the card is called for people: the driver's name, except
// that a PIV card whose certificates an NHS CA issued is an NHS series 9/10
// card (any vendor's PIV card is otherwise just a "PIV card").
func cardName(id pcsc.IdentifyResult, certs []pcsc.Certificate) string {
	if id.Kind == pcsc.KindPIV {
		for _, c := range certs {
			if certinfo.NHSIssued(c.Cert) {
				return pcsc.NamePIVNHS
			}
		}
	}
	return id.Name
}
