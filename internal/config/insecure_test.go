package config

import (
	"slices"
	"strings"
	"testing"
)

func TestInsecureRegistries(t *testing.T) {
	for _, tc := range []struct {
		name, list string
		want       []string // accepted as is
		err        string
	}{
		{"unset", "", nil, ""},
		{"empty", "[]", nil, ""},
		{"host and port", "[10.0.0.5:5000, registry.internal, '[fd00::1]:5000']", []string{"10.0.0.5:5000",
			"registry.internal", "[fd00::1]:5000"}, ""},
		{"scheme", "['http://10.0.0.5:5000']", nil, `spec.insecureRegistries[0] "http://10.0.0.5:5000": must be host[:port]`},
		{"path", "[10.0.0.5:5000/team]", nil, `spec.insecureRegistries[0] "10.0.0.5:5000/team": must be host[:port]`},
		{"credentials", "['user@10.0.0.5']", nil, `must be host[:port]`},
		{"port out of range", "[10.0.0.5:70000]", nil, `port must be 1-65535`},
		{"empty entry", "['']", nil, `spec.insecureRegistries[0] "": must be host[:port]`},
		{"Docker Hub alias", "[docker.io]", nil, `image references name this registry "index.docker.io"`},
		{"duplicate, any case", "[Registry.internal:5000, registry.internal:5000]", nil,
			`spec.insecureRegistries[1] "registry.internal:5000": duplicate of spec.insecureRegistries[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := withImages(restartImage)
			if tc.list != "" {
				doc += "  insecureRegistries: " + tc.list + "\n"
			}
			cfg, err := Parse([]byte(doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Spec.InsecureRegistries, tc.want) {
				t.Errorf("insecureRegistries = %q, want %q", cfg.Spec.InsecureRegistries, tc.want)
			}
		})
	}
}
