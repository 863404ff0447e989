package manifest

import "testing"

func TestSource(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"helm 3", "---\n# Source: c/templates/a.yaml\napiVersion: v1\n", "c/templates/a.yaml"},
		{"after other comments and blank lines", "\n# generated\n\n# Source: c/a.yaml \nkind: x\n", "c/a.yaml"},
		{"marker with a comment", "--- # doc\n# Source: c/a.yaml\n", "c/a.yaml"},
		{"below the first content line", "kind: x\n# Source: c/a.yaml\n", ""},
		{"none", "# only a comment\n", ""},
		{"not Helm's spelling", "# Source:c/a.yaml\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Source([]byte(tt.doc)); got != tt.want {
				t.Errorf("Source = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestIsDocumentMarker(t *testing.T) {
	for line, want := range map[string]bool{
		"---": true, "---\n": true, "--- # c\n": true, "---\r\n": true, "--- {a: 1}\n": true,
		"---foo\n": false, " ---\n": false, "--\n": false, "": false,
	} {
		if got := IsDocumentMarker([]byte(line)); got != want {
			t.Errorf("IsDocumentMarker(%q) = %v; want %v", line, got, want)
		}
	}
}

func TestChartFile(t *testing.T) {
	for _, tc := range []struct{ comment, annotation, want string }{
		{"c/templates/a.yaml", "", "c/templates/a.yaml"},
		{"", "c/templates/b.yaml", "c/templates/b.yaml"},
		{"c/templates/a.yaml", "c/templates/b.yaml", "c/templates/b.yaml"}, // Helm 4 files it by the annotation
		{"", "", ""},
	} {
		if got := ChartFile(tc.comment, tc.annotation); got != tc.want {
			t.Errorf("ChartFile(%q, %q) = %q; want %q", tc.comment, tc.annotation, got, tc.want)
		}
	}
}
