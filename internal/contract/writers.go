package contract

import (
	"fmt"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// Rendered is one object of a rendered release as the writers rules read it: what identifies
// it, the template it comes from, and how to decode it.
type Rendered struct {
	APIVersion, Kind, Namespace, Name string
	// Source is the template that renders it: Helm 3's "# Source:" path, else Helm 4's
	// postrender-filename annotation; "" when unknown.
	Source string
	// Decode decodes it into a Kubernetes API type as Kubernetes does (Decode, DecodeListItem).
	Decode func(into any) error
}

// ObjectViolation is a broken rule about objects[Index] of the slice a check was given.
type ObjectViolation struct {
	Index int
	*Violation
}

// policyRule, roleRef and subject are the fields of rbac.authorization.k8s.io/v1 this rule reads;
// k8s.io/api/rbac/v1 is not linked, so the refresher binary (which links this package) stays small.
type policyRule struct {
	APIGroups     []string `json:"apiGroups"`
	Resources     []string `json:"resources"`
	ResourceNames []string `json:"resourceNames"`
	Verbs         []string `json:"verbs"`
}

type roleRef struct {
	APIGroup string `json:"apiGroup"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
}

type subject struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
}

const rbacGroup = "rbac.authorization.k8s.io"

// builtinClusterRoles are the default ClusterRoles that write Deployments (and DaemonSets): a
// binding of one of them needs no ClusterRole in the stream.
var builtinClusterRoles = map[string][]policyRule{
	"cluster-admin": {{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	"admin": {{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments"},
		Verbs: []string{"patch", "update"}}},
	"edit": {{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments"}, Verbs: []string{"patch",
		"update"}}},
}

// writeVerbs are the verbs that can change a target's pod template or annotations.
var writeVerbs = []string{"patch", "update", "*"}

// CheckWriters is the rule "one refresher per target": no workload of the release but the
// refresher may write a floating image's target. objects are the release's objects without the
// refresher's own CronJob; targets are the floating images' resolved targets ("" namespace = the
// release namespace, which matches any, as does an object without a namespace). It reads every
// CronJob and Job (Helm hooks too) and the ServiceAccount its pod runs as (default "default"),
// follows the RoleBindings and ClusterRoleBindings that bind it (as a ServiceAccount, its user
// name or a group it belongs to) to Roles and ClusterRoles of the release or the default
// cluster-admin/admin/edit, and reports each workload granted patch, update or * on a target
// (apps or *, the target's resource or *, resourceNames empty or naming it): RuleSecondWriter.
// A workload whose container runs helm upgrade is not a second refresher but a chart release:
// it is reported as RuleInClusterUpgrade unless it passes --post-renderer. An object that does
// not decode grants nothing (the API server would refuse it) and is skipped.
func CheckWriters(objects []Rendered, targets []config.TargetKey) []ObjectViolation {
	targets = distinctTargets(targets)
	roles, bindings := readRBAC(objects)
	var out []ObjectViolation
	for i, obj := range objects {
		w, ok := readWorkload(obj)
		if !ok {
			continue
		}
		if upgrade, helm := w.helmUpgrade(); helm {
			if upgrade != nil {
				out = append(out, ObjectViolation{Index: i, Violation: upgrade})
			}
			continue
		}
		var covered []config.TargetKey
		var grants []string
		for _, t := range targets {
			g := w.grantsOn(t, roles, bindings)
			if len(g) == 0 {
				continue
			}
			covered = append(covered, t)
			for _, s := range g {
				if !slices.Contains(grants, s) {
					grants = append(grants, s)
				}
			}
		}
		if len(covered) > 0 {
			out = append(out, ObjectViolation{Index: i, Violation: w.secondWriter(covered, grants)})
		}
	}
	return out
}

func distinctTargets(targets []config.TargetKey) []config.TargetKey {
	var out []config.TargetKey
	for _, t := range targets {
		if t.Kind == "" {
			t.Kind = config.KindDeployment
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// anyNamespace matches namespaces where "" (the release namespace, unknown here) matches any.
func anyNamespace(a, b string) bool { return a == "" || b == "" || a == b }

// objectRef names an object: "Kind ns/name", or "Kind name" without a namespace.
func objectRef(kind, namespace, name string) string {
	if namespace == "" {
		return fmt.Sprintf("%s %s", kind, name)
	}
	return fmt.Sprintf("%s %s/%s", kind, namespace, name)
}

// role is a Role or ClusterRole of the release.
type role struct {
	cluster         bool
	namespace, name string
	rules           []policyRule
}

// binding is a RoleBinding or ClusterRoleBinding of the release.
type binding struct {
	cluster         bool
	namespace, name string
	roleRef         roleRef
	subjects        []subject
}

func (b binding) ref() string {
	if b.cluster {
		return objectRef("ClusterRoleBinding", "", b.name)
	}
	return objectRef("RoleBinding", b.namespace, b.name)
}

func readRBAC(objects []Rendered) ([]role, []binding) {
	var roles []role
	var bindings []binding
	for _, obj := range objects {
		switch {
		case IsKind(obj.APIVersion, obj.Kind, "Role"), IsKind(obj.APIVersion, obj.Kind, "ClusterRole"):
			var r struct { // a Role or ClusterRole; aggregationRule is not followed
				Rules []policyRule `json:"rules"`
			}
			if obj.Decode(&r) == nil {
				roles = append(roles, role{cluster: obj.Kind == "ClusterRole", namespace: obj.Namespace, name: obj.Name,
					rules: r.Rules})
			}
		case IsKind(obj.APIVersion, obj.Kind, "RoleBinding"), IsKind(obj.APIVersion, obj.Kind, "ClusterRoleBinding"):
			var b struct { // a RoleBinding or ClusterRoleBinding
				RoleRef  roleRef   `json:"roleRef"`
				Subjects []subject `json:"subjects"`
			}
			if obj.Decode(&b) == nil {
				bindings = append(bindings, binding{cluster: obj.Kind == "ClusterRoleBinding", namespace: obj.Namespace,
					name: obj.Name, roleRef: b.RoleRef, subjects: b.Subjects})
			}
		}
	}
	return roles, bindings
}

// workload is a CronJob or Job of the release with its pod template.
type workload struct {
	obj            Rendered
	labels         map[string]string
	serviceAccount string
	pod            corev1.PodSpec
}

func readWorkload(obj Rendered) (workload, bool) {
	if Group(obj.APIVersion) != "batch" {
		return workload{}, false
	}
	w := workload{obj: obj}
	switch obj.Kind {
	case "CronJob":
		var cj batchv1.CronJob
		if obj.Decode(&cj) != nil {
			return workload{}, false
		}
		w.labels, w.pod = cj.Labels, cj.Spec.JobTemplate.Spec.Template.Spec
	case "Job":
		var job batchv1.Job
		if obj.Decode(&job) != nil {
			return workload{}, false
		}
		w.labels, w.pod = job.Labels, job.Spec.Template.Spec
	default:
		return workload{}, false
	}
	w.serviceAccount = w.pod.ServiceAccountName
	if w.serviceAccount == "" {
		w.serviceAccount = w.pod.DeprecatedServiceAccount //nolint:staticcheck // the API server still honours it
	}
	if w.serviceAccount == "" {
		w.serviceAccount = "default"
	}
	return w, true
}

func (w workload) ref() string { return objectRef(w.obj.Kind, w.obj.Namespace, w.obj.Name) }

func (w workload) serviceAccountRef() string {
	return objectRef("ServiceAccount", w.obj.Namespace, w.serviceAccount)
}

// turnOff is the fix that names the template the workload comes from.
func (w workload) turnOff() string {
	if w.obj.Source == "" {
		return "the chart value that renders it"
	}
	return "the chart value that renders " + w.obj.Source
}

// grantsOn lists how the workload's ServiceAccount may write target t, one per grant: "patch
// through Role ns/r bound by RoleBinding ns/b".
func (w workload) grantsOn(t config.TargetKey, roles []role, bindings []binding) []string {
	var out []string
	for _, b := range bindings {
		if !b.cluster && !anyNamespace(b.namespace, t.Namespace) {
			continue // a RoleBinding grants only in its namespace
		}
		if !slices.ContainsFunc(b.subjects, func(s subject) bool { return w.isSubject(s, b) }) {
			continue
		}
		for _, r := range b.roles(roles) {
			if verbs := writesTarget(r.rules, t); len(verbs) > 0 {
				kind := "Role"
				if r.cluster {
					kind = "ClusterRole"
				}
				out = append(out, fmt.Sprintf("%s through %s bound by %s", strings.Join(verbs, ", "), objectRef(kind, r.namespace,
					r.name), b.ref()))
			}
		}
	}
	return out
}

// roles are the roles a binding's roleRef names: a Role of the binding's namespace (a
// ClusterRoleBinding cannot name one), or a ClusterRole of the release or a default one.
func (b binding) roles(roles []role) []role {
	if b.roleRef.APIGroup != rbacGroup {
		return nil
	}
	var out []role
	switch b.roleRef.Kind {
	case "Role":
		if b.cluster {
			return nil
		}
		for _, r := range roles {
			if !r.cluster && r.name == b.roleRef.Name && anyNamespace(r.namespace, b.namespace) {
				out = append(out, r)
			}
		}
	case "ClusterRole":
		if rules, ok := builtinClusterRoles[b.roleRef.Name]; ok {
			return []role{{cluster: true, name: b.roleRef.Name, rules: rules}}
		}
		for _, r := range roles {
			if r.cluster && r.name == b.roleRef.Name {
				out = append(out, r)
			}
		}
	}
	return out
}

// isSubject reports whether the workload's ServiceAccount token authenticates as a subject of
// binding b: the ServiceAccount (a subject without a namespace means the binding's), its user
// name system:serviceaccount:<ns>:<name>, or a group it belongs to.
func (w workload) isSubject(s subject, b binding) bool {
	ns := w.obj.Namespace
	switch s.Kind {
	case "ServiceAccount":
		subjectNamespace := s.Namespace
		if subjectNamespace == "" && !b.cluster {
			subjectNamespace = b.namespace
		}
		return s.Name == w.serviceAccount && anyNamespace(subjectNamespace, ns)
	case "User":
		rest, ok := strings.CutPrefix(s.Name, "system:serviceaccount:")
		userNamespace, name, split := strings.Cut(rest, ":")
		return ok && split && name == w.serviceAccount && anyNamespace(userNamespace, ns)
	case "Group":
		if s.Name == "system:serviceaccounts" || s.Name == "system:authenticated" {
			return true
		}
		groupNamespace, ok := strings.CutPrefix(s.Name, "system:serviceaccounts:")
		return ok && anyNamespace(groupNamespace, ns)
	}
	return false
}

// writesTarget lists the write verbs rules grant on target t.
func writesTarget(rules []policyRule, t config.TargetKey) []string {
	resource := strings.ToLower(t.Kind) + "s"
	var verbs []string
	for _, r := range rules {
		if !containsAny(r.APIGroups, "apps", "*") || !containsAny(r.Resources, resource, "*") ||
			(len(r.ResourceNames) > 0 && !slices.Contains(r.ResourceNames, t.Name)) {
			continue
		}
		for _, v := range r.Verbs {
			if slices.Contains(writeVerbs, v) && !slices.Contains(verbs, v) {
				verbs = append(verbs, v)
			}
		}
	}
	return verbs
}

func containsAny(list []string, values ...string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return slices.Contains(values, s) })
}

// secondWriter is the RuleSecondWriter violation of a workload that can write targets.
func (w workload) secondWriter(targets []config.TargetKey, grants []string) *Violation {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = KeyString(t)
	}
	likely := ""
	if w.looksLikeRefresh() {
		likely = " Its name or labels say refresh: it is likely the chart's own refresh CronJob."
	}
	return violation(RuleSecondWriter,
		"%s runs as %s, which may write %s (%s): a second writer of the refresher's targets, whose writes end the "+
			"refresher's rollout tracking (no quarantine, no rollback).%s Keep one refresher per target: turn it off in the "+
			"chart (%s), or take its write access to the targets away",
		w.ref(), w.serviceAccountRef(), strings.Join(names, ", "), strings.Join(grants, "; "), likely, w.turnOff())
}

// looksLikeRefresh reports whether the workload's name or a label key or value says refresh.
func (w workload) looksLikeRefresh() bool {
	says := func(s string) bool { return strings.Contains(strings.ToLower(s), "refresh") }
	if says(w.obj.Name) {
		return true
	}
	for k, v := range w.labels {
		if says(k) || says(v) {
			return true
		}
	}
	return false
}

// helmUpgrade reports whether a container of the workload runs helm upgrade (its image or
// command and args say helm, and they say upgrade); the violation is nil when it passes
// --post-renderer, so the injected objects survive its upgrades.
func (w workload) helmUpgrade() (*Violation, bool) {
	for _, c := range slices.Concat(w.pod.InitContainers, w.pod.Containers) {
		line := strings.Join(slices.Concat(c.Command, c.Args), " ")
		lower := strings.ToLower(line)
		if !strings.Contains(lower, "upgrade") || (!strings.Contains(strings.ToLower(c.Image), "helm") &&
			!strings.Contains(lower, "helm")) {
			continue
		}
		if strings.Contains(line, "--post-renderer") {
			return nil, true
		}
		const maxShown = 160
		if len(line) > maxShown {
			line = line[:maxShown] + "…"
		}
		return violation(RuleInClusterUpgrade,
			"%s runs helm upgrade in the cluster without --post-renderer (container %q, image %s: %s): when it upgrades this "+
				"release, Helm deletes what the post-renderer injected (the refresher's CronJob, ServiceAccount, Role, "+
				"RoleBinding, admission guard, and a --config ConfigMap), without a signal. Pass the post-renderer to that helm "+
				"upgrade, render the refresh objects from the chart itself, or turn it off (%s)",
			w.ref(), c.Name, c.Image, line, w.turnOff()), true
	}
	return nil, false
}
