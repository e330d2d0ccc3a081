package plist

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const header = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
`

func TestParse(t *testing.T) {
	doc := header + `<plist version="1.0">
<dict>
	<key>AllowedOrigins</key>
	<array><string>https://a.example</string><string>https://b.example:8443</string></array>
	<key>Environment</key> <string>live &amp; well</string>
	<key>PINCacheSeconds</key><integer>300</integer>
	<key>Ratio</key><real>0.5</real>
	<key>On</key><true/>
	<key>Off</key><false/>
	<key>When</key><date>2026-01-02T03:04:05Z</date>
	<key>Blob</key><data>
	aGVs
	bG8=
	</data>
	<key>Nested</key><dict><key>x</key><array/></dict>
</dict>
</plist>`
	got, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"AllowedOrigins":  []any{"https://a.example", "https://b.example:8443"},
		"Environment":     "live & well",
		"PINCacheSeconds": int64(300),
		"Ratio":           0.5,
		"On":              true,
		"Off":             false,
		"When":            time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"Blob":            []byte("hello"),
		"Nested":          map[string]any{"x": []any{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"binary", "bplist00\x00\x01", "binary"},
		{"not a plist", "<dict></dict>", "root element"},
		{"empty", "", "no <plist>"},
		{"empty plist", "<plist></plist>", "empty"},
		{"key without value", "<plist><dict><key>a</key></dict></plist>", "no value"},
		{"duplicate key", "<plist><dict><key>a</key><true/><key>a</key><false/></dict></plist>", "twice"},
		{"value where key belongs", "<plist><dict><string>a</string></dict></plist>", "where a <key>"},
		{"bad integer", "<plist><integer>12x</integer></plist>", "bad <integer>"},
		{"unknown element", "<plist><foo/></plist>", "unknown element"},
		{"two values", "<plist><true/><false/></plist>", "more than one"},
		{"unclosed", "<plist><dict><key>a</key><string>b</string>", "plist:"},
		{"markup in string", "<plist><string>a<b/></string></plist>", "inside a text"},
		{"text in dict", "<plist><dict>oops<key>a</key><true/></dict></plist>", "unexpected text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := Parse([]byte("bplist00")); !errors.Is(err, ErrBinary) {
		t.Errorf("binary: %v", err)
	}
}

func TestParseDepth(t *testing.T) {
	doc := "<plist>" + strings.Repeat("<array>", MaxDepth+2) + strings.Repeat("</array>", MaxDepth+2) + "</plist>"
	if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "deeply") {
		t.Fatalf("err %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(header + `<plist version="1.0"><dict><key>a</key><array><string>x</string><integer>1</integer></array></dict></plist>`))
	f.Add([]byte(`<plist><data>aGVsbG8=</data></plist>`))
	f.Add([]byte(`bplist00`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse(data) // must not panic or hang
	})
}
