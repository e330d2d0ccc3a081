package vpiv

import (
	"crypto/sha256"

	"github.com/cardagent/cardagent/pcsc/vcard/testpki"
)

// NHSConfig returns the configuration of an NHS series 9/10 style card
// holding creds: the authentication certificate and key in slot 9A, the
// signing certificate and key in slot 9C, a CHUID whose GUID is derived from
// the authentication certificate (so each issued card has its own identity),
// the default PIN and PUK, and three tries each. Adjust it before New.
func NHSConfig(creds *testpki.CardCreds) Config {
	sum := sha256.Sum256(append([]byte("cardagent vpiv GUID\x00"), creds.AuthCert.Raw...))
	guid := sum[:16]
	guid[6] = guid[6]&0x0F | 0x40 // RFC 4122 version 4 layout
	guid[8] = guid[8]&0x3F | 0x80
	return Config{
		GUID:        guid,
		CHUIDExpiry: creds.AuthCert.NotAfter,
		Label:       "NHS TEST PIV",
		Slots: map[byte]Slot{
			SlotAuthentication: {Cert: creds.AuthCert, Key: creds.AuthKey},
			SlotSignature:      {Cert: creds.SignCert, Key: creds.SignKey},
		},
	}
}

// NewNHS issues a card for spec from p and returns it loaded into an NHS
// style virtual card (see NHSConfig) with PIN DefaultPIN and PUK DefaultPUK,
// after each adjust has changed the configuration (a PIN, a slot).
// Card.Certificate(SlotAuthentication) and (SlotSignature) give the
// certificates back.
func NewNHS(p *testpki.PKI, spec testpki.CardSpec, adjust ...func(*Config)) (*Card, error) {
	creds, err := p.IssueCard(spec)
	if err != nil {
		return nil, err
	}
	cfg := NHSConfig(creds)
	for _, a := range adjust {
		a(&cfg)
	}
	return New(cfg)
}
