package desktoplock

import "testing"

func TestValidSessionID(t *testing.T) {
	for id, want := range map[string]bool{"2": true, "c1": true, "": false, "-h": false, "1 2": false, "a/b": false, string(make([]byte, 65)): false} {
		if got := validSessionID(id); got != want {
			t.Errorf("validSessionID(%q) = %v, want %v", id, got, want)
		}
	}
}
