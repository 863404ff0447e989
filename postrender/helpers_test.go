package postrender

import (
	"fmt"
	"strings"
)

// lineDiff shows where two texts first differ, with a few lines of context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		if i < len(w) && i < len(g) && w[i] == g[i] {
			continue
		}
		var b strings.Builder
		for j := max(0, i-3); j < min(i+4, max(len(w), len(g))); j++ {
			if j < len(w) {
				fmt.Fprintf(&b, "want %4d | %s\n", j+1, w[j])
			}
			if j < len(g) {
				fmt.Fprintf(&b, "got  %4d | %s\n", j+1, g[j])
			}
		}
		return b.String()
	}
	return "(no line differs)"
}
