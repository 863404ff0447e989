package postrender

import (
	"strings"
	"testing"
)

// legacyRefresh is a chart's own refresh CronJob (as the seed's chart renders it) with a Role
// and RoleBinding that let it patch web: left on next to the injected refresher, it is a
// second writer.
const legacyRefresh = `---
# Source: app/templates/image-refresh-cronjob.yaml
apiVersion: batch/v1
kind: CronJob
metadata:
  name: app-image-refresh
  labels: {app.kubernetes.io/component: image-refresh}
spec:
  schedule: "*/15 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: app-image-refresh
          restartPolicy: Never
          containers:
          - name: refresh
            image: bitnami/kubectl:1.33
            args: [rollout, restart, deployment/web]
---
# Source: app/templates/image-refresh-rbac.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: app-image-refresh
rules:
- apiGroups: [apps]
  resources: [deployments]
  resourceNames: [web]
  verbs: [get, patch]
---
# Source: app/templates/image-refresh-rbac.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: app-image-refresh
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: app-image-refresh}
subjects:
- kind: ServiceAccount
  name: app-image-refresh
`

// selfUpgrade is a chart's auto-upgrade CronJob: helm upgrade in the cluster, as cluster-admin.
const selfUpgrade = `---
# Source: app/templates/auto-upgrade.yaml
apiVersion: batch/v1
kind: CronJob
metadata:
  name: app-auto-upgrade
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: app-upgrader
          restartPolicy: Never
          containers:
          - name: upgrade
            image: alpine/helm:3.18.4
            args: [upgrade, app, tracebloc/client, --reset-then-reuse-values]
---
# Source: app/templates/auto-upgrade.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: app-upgrader
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {kind: ServiceAccount, name: app-upgrader, namespace: tracebloc}
`

func TestSecondWriterRefused(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		contains []string
	}{{
		name: "the chart's own refresh CronJob left on",
		in:   floatingConfig + webDeployment(floatingContainer) + legacyRefresh,
		contains: []string{
			`refresh config "app-refresh": document 3, app/templates/image-refresh-cronjob.yaml: CronJob app-image-refresh ` +
				`runs as ServiceAccount app-image-refresh, which may write Deployment web (patch through Role app-image-refresh ` +
				`bound by RoleBinding app-image-refresh)`,
			"likely the chart's own refresh CronJob",
			"turn it off in the chart (the chart value that renders app/templates/image-refresh-cronjob.yaml)",
		},
	}, {
		name: "Helm 4 names the template by its filename annotation",
		in: floatingConfig + webDeployment(floatingContainer) + strings.Replace(legacyRefresh,
			"  labels: {app.kubernetes.io/component: image-refresh}\n",
			"  annotations: {postrenderer.helm.sh/postrender-filename: app/templates/legacy.yaml}\n", 1),
		contains: []string{"document 3, app/templates/legacy.yaml: CronJob app-image-refresh",
			"the chart value that renders app/templates/legacy.yaml"},
	}, {
		name: "a Job whose default ServiceAccount is bound to edit",
		in: floatingConfig + webDeployment(floatingContainer) + `---
# Source: app/templates/migrate.yaml
apiVersion: batch/v1
kind: Job
metadata: {name: app-migrate}
spec:
  template:
    spec:
      containers: [{name: migrate, image: example.com/migrate:1}]
---
# Source: app/templates/migrate.yaml
apiVersion: v1
kind: List
items:
- apiVersion: rbac.authorization.k8s.io/v1
  kind: RoleBinding
  metadata: {name: app-migrate}
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}
  subjects: [{kind: ServiceAccount, name: default}]
`,
		contains: []string{"Job app-migrate runs as ServiceAccount default, which may write Deployment web (patch, update " +
			"through ClusterRole edit bound by RoleBinding app-migrate)"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render([]byte(tc.in), Options{})
			if out != nil {
				t.Errorf("output written although refused:\n%s", out)
			}
			refusals := Refusals(err)
			if len(refusals) != 1 || refusals[0].Reason != ReasonSecondWriter {
				t.Fatalf("refusals = %v; want one %s (err: %v)", refusals, ReasonSecondWriter, err)
			}
			for _, want := range tc.contains {
				if !strings.Contains(refusals[0].Message, want) {
					t.Errorf("message %q\ndoes not contain %q", refusals[0].Message, want)
				}
			}
		})
	}
}

func TestNotASecondWriter(t *testing.T) {
	for _, tc := range []struct{ name, in string }{{
		name: "its RBAC names another Deployment",
		in: floatingConfig + webDeployment(floatingContainer) + strings.Replace(legacyRefresh, "resourceNames: [web]",
			"resourceNames: [api]", 1),
	}, {
		name: "its RBAC only reads",
		in: floatingConfig + webDeployment(floatingContainer) + strings.Replace(legacyRefresh, "verbs: [get, patch]",
			"verbs: [get, list, watch]", 1),
	}, {
		name: "its RoleBinding binds another ServiceAccount",
		in: floatingConfig + webDeployment(floatingContainer) + strings.Replace(legacyRefresh,
			"- kind: ServiceAccount\n  name: app-image-refresh\n", "- kind: ServiceAccount\n  name: someone-else\n", 1),
	}, {
		name: "every image pinned: nothing is injected, nothing checked",
		in:   refreshConfigMap(refreshBody(pinnedDigest, pinnedDigest)) + webDeployment(floatingContainer) + legacyRefresh,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Render([]byte(tc.in), Options{}); err != nil {
				t.Fatalf("Render: %v", err)
			}
		})
	}
}

// TestOwnCronJobIsNoSecondWriter: on its own output the post-renderer rebuilds its CronJob and
// RBAC; the earlier ones are not a second writer.
func TestOwnCronJobIsNoSecondWriter(t *testing.T) {
	in := floatingConfig + webDeployment(floatingContainer)
	once, err := Render([]byte(in), Options{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	twice, err := Render(once, Options{})
	if err != nil {
		t.Fatalf("Render of its own output: %v", err)
	}
	if string(twice) != string(once) {
		t.Errorf("not idempotent:\n%s\n---- vs ----\n%s", twice, once)
	}
}

// TestInClusterUpgradeWarns: a chart that runs helm upgrade in the cluster without the
// post-renderer is rendered, with a warning; with --post-renderer in its args, without one.
func TestInClusterUpgradeWarns(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string
	}{{
		name: "without --post-renderer",
		in:   floatingConfig + webDeployment(floatingContainer) + selfUpgrade,
		want: `refresh config "app-refresh": document 3, app/templates/auto-upgrade.yaml: CronJob app-auto-upgrade runs ` +
			`helm upgrade in the cluster without --post-renderer (container "upgrade", image alpine/helm:3.18.4: upgrade app ` +
			`tracebloc/client --reset-then-reuse-values): when it upgrades this release, Helm deletes what the ` +
			`post-renderer injected`,
	}, {
		name: "as a shell command",
		in: floatingConfig + webDeployment(floatingContainer) + strings.Replace(selfUpgrade,
			"args: [upgrade, app, tracebloc/client, --reset-then-reuse-values]",
			"command: [/bin/sh, -c, 'helm repo update && helm upgrade app tracebloc/client']", 1),
		want: "CronJob app-auto-upgrade runs helm upgrade in the cluster without --post-renderer",
	}, {
		name: "with --post-renderer",
		in: floatingConfig + webDeployment(floatingContainer) + strings.Replace(selfUpgrade, "--reset-then-reuse-values]",
			"--reset-then-reuse-values, --post-renderer, image-refresh]", 1),
	}, {
		name: "every image pinned: nothing injected, nothing to lose",
		in:   refreshConfigMap(refreshBody(pinnedDigest, pinnedDigest)) + webDeployment(floatingContainer) + selfUpgrade,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var warnings []string
			out, err := Render([]byte(tc.in), Options{Warn: func(m string) { warnings = append(warnings, m) }})
			if err != nil {
				t.Fatalf("Render: %v (the upgrader's cluster-admin makes it no second writer)", err)
			}
			if !strings.HasPrefix(string(out), tc.in) {
				t.Errorf("the release is not passed through")
			}
			switch {
			case tc.want == "" && len(warnings) > 0:
				t.Errorf("warnings %q; want none", warnings)
			case tc.want != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.want)):
				t.Errorf("warnings %q; want one containing %q", warnings, tc.want)
			}
			if _, err := Render([]byte(tc.in), Options{}); err != nil {
				t.Errorf("Render without Warn: %v", err)
			}
		})
	}
}
