package tray

import (
	"bytes"
	"io"
	"testing"

	"github.com/cardagent/cardagent/tray/trayproto"
)

// FuzzConnRead feeds what an agent could send to the tray's reading of the
// channel and to Build.
func FuzzConnRead(f *testing.F) {
	f.Add([]byte(`{"type":"status","status":{"service":"up","expiry_warning_days":90,"readers":[{"name":"R","card":null}]}}` + "\n"))
	f.Add([]byte(`{"type":"request","id":1,"action":"change_pin"}` + "\n"))
	f.Add([]byte(`{"type":"result","id":1,"error":{"code":"wrong_pin","message":"x","tries_left":2}}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := trayproto.NewConn(bytes.NewReader(data), io.Discard)
		for range 4 {
			m, err := c.Read()
			if err != nil {
				return
			}
			if m.Type == trayproto.TypeStatus && m.Status != nil {
				_ = Build(Input{Connected: true, Status: *m.Status})
			}
		}
	})
}
