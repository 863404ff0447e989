package chartcheck

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/cli/values"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/image-refresh/refresher/config"
)

// The chart's imageRefresh.{waitLimit,rolloutTimeout,platforms,soak} reach the RefreshConfig
// it renders, and the contract accepts them; a pinned image gets no soak (the contract refuses
// one).
func TestChartSafeRefreshValues(t *testing.T) {
	ch, err := loadChart(clientChart)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := mergeValues(values.Options{Values: []string{
		"imageRefresh.waitLimit=6", "imageRefresh.rolloutTimeout=20m", "imageRefresh.soak=30m",
		"imageRefresh.platforms={linux/amd64,linux/arm64}",
		"images.ingestor.digest=sha256:" + strings.Repeat("a", 64),
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ch.Render(context.Background(), renderOptions{ReleaseName: "stg", Namespace: "tracebloc", Values: vals}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg *config.RefreshConfig
	for doc := range strings.SplitSeq(string(got.Manifest), "\n---") {
		var cm struct {
			Kind string            `json:"kind"`
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal([]byte(doc), &cm); err != nil || cm.Kind != "ConfigMap" || cm.Data[config.ConfigMapKey] == "" {
			continue
		}
		if cfg, err = config.Parse([]byte(cm.Data[config.ConfigMapKey])); err != nil {
			t.Fatalf("the rendered config is refused: %v", err)
		}
	}
	if cfg == nil {
		t.Fatalf("no refresh config rendered:\n%s", got.Manifest)
	}
	if cfg.Spec.WaitLimit != 6 || cfg.Spec.RolloutTimeout.D() != 20*time.Minute || !slices.Equal(cfg.Spec.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("spec waitLimit %d, rolloutTimeout %s, platforms %v", cfg.Spec.WaitLimit, cfg.Spec.RolloutTimeout.D(), cfg.Spec.Platforms)
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
