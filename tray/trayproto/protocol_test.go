package trayproto

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestConnReadLimits(t *testing.T) {
	long := `{"type":"status","action":"` + strings.Repeat("a", MaxLine) + `"}` + "\n"
	c := NewConn(strings.NewReader(long), io.Discard)
	if _, err := c.Read(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	c = NewConn(strings.NewReader(`{"type":"status"`), io.Discard)
	if _, err := c.Read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut line: %v", err)
	}
	c = NewConn(strings.NewReader("not json\n"), io.Discard)
	if _, err := c.Read(); err == nil {
		t.Error("garbage accepted")
	}
	var out bytes.Buffer
	c = NewConn(strings.NewReader(""), &out)
	if err := c.Write(Message{Type: TypeRequest, ID: 3, Action: ActionRefresh}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != `{"type":"request","id":3,"action":"refresh"}`+"\n" {
		t.Errorf("wire form %q", got)
	}
}
