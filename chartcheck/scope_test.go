package chartcheck

import (
	"context"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/postrender"
)

// traceblocLike loads testdata/charts/tracebloc-like and its adoption config.
func traceblocLike(t *testing.T) (*loadedChart, *config.RefreshConfig) {
	t.Helper()
	ch, err := loadChart("../testdata/charts/tracebloc-like")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("../testdata/config/tracebloc-like.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return ch, cfg
}

// TestTargetInAnotherNamespace renders the tracebloc-like chart through the post-renderer with its adoption config,
// whose resource-monitor image targets the chart's DaemonSet in namespace tracebloc-node-agents: every check
// passes, and the checks catch a stream whose Role there is missing or grants the wrong resource.
func TestTargetInAnotherNamespace(t *testing.T) {
	ch, cfg := traceblocLike(t)
	values := map[string]any{
		"imageRefresh": map[string]any{"enabled": false},
		"autoUpgrade":  map[string]any{"enabled": false},
	}
	out, err := ch.Render(
		context.Background(),
		renderOptions{ReleaseName: "rel", Namespace: "tb", Values: values},
		postrender.New(postrender.Options{Config: cfg}),
	)
	if err != nil || out.PostRenderErr != nil {
		t.Fatalf("render: %v, %v", err, out.PostRenderErr)
	}
	const role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: rel-refresher\n" +
		"  namespace: tracebloc-node-agents\n"
	if !strings.Contains(string(out.Output), role) {
		t.Fatalf("no Role in tracebloc-node-agents:\n%s", out.Output)
	}
	for _, tc := range []struct {
		name     string
		old, new string
		// want are the findings of the rbac check, as they begin.
		want []string
	}{
		{name: "as rendered"},
		{name: "the Role there dropped", old: role, new: strings.Replace(role, "kind: Role", "kind: ConfigMap", 1),
			want: []string{
				`CronJob "rel-refresher" (document 8): expected Role "rel-refresher" in namespace "tracebloc-node-agents"; found ` +
					`no such Role in the stream`,
			}},
		{
			name: "the Role there grants Deployments",
			old:  "  resources:\n  - daemonsets\n",
			new:  "  resources:\n  - deployments\n",
			want: []string{
				`Role "rel-refresher" (document 9): expected only get and patch on daemonsets.apps with resourceNames ` +
					`[rel-resource-monitor]`,
				`Role "rel-refresher" (document 9): expected get and patch on daemonsets.apps with resourceNames ` +
					`[rel-resource-monitor], and create,get,patch on events.events.k8s.io; found no get or patch on DaemonSet ` +
					`"rel-resource-monitor"`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := string(out.Output)
			if tc.old != "" {
				if strings.Count(stream, tc.old) != 1 {
					t.Fatalf("%q is not in the stream once", tc.old)
				}
				stream = strings.Replace(stream, tc.old, tc.new, 1)
			}
			s, err := parseStream([]byte(stream))
			if err != nil {
				t.Fatal(err)
			}
			s.DefaultNamespace("tb")
			for _, r := range checkStream(s, scenarioInput{postRendered: true}) {
				if r.Name != rbacCheck {
					if len(r.Findings) > 0 {
						t.Errorf("%s: %v", r.Name, r.Findings)
					}
					continue
				}
				if len(r.Findings) != len(tc.want) {
					t.Fatalf("rbac findings %v; want %d", r.Findings, len(tc.want))
				}
				for i, f := range r.Findings {
					if !strings.HasPrefix(f.String(), tc.want[i]) {
						t.Errorf("rbac finding %q; want it to begin %q", f, tc.want[i])
					}
				}
			}
		})
	}
}

// TestPlanGivenConfig: plan --config plans the config given at install time — the tracebloc-like chart renders
// none — with its DaemonSet target in another namespace; with --manifests it is a usage error.
func TestPlanGivenConfig(t *testing.T) {
	report, err := (&Plan{
		ChartPath:  "../testdata/charts/tracebloc-like",
		ConfigPath: "../testdata/config/tracebloc-like.yaml",
		Release:    Release{Name: "rel", Namespace: "tb"},
	}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if report.Config == nil || report.Config.Name != "rel-refresher" || len(report.Images) != 4 {
		t.Fatalf("plan %+v; want the given config's 4 images", report)
	}
	last := report.Images[3]
	if want := (config.Target{Kind: config.KindDaemonSet, Name: "rel-resource-monitor", Namespace: "tracebloc-node-agents",
		Container: "tracebloc-resource-monitor"}); last.Target != want || last.Head == nil {
		t.Errorf("resource-monitor planned as %+v", last)
	}
	_, err = (&Plan{ManifestsPath: "-", ConfigPath: "../testdata/config/tracebloc-like.yaml"}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--config does not apply") {
		t.Errorf("plan --manifests --config: %v", err)
	}
}
