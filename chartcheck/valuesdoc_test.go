package chartcheck

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestChartValuesDocumented: every value of charts/client/values.yaml is named in
// charts/client/README.md — as `a.b.c`, in a group `a.b.{c,d}`, or under a wildcard `a.*` —
// and the README names no value the chart lacks.
func TestChartValuesDocumented(t *testing.T) {
	data, err := os.ReadFile("../charts/client/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values yaml.Node
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../charts/client/README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile(
		"`([a-zA-Z][\\w.]*(?:\\{[\\w,]+\\}|\\*)?)`",
	).FindAllStringSubmatch(string(readme), -1) {
		name := m[1]
		if open := strings.Index(name, "{"); open >= 0 {
			for _, leaf := range strings.Split(strings.Trim(name[open:], "{}"), ",") {
				documented[name[:open]+leaf] = true
			}
			continue
		}
		documented[name] = true
	}
	var leaves []string
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		if n.Kind == yaml.DocumentNode {
			walk(prefix, n.Content[0])
			return
		}
		if n.Kind != yaml.MappingNode || len(n.Content) == 0 || prefix != "" && strings.Count(prefix, ".") >= 2 {
			leaves = append(leaves, prefix)
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			walk(key, n.Content[i+1])
		}
	}
	walk("", &values)
	if len(leaves) < 10 {
		t.Fatalf("read %d values from values.yaml; is the walk right?", len(leaves))
	}
	for _, leaf := range leaves {
		covered := documented[leaf]
		for p := leaf; !covered && p != ""; {
			i := strings.LastIndex(p, ".")
			if i < 0 {
				break
			}
			p = p[:i]
			covered = documented[p] || documented[p+".*"]
		}
		if !covered {
			t.Errorf("value %s is not documented in charts/client/README.md", leaf)
		}
	}
	for _, top := range []string{"images", "imageRefresh", "serviceAccount", "api", "podsMonitor", "service"} {
		if !slices.ContainsFunc(leaves, func(l string) bool { return strings.HasPrefix(l, top+".") || l == top }) {
			t.Errorf("README documents %s, which values.yaml lacks", top)
		}
	}
}
