package refresher

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// printable makes text from outside — a registry's error body, an API server's message, an
// annotation or env value — one printable line: every rune a terminal or a viewer acts on
// (Unicode Cc, Cf, Zl, Zp: newlines, ESC, DEL, C1 controls, bidi overrides, zero-width marks)
// is escaped as JSON escapes it (\n, \r, \t, \u001b, \u202e; a surrogate pair beyond U+FFFF) and
// invalid UTF-8 becomes U+FFFD. A backslash is kept, so JSON text stays valid and decodes to the
// same values; other text reads the same, its controls visible.
func printable(s string) string {
	if strings.IndexFunc(s, escaped) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s { // an invalid byte ranges as utf8.RuneError, U+FFFD
		if !escaped(r) {
			b.WriteRune(r)
			continue
		}
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r > 0xffff {
				hi, lo := utf16.EncodeRune(r)
				fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		}
	}
	return b.String()
}

// escaped reports whether printable escapes r.
func escaped(r rune) bool {
	return r < ' ' || r >= 0x7f && unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}
