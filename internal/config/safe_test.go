package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseSafeKeys(t *testing.T) {
	soaked := strings.Replace(setEnvImage, "annotation:", "soak: 1h30m, annotation:", 1)
	doc := withImages(restartImage, soaked) + "  platforms: [linux/amd64, linux/arm64/v8]\n  rolloutTimeout: 20m\n"
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Spec.Images[1].Soak.D(); got != 90*time.Minute {
		t.Errorf("soak = %s, want 1h30m", got)
	}
	if got := cfg.Spec.Images[0].Soak.D(); got != 0 {
		t.Errorf("soak of an image without one = %s, want 0", got)
	}
	if got := cfg.Spec.EffectiveRolloutTimeout(); got != 20*time.Minute {
		t.Errorf("rolloutTimeout = %s, want 20m", got)
	}
	if got := strings.Join(cfg.Spec.Platforms, ","); got != "linux/amd64,linux/arm64/v8" {
		t.Errorf("platforms = %s", got)
	}
	out, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"soak: 1h30m0s", "rolloutTimeout: 20m0s", "- linux/arm64/v8"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, out)
		}
	}
	again, err := Parse(out)
	if err != nil || again.Spec.Images[1].Soak != cfg.Spec.Images[1].Soak ||
		again.Spec.RolloutTimeout != cfg.Spec.RolloutTimeout {
		t.Errorf("round trip: %v %+v", err, again)
	}

	plain, err := Parse([]byte(withImages(restartImage)))
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.Spec.EffectiveRolloutTimeout(); got != DefaultRolloutTimeout {
		t.Errorf("default rolloutTimeout = %s, want %s", got, DefaultRolloutTimeout)
	}
	if plain.Spec.Platforms != nil || plain.Spec.RolloutTimeout != 0 {
		t.Errorf("defaults wrote platforms %v / rolloutTimeout %s, want neither", plain.Spec.Platforms,
			plain.Spec.RolloutTimeout)
	}
}

func TestParseSafeKeysRejects(t *testing.T) {
	withSoak := func(soak string) string {
		return withImages(strings.Replace(restartImage, "annotation:", "soak: "+soak+", annotation:", 1))
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"platform without arch", withImages(restartImage) + "  platforms: [linux]\n",
			`spec.platforms[0] "linux": must be "os/arch"`},
		{"platform with four parts", withImages(restartImage) + "  platforms: [linux/arm/v7/x]\n",
			`spec.platforms[0] "linux/arm/v7/x"`},
		{"platform with an empty part", withImages(restartImage) + "  platforms: [linux//v7]\n", `without empty parts`},
		{"duplicate platform", withImages(restartImage) + "  platforms: [linux/amd64, linux/amd64]\n",
			`spec.platforms[1] "linux/amd64": duplicate of spec.platforms[0]`},
		{"rolloutTimeout too short", withImages(restartImage) + "  rolloutTimeout: 30s\n",
			"spec.rolloutTimeout 30s: must be at least 1m"},
		{"rolloutTimeout negative", withImages(restartImage) + "  rolloutTimeout: -5m\n", "spec.rolloutTimeout -5m0s"},
		{"rolloutTimeout without unit", withImages(restartImage) + "  rolloutTimeout: 900\n", `duration "900"`},
		{"soak negative", withSoak("-1m"), "(jobs-manager).soak -1m0s: must be between 0 and 168h0m0s"},
		{"soak too long", withSoak("200h"), "(jobs-manager).soak 200h0m0s"},
		{"soak not a duration", withSoak("soon"), `duration "soon"`},
		{"soak as a list", withSoak("[1m]"), "duration must be text"},
		{"soak of a pinned image", withImages(strings.Replace(restartImage, "annotation:",
			"digest: "+digest+", soak: 1m, annotation:", 1)), "a pinned image is never polled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err == nil || cfg != nil {
				t.Fatalf("Parse accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Duration
		wantErr bool
	}{
		{`"15m"`, Duration(15 * time.Minute), false},
		{`"0s"`, 0, false},
		{`900`, 0, true},
		{`"later"`, 0, true},
	} {
		var d Duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err != nil) != tc.wantErr || d != tc.want {
			t.Errorf("Unmarshal(%s) = %s, %v; want %s (error %t)", tc.in, d, err, tc.want, tc.wantErr)
		}
	}
	out, err := json.Marshal(Duration(90 * time.Second))
	if err != nil || string(out) != `"1m30s"` {
		t.Errorf("Marshal = %s, %v; want \"1m30s\"", out, err)
	}
}

// spec.waitTimeout is a duration (default 1h); the deprecated spec.waitLimit converts to its
// ticks of the schedule's longest gap and says so; both at once, or out of range, is an error.
func TestWaitTimeout(t *testing.T) {
	base := "apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\nmetadata: {name: r, namespace: ns}\nspec:\n"
	img := "  images:\n  - {name: web, repository: example.com/web, tag: prod, action: rollout-restart, annotation: " +
		"example.com/web-digest, target: {name: web, container: api}}\n"
	for _, tc := range []struct {
		name, spec string
		want       time.Duration
		deprecated string
		err        string
	}{
		{name: "default", want: time.Hour},
		{name: "waitTimeout", spec: "  waitTimeout: 45m\n", want: 45 * time.Minute},
		{name: "waitLimit on the default schedule", spec: "  waitLimit: 4\n", want: time.Hour, deprecated: "spec.waitLimit " +
			"is deprecated and will be removed: it now reads as spec.waitTimeout 1h0m0s (4 runs of schedule \"7,22,37,52 * * " +
			"* *\", whose longest gap is 15m0s)"},
		{name: "waitLimit on an uneven schedule", spec: "  schedule: \"0 8,20 * * *\"\n  waitLimit: 2\n",
			want: 24 * time.Hour, deprecated: "longest gap is 12h0m0s"},
		{name: "waitLimit capped at a week", spec: "  schedule: \"0 0 * * 1\"\n  waitLimit: 3\n", want: 168 * time.Hour,
			deprecated: "longest gap is 168h0m0s"},
		{name: "waitLimit on a yearly schedule", spec: "  schedule: \"0 0 29 2 *\"\n  waitLimit: 3\n", want: 168 * time.Hour,
			deprecated: "longest gap is 840h0m0s"},
		{name: "both", spec: "  waitLimit: 4\n  waitTimeout: 1h\n",
			err: "spec.waitLimit 4 and spec.waitTimeout 1h0m0s: set one"},
		{name: "too short", spec: "  waitTimeout: 30s\n", err: "spec.waitTimeout 30s: must be between 1m and 168h0m0s"},
		{name: "too long", spec: "  waitTimeout: 200h\n", err: "must be between 1m and 168h0m0s"},
		{name: "negative limit", spec: "  waitLimit: -1\n", err: "spec.waitLimit -1: must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(base + tc.spec + img))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Spec.EffectiveWaitTimeout(); got != tc.want {
				t.Errorf("EffectiveWaitTimeout = %s, want %s", got, tc.want)
			}
			deps := strings.Join(cfg.Deprecations(), "\n")
			if (tc.deprecated == "") != (deps == "") || !strings.Contains(deps, tc.deprecated) {
				t.Errorf("Deprecations = %q, want %q", deps, tc.deprecated)
			}
		})
	}
}
