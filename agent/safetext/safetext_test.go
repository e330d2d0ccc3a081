package safetext

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "Userq RANDOM", 0, "Userq RANDOM"},
		{"newlines", "Alice\r\nEVIL LINE\n", 0, "Alice EVIL LINE"},
		{"ANSI colour and clear", "\x1b[31mRED\x1b[0m\x1b[2J", 0, "[31mRED [0m [2J"},
		{"C1 CSI", "a\u009b31mb", 0, "a 31mb"},
		{"right-to-left override", "Bob\u202eevil\u202c", 0, "Bobevil"},
		{"isolates and zero width", "a\u2066b\u2069c\u200bd\ufeff", 0, "abcd"},
		{"tabs and runs of spaces", "\t a \t  b ", 0, "a b"},
		{"line separators", "a\u2028b\u2029c", 0, "a b c"},
		{"invalid UTF-8", "a\xffb", 0, "a\ufffdb"},
		{"cut", "abcdef", 4, "abcd"},
		{"cut at a rune boundary", "aéé", 4, "aé"},
		{"non-ASCII kept", "Zoë Ørsted", 0, "Zoë Ørsted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Line(tt.in, tt.max); got != tt.want {
				t.Errorf("Line(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func FuzzLine(f *testing.F) {
	f.Add("Userq RANDOM\x1b[2J\u202e\n", 64)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max %= 512
		out := Line(s, max)
		if max > 0 && len(out) > max {
			t.Fatalf("%d bytes, max %d", len(out), max)
		}
		if !utf8.ValidString(out) || strings.Contains(out, "  ") {
			t.Fatalf("%q", out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || (unicode.IsSpace(r) && r != ' ') {
				t.Fatalf("%q kept %U", out, r)
			}
		}
	})
}
