package trayproto

import "testing"

func TestOpenChannelOutsideAgent(t *testing.T) {
	t.Setenv(EnvChannel, "")
	if _, _, err := OpenChannel(); err != ErrNoChannel {
		t.Errorf("err %v, want ErrNoChannel", err)
	}
	for _, v := range []string{"3", "a,b", "3,4,5"} {
		t.Setenv(EnvChannel, v)
		if _, _, err := OpenChannel(); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}
