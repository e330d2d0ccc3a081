//go:build !cgo

package p11

import (
	"errors"
	"testing"

	"github.com/cardagent/cardagent/pcsc"
)

func TestOpenWithoutCgo(t *testing.T) {
	c, err := Open(t.Context(), Config{Module: "/usr/local/AWP/lib/libOcsCryptoki.so"}, pcsc.CardInfo{}, nil)
	if c != nil || !errors.Is(err, ErrNoCgo) {
		t.Fatalf("Open = %v, %v; want ErrNoCgo", c, err)
	}
	var card pcsc.Card = &Card{}
	if _, err := card.Certificates(t.Context()); !errors.Is(err, ErrNoCgo) {
		t.Errorf("Certificates: %v, want ErrNoCgo", err)
	}
}
