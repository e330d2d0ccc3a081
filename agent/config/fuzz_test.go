package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParse: no input makes the parser panic; every error is a *config.Error
// or joined *config.Errors; an accepted input prints and reads back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		``,
		`{}`,
		`{"listen": {"port": 43801, "port_range": 2}}`,
		`{"environment": "development", "allowed_origins": ["https://a.example:443/"]}`,
		`{"environments": {"x": {"origins": ["http://[::1]:80"], "renewal_url": "https://r.example/"}}, "environment": "x"}`,
		`{"pin": {"policy": "cache", "digits_only": false, "min_length": 4}}`,
		`{"listen": {"port": "1"}}`,
		`{"a": 1}`,
		`{"listen": {"port": 1, "port": 2}}`,
		"{\n// c\n}",
		`[1, {"x": null}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz")
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) && !isJoinedConfigErrors(err) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := Parse(out, "printed")
		if err != nil {
			t.Fatalf("accepted %q but not its printed form %s: %v", data, out, err)
		}
		out2, _ := json.Marshal(c2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed:\n%s\n%s", out, out2)
		}
	})
}

func isJoinedConfigErrors(err error) bool {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return false
	}
	for _, e := range j.Unwrap() {
		if _, ok := e.(*Error); !ok {
			return false
		}
	}
	return len(j.Unwrap()) > 0
}
