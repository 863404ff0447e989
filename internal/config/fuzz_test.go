package config

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: the parser never panics on any input; what it accepts is valid, and survives
// Marshal → Parse unchanged (the post-renderer writes the config it read into a ConfigMap, the
// refresher reads that one).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		withImages(restartImage, setEnvImage),
		withImages(restartImage) + "  waitLimit: 2\n",
		withImages(strings.Replace(setEnvImage, "annotation:", "soak: 90m, annotation:", 1)) +
			"  platforms: [linux/amd64, linux/arm/v7]\n  rolloutTimeout: 20m\n",
		withJob(`{image: "ghcr.io/x/y:v1", resources: {limits: {memory: 64Mi}}}`),
		header + "spec:\n  images: []\n",
		"", "---\n", "apiVersion: [", "a: &a [*a]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Parse returned a config with the error %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		out, err := cfg.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(cfg)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(cfg, again) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", cfg, again)
		}
	})
}
