package contract

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
)

// rendered cuts an inline stream on "---" lines into objects, as a caller hands them over.
func rendered(t *testing.T, stream string) []Rendered {
	t.Helper()
	var out []Rendered
	for doc := range strings.SplitSeq(stream, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var header struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := Decode([]byte(doc), &header); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		raw := []byte(doc)
		out = append(out, Rendered{
			APIVersion: header.APIVersion, Kind: header.Kind, Namespace: header.Metadata.Namespace, Name: header.Metadata.Name,
			Source: "client/templates/" + strings.ToLower(header.Kind) + ".yaml",
			Decode: func(into any) error { return Decode(raw, into) },
		})
	}
	return out
}

const (
	// legacyRefresh is the chart's own refresh CronJob (the seed's), with its RBAC.
	legacyRefresh = `
apiVersion: batch/v1
kind: CronJob
metadata: {name: stg-refresh, namespace: tracebloc, labels: {app: image-refresh}}
spec:
  schedule: "*/15 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          serviceAccountName: stg-refresh
          containers: [{name: kubectl, image: bitnami/kubectl, args: [rollout, restart, deployment/stg-jobs-manager]}]
`
	legacyRole = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: stg-refresh, namespace: tracebloc}
rules:
- {apiGroups: [apps], resources: [deployments], resourceNames: [stg-jobs-manager, stg-pods-monitor], verbs: ` +
		`[get, patch]}
`
	legacyBinding = `
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: stg-refresh, namespace: tracebloc}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: stg-refresh}
subjects: [{kind: ServiceAccount, name: stg-refresh}]
`
	// backupJob is a Job of the chart running as the default ServiceAccount.
	backupJob = `
apiVersion: batch/v1
kind: Job
metadata: {name: stg-backup, namespace: tracebloc}
spec:
  template:
    spec:
      containers: [{name: backup, image: example.com/backup:1}]
`
)

func job(name, sa, image, args string) string {
	return "apiVersion: batch/v1\nkind: Job\nmetadata: {name: " + name +
		", namespace: tracebloc}\nspec:\n  template:\n    spec:\n" +
		"      serviceAccountName: " + sa + "\n      containers: [{name: c, image: " + image + ", args: " + args + "}]\n"
}

func roleBinding(kind, name, roleKind, role, subjects string) string {
	ns := "\n  namespace: tracebloc"
	if kind == "ClusterRoleBinding" {
		ns = ""
	}
	return "apiVersion: rbac.authorization.k8s.io/v1\nkind: " + kind + "\nmetadata:\n  name: " + name + ns +
		"\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: " + roleKind + ", name: " + role + "}\nsubjects: " +
		subjects + "\n"
}

func TestCheckWriters(t *testing.T) {
	jobsManager := config.TargetKey{Kind: config.KindDeployment, Namespace: "tracebloc", Name: "stg-jobs-manager"}
	podsMonitor := config.TargetKey{Namespace: "tracebloc", Name: "stg-pods-monitor"}
	clusterRole := func(rule string) string {
		return "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: deployer}\nrules: [" + rule +
			"]\n"
	}
	for _, tc := range []struct {
		name    string
		stream  string
		targets []config.TargetKey
		// want is one "rule index" per violation, in order, and contains what each message says.
		want     []string
		contains []string
	}{
		{name: "the chart's own refresh CronJob left on", stream: legacyRefresh + "\n---\n" + legacyRole + "\n---\n" +
			legacyBinding,
			targets: []config.TargetKey{jobsManager, podsMonitor, jobsManager},
			want:    []string{"second-writer 0"},
			contains: []string{"CronJob tracebloc/stg-refresh runs as ServiceAccount tracebloc/stg-refresh, which may write " +
				"Deployment tracebloc/stg-jobs-manager, Deployment tracebloc/stg-pods-monitor (patch through Role " +
				"tracebloc/stg-refresh bound by RoleBinding tracebloc/stg-refresh)",
				"likely the chart's own refresh CronJob", "the chart value that renders client/templates/cronjob.yaml"}},
		{name: "a Role limited to other Deployments grants nothing", stream: legacyRefresh + "\n---\n" + legacyRole +
			"\n---\n" + legacyBinding,
			targets: []config.TargetKey{{Namespace: "tracebloc", Name: "stg-api"}}},
		{name: "get only is no write", stream: backupJob + "\n---\n" + roleBinding("RoleBinding", "b", "Role", "r",
			"[{kind: ServiceAccount, name: default}]") +
			"---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: tracebloc}\n" +
			"rules: [{apiGroups: [apps], resources: [deployments], verbs: [get, list, watch]}]\n",
			targets: []config.TargetKey{jobsManager}},
		{name: "the default ServiceAccount bound to edit", stream: backupJob + "\n---\n" + roleBinding("RoleBinding", "b",
			"ClusterRole", "edit", "[{kind: ServiceAccount, name: default, namespace: tracebloc}]"),
			targets: []config.TargetKey{jobsManager},
			want:    []string{"second-writer 0"},
			contains: []string{"Job tracebloc/stg-backup runs as ServiceAccount tracebloc/default, which may write Deployment " +
				"tracebloc/stg-jobs-manager (patch, update through ClusterRole edit bound by RoleBinding tracebloc/b)",
				"the chart value that renders client/templates/job.yaml"}},
		{name: "a RoleBinding in another namespace grants nothing there", stream: backupJob + "\n---\n" +
			strings.Replace(roleBinding("RoleBinding", "b", "ClusterRole", "edit", "[{kind: ServiceAccount, name: default, "+
				"namespace: tracebloc}]"), "namespace: tracebloc\nroleRef", "namespace: other\nroleRef", 1),
			targets: []config.TargetKey{jobsManager}},
		{name: "a ClusterRoleBinding of a wildcard ClusterRole, by user name", stream: job("deployer", "ci",
			"example.com/ci:1", "[deploy]") + "\n---\n" + clusterRole("{apiGroups: ['*'], resources: ['*'], verbs: ['*']}") +
			"\n---\n" +
			roleBinding("ClusterRoleBinding", "deployer", "ClusterRole", "deployer",
				"[{kind: User, name: 'system:serviceaccount:tracebloc:ci'}]"),
			targets:  []config.TargetKey{jobsManager},
			want:     []string{"second-writer 0"},
			contains: []string{"(* through ClusterRole deployer bound by ClusterRoleBinding deployer)"}},
		{name: "a group of every ServiceAccount", stream: job("deployer", "ci", "example.com/ci:1", "[deploy]") + "\n---\n" +
			clusterRole("{apiGroups: [apps], resources: [deployments], verbs: [update]}") + "\n---\n" +
			roleBinding("ClusterRoleBinding", "deployer", "ClusterRole", "deployer",
				"[{kind: Group, name: 'system:serviceaccounts:tracebloc'}]"),
			targets: []config.TargetKey{jobsManager},
			want:    []string{"second-writer 0"}},
		{name: "resourceNames of another Deployment", stream: job("deployer", "ci", "example.com/ci:1", "[deploy]") +
			"\n---\n" + clusterRole("{apiGroups: [apps], resources: [deployments], resourceNames: [x], verbs: [patch]}") +
			"\n---\n" +
			roleBinding("ClusterRoleBinding", "deployer", "ClusterRole", "deployer",
				"[{kind: ServiceAccount, name: ci, namespace: tracebloc}]"),
			targets: []config.TargetKey{jobsManager}},
		{name: "another API group", stream: job("deployer", "ci", "example.com/ci:1", "[deploy]") + "\n---\n" +
			clusterRole("{apiGroups: [extensions], resources: [deployments], verbs: [patch]}") + "\n---\n" +
			roleBinding("ClusterRoleBinding", "deployer", "ClusterRole", "deployer",
				"[{kind: ServiceAccount, name: ci, namespace: tracebloc}]"),
			targets: []config.TargetKey{jobsManager}},
		{name: "a subject of another namespace", stream: job("deployer", "ci", "example.com/ci:1", "[deploy]") + "\n---\n" +
			clusterRole("{apiGroups: [apps], resources: [deployments], verbs: [patch]}") + "\n---\n" +
			roleBinding("ClusterRoleBinding", "deployer", "ClusterRole", "deployer",
				"[{kind: ServiceAccount, name: ci, namespace: other}]"),
			targets: []config.TargetKey{jobsManager}},
		{name: "without namespaces everything is the release namespace",
			stream:  strings.ReplaceAll(legacyRefresh+"---"+legacyRole+"---"+legacyBinding, ", namespace: tracebloc", ""),
			targets: []config.TargetKey{{Name: "stg-jobs-manager"}},
			want:    []string{"second-writer 0"}},
		{name: "helm upgrade without the post-renderer", stream: job("auto-upgrade", "upgrader", "alpine/helm:3.18",
			"[upgrade, stg, tracebloc/client, --reset-then-reuse-values]") + "\n---\n" +
			roleBinding("RoleBinding", "b", "ClusterRole", "cluster-admin", "[{kind: ServiceAccount, name: upgrader}]"),
			targets: []config.TargetKey{jobsManager},
			want:    []string{"in-cluster-upgrade 0"},
			contains: []string{`Job tracebloc/auto-upgrade runs helm upgrade in the cluster without --post-renderer ` +
				`(container "c", image alpine/helm:3.18: upgrade stg tracebloc/client --reset-then-reuse-values)`,
				"the chart value that renders client/templates/job.yaml"}},
		{name: "helm in a shell script", stream: job("auto-upgrade", "upgrader", "example.com/tools:1",
			"['/bin/sh', '-c', 'helm repo update && helm upgrade stg tracebloc/client']"),
			want: []string{"in-cluster-upgrade 0"}},
		{name: "helm upgrade with the post-renderer", stream: job("auto-upgrade", "upgrader", "alpine/helm:3.18",
			"[upgrade, stg, c, --post-renderer, image-refresh]") + "\n---\n" +
			roleBinding("RoleBinding", "b", "ClusterRole", "cluster-admin", "[{kind: ServiceAccount, name: upgrader}]"),
			targets: []config.TargetKey{jobsManager}},
		{name: "helm without upgrade", stream: job("lint", "default", "alpine/helm:3.18", "[lint, .]")},
		{name: "an object that does not decode grants nothing", stream: backupJob + "\n---\n" + roleBinding("RoleBinding",
			"b", "ClusterRole", "edit", "oops"),
			targets: []config.TargetKey{jobsManager}},
		{name: "a Job of another API group is no workload", stream: strings.Replace(backupJob, "batch/v1", "example.com/v1",
			1) + "\n---\n" + roleBinding("RoleBinding", "b", "ClusterRole", "edit", "[{kind: ServiceAccount, name: default}]"),
			targets: []config.TargetKey{jobsManager}},
		{name: "both rules, in stream order", stream: job("auto-upgrade", "upgrader", "alpine/helm:3.18", "[upgrade]") +
			"\n---\n" + legacyRefresh + "\n---\n" + legacyRole + "\n---\n" + legacyBinding,
			targets: []config.TargetKey{jobsManager},
			want:    []string{"in-cluster-upgrade 0", "second-writer 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := CheckWriters(rendered(t, tc.stream), tc.targets)
			var rules []string
			for _, v := range got {
				rules = append(rules, fmt.Sprintf("%s %d", v.Rule, v.Index))
			}
			if strings.Join(rules, "; ") != strings.Join(tc.want, "; ") {
				t.Fatalf("got %q; want %q\n%v", rules, tc.want, got)
			}
			for _, v := range got {
				t.Log(v.Message)
			}
			for _, want := range tc.contains {
				if !strings.Contains(got[0].Message, want) && (len(got) < 2 || !strings.Contains(got[1].Message, want)) {
					t.Errorf("message %q does not contain %q", got[0].Message, want)
				}
			}
		})
	}
}
