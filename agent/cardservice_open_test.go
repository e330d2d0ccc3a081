package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/cardagent/cardagent/agent/wire"
	"github.com/cardagent/cardagent/pcsc"
)

// TestOpenFailureTypedNil: a connection that fails to open may come back as
// a typed nil (pcsc.Open returns a nil *pcsc.Conn). The card is reported
// unreadable, and its removal and the service's end close nothing (a
// closed typed nil would panic on the closer's goroutine).
func TestOpenFailureTypedNil(t *testing.T) {
	h := newHarness(t, func(s *CardService) {
		s.Open = func(context.Context, string) (pcsc.Session, error) {
			var c *pcsc.Conn
			return c, errors.New("connect failed")
		}
	})
	h.insert("R0", unknownCard{}, []byte{0x3b, 0x00}, true)
	if st := h.waitState("R0", func(c *wire.CardState) bool { return c != nil }); st.State != wire.CardFailed {
		t.Fatalf("state %q, want %q", st.State, wire.CardFailed)
	}
	h.remove("R0")
	h.waitState("R0", func(c *wire.CardState) bool { return c == nil })
}
