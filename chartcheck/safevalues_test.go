package chartcheck

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/cli/values"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/image-refresh/internal/config"
)

// The chart's imageRefresh.{waitLimit,rolloutTimeout,platforms,soak} reach the RefreshConfig
// it renders, and the contract accepts them; a pinned image gets no soak (the contract refuses
// one).
func TestChartSafeRefreshValues(t *testing.T) {
	_, cfg := renderClientConfig(t,
		"imageRefresh.waitLimit=6", "imageRefresh.rolloutTimeout=20m", "imageRefresh.soak=30m",
		"imageRefresh.platforms={linux/amd64,linux/arm64}",
		"images.ingestor.digest=sha256:"+strings.Repeat("a", 64),
	)
	if cfg.Spec.WaitLimit != 6 || cfg.Spec.RolloutTimeout.D() != 20*time.Minute ||
		!slices.Equal(cfg.Spec.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf(
			"spec waitLimit %d, rolloutTimeout %s, platforms %v",
			cfg.Spec.WaitLimit,
			cfg.Spec.RolloutTimeout.D(),
			cfg.Spec.Platforms,
		)
	}
	for _, img := range cfg.Spec.Images {
		want := 30 * time.Minute
		if img.Pinned() {
			want = 0
		}
		if img.Soak.D() != want {
			t.Errorf("image %s soak %s, want %s", img.Name, img.Soak.D(), want)
		}
	}
}

// The chart's imageRefresh.verification and images.*.verify reach the RefreshConfig, and
// publicKeys the keys ConfigMap it names; keysConfigMap names an existing one instead.
func TestChartVerificationValues(t *testing.T) {
	ch, err := loadChart(clientChart)
	if err != nil {
		t.Fatal(err)
	}
	pinned := "images.jobsManager.digest=sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		name       string
		opts       values.Options
		keys       string
		renderKeys bool
		// exempt are the images rendered with verify: false.
		exempt []string
	}{
		{name: "public keys", keys: "stg-image-refresh-keys", renderKeys: true, exempt: []string{"pods-monitor"},
			opts: values.Options{
				ValueFiles: []string{clientChart + "/ci/verification.yaml"},
				Values: []string{
					"images.podsMonitor.verify=false", "images.ingestor.verify=true", pinned, "images.jobsManager.verify=false",
				},
			}},
		{name: "an existing ConfigMap", keys: "signing-keys",
			opts: values.Options{Values: []string{"imageRefresh.verification.keysConfigMap=signing-keys"}}},
		{
			name:   "no gate",
			opts:   values.Options{Values: []string{"images.ingestor.verify=false"}},
			exempt: []string{"ingestor"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := mergeValues(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ch.Render(
				context.Background(),
				renderOptions{ReleaseName: "stg", Namespace: "tracebloc", Values: vals},
				nil,
			)
			if err != nil {
				t.Fatal(err)
			}
			stream, err := parseStream(got.Output)
			if err != nil {
				t.Fatal(err)
			}
			c := &checkedRelease{stream: stream}
			if findings, _ := c.loadConfig(); len(findings) > 0 || c.cfg == nil {
				t.Fatalf("refresh config: %v", findings)
			}
			keys := ""
			if v := c.cfg.Spec.Verification; v != nil {
				keys = v.KeysConfigMap
			}
			if keys != tc.keys {
				t.Errorf("spec.verification.keysConfigMap %q, want %q", keys, tc.keys)
			}
			if tc.renderKeys && c.cfg.Spec.Verification.RecheckAfter.D() != 30*time.Minute {
				t.Errorf(
					"spec.verification.recheckAfter %s, want 30m (ci/verification.yaml)",
					c.cfg.Spec.Verification.RecheckAfter.D(),
				)
			}
			var exempt []string
			for _, img := range c.cfg.Spec.Images {
				if img.Verify != nil {
					if *img.Verify {
						t.Errorf("image %s rendered with verify: true (only false is rendered)", img.Name)
					}
					exempt = append(exempt, img.Name)
				}
			}
			if !slices.Equal(exempt, tc.exempt) {
				t.Errorf("images with verify: false %q, want %q", exempt, tc.exempt)
			}
			docs := stream.Find("ConfigMap", "tracebloc", "stg-image-refresh-keys")
			if len(docs) > 0 != tc.renderKeys {
				t.Fatalf("keys ConfigMap rendered: %v, want %v", len(docs) > 0, tc.renderKeys)
			}
			if tc.renderKeys {
				if err := parseKeys(docs[0]); err != nil {
					t.Errorf("rendered keys: %v", err)
				}
			}
		})
	}
}

// renderClientConfig renders charts/client with values (helm --set syntax) and returns the
// manifest and the RefreshConfig it renders (the test fails when none is rendered or refused).
func renderClientConfig(t *testing.T, set ...string) (string, *config.RefreshConfig) {
	t.Helper()
	ch, err := loadChart(clientChart)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := mergeValues(values.Options{Values: set})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ch.Render(
		context.Background(),
		renderOptions{ReleaseName: "stg", Namespace: "tracebloc", Values: vals},
		nil,
	)
	if err != nil {
		t.Fatal(err)
	}
	var cfg *config.RefreshConfig
	for doc := range strings.SplitSeq(string(got.Manifest), "\n---") {
		var cm struct {
			Kind string            `json:"kind"`
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal(
			[]byte(doc),
			&cm,
		); err != nil || cm.Kind != "ConfigMap" || cm.Data[config.ConfigMapKey] == "" {
			continue
		}
		if cfg, err = config.Parse([]byte(cm.Data[config.ConfigMapKey])); err != nil {
			t.Fatalf("the rendered config is refused: %v", err)
		}
	}
	if cfg == nil {
		t.Fatalf("no refresh config rendered:\n%s", got.Manifest)
	}
	return string(got.Manifest), cfg
}
