package tray

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestConnReadLimits(t *testing.T) {
	long := `{"type":"status","action":"` + strings.Repeat("a", MaxLine) + `"}` + "\n"
	c := newConn(strings.NewReader(long), io.Discard)
	if _, err := c.read(); !errors.Is(err, errLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	c = newConn(strings.NewReader(`{"type":"status"`), io.Discard)
	if _, err := c.read(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut line: %v", err)
	}
	c = newConn(strings.NewReader("not json\n"), io.Discard)
	if _, err := c.read(); err == nil {
		t.Error("garbage accepted")
	}
	var out bytes.Buffer
	c = newConn(strings.NewReader(""), &out)
	if err := c.write(Message{Type: TypeRequest, ID: 3, Action: ActionRefresh}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != `{"type":"request","id":3,"action":"refresh"}`+"\n" {
		t.Errorf("wire form %q", got)
	}
}

func FuzzConnRead(f *testing.F) {
	f.Add([]byte(`{"type":"status","status":{"service":"up","expiry_warning_days":90,"readers":[{"name":"R","card":null}]}}` + "\n"))
	f.Add([]byte(`{"type":"request","id":1,"action":"change_pin"}` + "\n"))
	f.Add([]byte(`{"type":"result","id":1,"error":{"code":"wrong_pin","message":"x","tries_left":2}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newConn(bytes.NewReader(data), io.Discard)
		for range 4 {
			m, err := c.read()
			if err != nil {
				return
			}
			if m.Type == TypeStatus && m.Status != nil {
				_ = Build(Input{Connected: true, Status: *m.Status})
			}
		}
	})
}
