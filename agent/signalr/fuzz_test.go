package signalr

import (
	"net/url"
	"testing"
)

func FuzzParseSend(f *testing.F) {
	for _, s := range []string{
		`{"H":"signinghub","M":"requestToSign","A":["eyJhIjoxfQ=="],"I":0}`,
		`{"H":"h","M":"m","A":[],"I":"12"}`,
		`{"H":"h","M":"m","A":[1,{"x":[null]}],"I":4294967295}`,
	} {
		f.Add([]byte("data=" + url.QueryEscape(s)))
	}
	f.Add([]byte("data=%7B&x=1"))
	f.Fuzz(func(t *testing.T, body []byte) {
		inv, id, err := ParseSend(body)
		if err == nil && (id == "" || inv.Hub == "" || inv.Method == "") {
			t.Fatalf("accepted %q with an empty id, hub or method", body)
		}
	})
}

func FuzzParseConnectionData(f *testing.F) {
	f.Add(`[{"name":"signinghub"}]`)
	f.Add(`[]`)
	f.Add(`[{"name":"a"},{"name":"b"}]`)
	f.Fuzz(func(t *testing.T, v string) {
		names, err := ParseConnectionData(v)
		if err != nil {
			return
		}
		if len(v) > maxConnectionData {
			t.Fatalf("accepted %d bytes", len(v))
		}
		for _, n := range names {
			if n == "" {
				t.Fatal("accepted an empty hub name")
			}
		}
	})
}
