// Package safetext makes untrusted text safe to show on one line.
//
// Text that came from a card, a certificate or a caller is shown on one line
// of a terminal, a menu, a notification or a dialog: a hostile holder name
// must not move the cursor, recolour or clear a terminal (ANSI escapes), add
// lines (CR, LF), or reorder what is shown around it (bidirectional
// overrides such as U+202E).
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s on one line: control characters (C0, C1 and DEL: the
// escape that starts an ANSI sequence, CR, LF, tab) and other spaces become
// one space, bidirectional controls and invisible zero-width characters go,
// invalid UTF-8 becomes U+FFFD, runs of spaces become one, and the result
// is cut at a character boundary to at most max bytes (max <= 0: no cut).
func Line(s string, max int) string {
	var b strings.Builder
	space := true // drop leading spaces
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Bidi_Control, r), r == '\u200b', r == '\ufeff', r == '\u2060':
			continue
		case unicode.IsControl(r), unicode.IsSpace(r), unicode.In(r, unicode.Zl, unicode.Zp):
			if !space {
				b.WriteByte(' ')
				space = true
			}
			continue
		}
		b.WriteRune(r) // invalid UTF-8 arrives as U+FFFD
		space = false
		if max > 0 && b.Len() > max+utf8.UTFMax {
			break
		}
	}
	out := strings.TrimRight(b.String(), " ")
	if max > 0 && len(out) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = strings.TrimRight(out[:cut], " ")
	}
	return out
}
