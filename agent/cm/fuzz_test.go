package cm

import (
	"encoding/base64"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	payload := base64.StdEncoding.EncodeToString([]byte(`<SignedInfo xmlns="http://www.w3.org/2000/09/xmldsig#"></SignedInfo>`))
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"algorithm":"RS1","requestType":1,"version":1,"flags":0,"payloads":[{"id":"e7d65dfa","payload":"` + payload + `"}]}`)))
	f.Add(base64.StdEncoding.EncodeToString([]byte(`{"algorithm":"RS256","payloads":[{"id":"a","payload":"` + payload + `"},{"id":"b","payload":"` + payload + `"}]}`)))
	f.Add("eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(`{"algorithm":"RS1","payloads":[{"id":"1","payload":"`+payload+`"}]}`)) + ".c2ln")
	f.Add("not base64")
	lim := Limits{MaxPayloads: 5, MaxPayloadBytes: 512}
	f.Fuzz(func(t *testing.T, arg string) {
		req, err := ParseRequest(arg, lim)
		if err != nil {
			return
		}
		if len(req.Payloads) == 0 || len(req.Payloads) > lim.MaxPayloads || (req.Algorithm != "RS1" && req.Algorithm != "RS256") {
			t.Fatalf("accepted %+v", req)
		}
		seen := map[string]bool{}
		for _, p := range req.Payloads {
			if p.ID == "" || seen[p.ID] || len(p.Data) == 0 || len(p.Data) > lim.MaxPayloadBytes {
				t.Fatalf("accepted payload %+v", p)
			}
			seen[p.ID] = true
		}
	})
}
