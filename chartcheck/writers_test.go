package chartcheck

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/tracebloc/image-refresh/postrender"
)

// legacyRefresh is a chart's own refresh CronJob with RBAC that patches the target, as the
// tracebloc chart renders it; next to the injected refresher it is a second writer.
const legacyRefresh = `---
# Source: client/templates/image-refresh-cronjob.yaml
apiVersion: batch/v1
kind: CronJob
metadata: {name: stg-refresh-script, namespace: tracebloc}
spec:
  schedule: "7,22,37,52 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: stg-refresh-script
          containers: [{name: refresh, image: alpine/k8s:1.30.5, command: [/bin/sh, -c, kubectl set image ` +
	`deployment/stg-jobs-manager api=x]}]
---
# Source: client/templates/image-refresh-cronjob.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: stg-refresh-script, namespace: tracebloc}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [get, list, patch, watch]}]
---
# Source: client/templates/image-refresh-cronjob.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: stg-refresh-script, namespace: tracebloc}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: stg-refresh-script}
subjects: [{kind: ServiceAccount, name: stg-refresh-script, namespace: tracebloc}]
`

// autoUpgrade is a chart's in-cluster self-upgrade, run as admin.
const autoUpgrade = `---
# Source: client/templates/auto-upgrade.yaml
apiVersion: batch/v1
kind: CronJob
metadata: {name: stg-auto-upgrade, namespace: tracebloc}
spec:
  schedule: "23 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: stg-auto-upgrade
          containers: [{name: helm, image: alpine/helm:3.16.4, command: [helm], args: [upgrade, stg, ` +
	`tracebloc/client, --reset-then-reuse-values]}]
---
# Source: client/templates/auto-upgrade.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: stg-auto-upgrade, namespace: tracebloc}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}
subjects: [{kind: ServiceAccount, name: stg-auto-upgrade, namespace: tracebloc}]
`

func TestWritersCheck(t *testing.T) {
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	const (
		secondWriter = `CronJob "stg-refresh-script" (document 11, client/templates/image-refresh-cronjob.yaml): expected ` +
			`no writer of the targets but the refresher's CronJob "stg-image-refresh" (one refresher per target); found ` +
			`CronJob tracebloc/stg-refresh-script runs as ServiceAccount tracebloc/stg-refresh-script, which may write ` +
			`Deployment tracebloc/stg-jobs-manager (patch through Role tracebloc/stg-refresh-script bound by RoleBinding ` +
			`tracebloc/stg-refresh-script): a second writer of the refresher's targets, whose writes end the refresher's ` +
			`rollout tracking (no quarantine, no rollback). Its name or labels say refresh: it is likely the chart's own ` +
			`refresh CronJob. Keep one refresher per target: turn it off in the chart (the chart value that renders ` +
			`client/templates/image-refresh-cronjob.yaml), or take its write access to the targets away`
		upgrade = `CronJob "stg-auto-upgrade" (document 11, client/templates/auto-upgrade.yaml): CronJob ` +
			`tracebloc/stg-auto-upgrade runs helm upgrade in the cluster without --post-renderer (container "helm", image ` +
			`alpine/helm:3.16.4: helm upgrade stg tracebloc/client --reset-then-reuse-values): when it upgrades this release, ` +
			`Helm deletes what the post-renderer injected`
	)
	for _, tc := range []struct {
		name     string
		edits    map[string]string
		appended string
		status   Status
		// want is the finding or the warning.
		want string
	}{
		{name: "the post-renderer's stream", status: StatusPass},
		{name: "the chart's own refresh CronJob left on", appended: legacyRefresh, status: StatusFail, want: secondWriter},
		{
			name:     "its Role reads only",
			appended: strings.Replace(legacyRefresh, "[get, list, patch, watch]", "[get, list, watch]", 1),
			status:   StatusPass,
		},
		{
			name: "its Role names other Deployments",
			appended: strings.Replace(
				legacyRefresh,
				"resources: [deployments],",
				"resources: [deployments], resourceNames: [stg-api],",
				1,
			),
			status: StatusPass,
		},
		{
			name:   "a renamed copy of the refresher is cronjob-presence's",
			status: StatusPass,
			appended: "---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: renamed\n  namespace: tracebloc\n" +
				"  labels: {app.kubernetes.io/managed-by: image-refresh}\nspec:\n  schedule: \"0 * * * *\"\n" +
				"  jobTemplate: {spec: {template: {spec: {serviceAccountName: stg-image-refresh, containers: [{name: x, image: " +
				"busybox:1}]}}}}\n",
		},
		{
			name:     "an in-cluster helm upgrade while the refresher is injected",
			appended: autoUpgrade,
			status:   StatusWarn,
			want:     upgrade,
		},
		{
			name: "an in-cluster helm upgrade with the post-renderer",
			appended: strings.Replace(
				autoUpgrade,
				"--reset-then-reuse-values]",
				"--reset-then-reuse-values, --post-renderer, image-refresh]",
				1,
			),
			status: StatusPass,
		},
		{name: "an in-cluster helm upgrade while the chart renders the refresher", appended: autoUpgrade, status: StatusPass,
			edits: map[string]string{
				"---\napiVersion: batch/v1\nkind: CronJob\n": "---\n# Source: " +
					"client/charts/image-refresh/templates/cronjob.yaml\napiVersion: batch/v1\nkind: CronJob\n",
			}},
		{
			name:     "a second writer fails whatever else warns",
			appended: legacyRefresh + autoUpgrade,
			status:   StatusFail,
			want:     secondWriter,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, results := editStream(t, slices.Concat(valid, []byte(tc.appended)), tc.edits, "")
			r := resultOf(results, writersCheck)
			if r.Status != tc.status {
				t.Fatalf("status %s; want %s (findings %q, warning %q)", r.Status, tc.status, got, r.Warning)
			}
			switch tc.status {
			case StatusFail:
				if len(r.Findings) != 1 || r.Findings[0].String() != tc.want {
					t.Errorf("findings:\n  %v\nwant:\n  %s", r.Findings, tc.want)
				}
			case StatusWarn:
				if !strings.HasPrefix(r.Warning, tc.want) {
					t.Errorf("warning:\n  %s\nwant it to start with:\n  %s", r.Warning, tc.want)
				}
			}
		})
	}
}

// TestWritersOnTheTraceblocLikeChart renders the fixture that reproduces the real chart, with
// its config given as --config: with the chart's refresh CronJob on, the post-renderer refuses
// and names the template; off, the self-upgrade warns; both off, nothing is said.
func TestWritersOnTheTraceblocLikeChart(t *testing.T) {
	ch, cfg := traceblocLike(t)
	for _, tc := range []struct {
		name                 string
		refresh, autoUpgrade bool
		// carries: the chart renders the refresh objects itself (charts/image-refresh: what
		// postrender objects writes), which survive its in-cluster upgrade.
		carries bool
		refusal string
		status  Status
		warning string
	}{
		{name: "defaults", refresh: true, autoUpgrade: true,
			refusal: `refused (second-writer): refresh config "rel-refresher": document 10, ` +
				`tracebloc-like/templates/image-refresh-cronjob.yaml: CronJob tb/rel-image-refresh runs as ServiceAccount ` +
				`tb/rel-image-refresh, which may write Deployment tb/rel-jobs-manager (patch through Role tb/rel-image-refresh ` +
				`bound by RoleBinding tb/rel-image-refresh)`},
		{name: "the chart's refresh CronJob off", autoUpgrade: true, status: StatusWarn,
			warning: `CronJob "rel-auto-upgrade" (document 6, tracebloc-like/templates/auto-upgrade-cronjob.yaml): CronJob ` +
				`tb/rel-auto-upgrade runs helm upgrade in the cluster without --post-renderer`},
		{name: "both off", status: StatusPass},
		{
			name:        "auto-upgrade on, the chart carries the refresh objects",
			autoUpgrade: true,
			carries:     true,
			status:      StatusPass,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := ch
			if tc.carries {
				objects, err := postrender.Objects(postrender.Options{Config: cfg})
				if err != nil {
					t.Fatal(err)
				}
				if ch, err = loadChart("../testdata/charts/tracebloc-like"); err != nil {
					t.Fatal(err)
				}
				ch.chart.Templates = append(ch.chart.Templates, &chart.File{Name: "templates/image-refresh.yaml", Data: objects})
			}
			values := map[string]any{
				"imageRefresh": map[string]any{"enabled": tc.refresh},
				"autoUpgrade":  map[string]any{"enabled": tc.autoUpgrade},
			}
			out, err := ch.Render(
				context.Background(),
				renderOptions{ReleaseName: "rel", Namespace: "tb", Values: values},
				postrender.New(postrender.Options{Config: cfg}),
			)
			if err != nil {
				t.Fatal(err)
			}
			if tc.refusal != "" {
				findings := postRenderFindings(out.PostRenderErr)
				if out.PostRenderErr == nil || len(findings) != 1 || !strings.HasPrefix(findings[0].Found, tc.refusal) {
					t.Fatalf("post-render findings %v; want one starting %q", findings, tc.refusal)
				}
				return
			}
			if out.PostRenderErr != nil {
				t.Fatalf("refused: %v", out.PostRenderErr)
			}
			s, err := parseStream(out.Output)
			if err != nil {
				t.Fatal(err)
			}
			s.DefaultNamespace("tb")
			r := resultOf(
				checkStream(s, scenarioInput{postRendered: true, chartCarriesRefresher: chartCarriesRefresher(out.Manifest)}),
				writersCheck,
			)
			if r.Status != tc.status || !strings.HasPrefix(r.Warning, tc.warning) {
				t.Errorf(
					"%s: status %s, warning %q, findings %v; want %s, %q",
					writersCheck,
					r.Status,
					r.Warning,
					r.Findings,
					tc.status,
					tc.warning,
				)
			}
		})
	}
}
