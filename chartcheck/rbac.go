package chartcheck

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/apiserver/pkg/authentication/user"

	contract "github.com/tracebloc/image-refresh/internal/contract"
)

// checkRBAC: the CronJob runs as the ServiceAccount named after the config, bound by the
// RoleBinding named after the config, and by nothing else, to the Role named after the config,
// which grants get and patch on exactly the Deployments of floating images and nothing else.
func (c *checkedRelease) checkRBAC() []Finding {
	cfgName, ns := c.cfg.Metadata.Name, c.cfg.Metadata.Namespace
	var findings []Finding
	if sa := c.cronJob.Spec.JobTemplate.Spec.Template.Spec.ServiceAccountName; sa != cfgName {
		findings = append(findings, Finding{
			Document: c.cronJobDoc.String(),
			Expected: fmt.Sprintf("serviceAccountName %q", cfgName),
			Found:    fmt.Sprintf("%q", sa),
		})
	}
	if len(c.stream.Find("ServiceAccount", ns, cfgName)) == 0 {
		findings = append(findings, Finding{
			Document: c.cronJobDoc.String(),
			Expected: fmt.Sprintf("ServiceAccount %q", cfgName),
			Found:    "no such ServiceAccount in the stream",
		})
	}

	grants := contract.Grants(c.targets, ns)
	for _, g := range grants {
		roles := c.stream.Find("Role", g.Namespace, cfgName)
		if len(roles) == 0 {
			findings = append(findings, Finding{
				Document: c.cronJobDoc.String(),
				Expected: fmt.Sprintf("Role %q%s", cfgName, inNamespace(g.Namespace, ns)),
				Found:    "no such Role in the stream",
			})
			continue
		}
		var role rbacv1.Role
		if err := roles[0].Decode(&role); err != nil {
			findings = append(findings, Finding{Document: roles[0].String(), Expected: "a Role", Found: err.Error()})
			continue
		}
		findings = append(findings, checkRules(roles[0].String(), role.Rules, g.Targets)...)
	}

	findings = append(findings, c.checkServiceAccountUsers()...)
	bindingFindings, found := c.checkBindings(grants)
	findings = append(findings, bindingFindings...)
	for _, g := range grants {
		if !found[g.Namespace] {
			findings = append(findings, Finding{
				Document: c.cronJobDoc.String(),
				Expected: fmt.Sprintf(
					"RoleBinding %q%s binding Role %q to %s",
					cfgName,
					inNamespace(g.Namespace, ns),
					cfgName,
					c.refresherSubject(),
				),
				Found: "no such RoleBinding in the stream",
			})
		}
	}
	return findings
}

// inNamespace names a namespace other than the refresher's, where a Role of a target namespace lies.
func inNamespace(namespace, refresherNamespace string) string {
	if namespace == refresherNamespace {
		return ""
	}
	return fmt.Sprintf(" in namespace %q", namespace)
}

// podSpecPaths are where each workload kind holds its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":         {"spec"},
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

// checkServiceAccountUsers: only the refresher's CronJob holds its ServiceAccount's token. Any
// other workload running as it, or a token Secret issued for it, has get and patch on the targets.
func (c *checkedRelease) checkServiceAccountUsers() []Finding {
	cfgName, ns := c.cfg.Metadata.Name, c.cfg.Metadata.Namespace
	expected := fmt.Sprintf("%s used by CronJob %q alone", c.refresherSubject(), cfgName)
	var findings []Finding
	for _, d := range c.stream.Docs {
		if d == c.cronJobDoc || d.Namespace != ns {
			continue
		}
		if d.isKind("Secret") {
			var secret corev1.Secret
			if err := d.Decode(
				&secret,
			); err == nil && secret.Type == corev1.SecretTypeServiceAccountToken &&
				secret.Annotations[corev1.ServiceAccountNameKey] == cfgName {
				findings = append(findings, Finding{Document: d.String(), Expected: expected, Found: "a token Secret for it"})
			}
			continue
		}
		specPath, workload := podSpecPaths[d.Kind]
		if !workload {
			continue
		}
		var obj map[string]any
		if err := d.Decode(&obj); err != nil {
			continue // the check of that kind, if any, reports it
		}
		pod, _, _ := unstructured.NestedMap(obj, specPath...)
		for _, field := range []string{"serviceAccountName", "serviceAccount"} {
			if pod[field] == cfgName {
				findings = append(findings, Finding{
					Document: d.String(),
					Expected: expected,
					Found:    fmt.Sprintf("%s %s runs as it", d.Kind, field),
				})
				break
			}
		}
	}
	return findings
}

// refresherSubject names the refresher's ServiceAccount in findings.
func (c *checkedRelease) refresherSubject() string {
	return fmt.Sprintf("ServiceAccount %s/%s", c.cfg.Metadata.Namespace, c.cfg.Metadata.Name)
}

// checkBindings: the refresher's RoleBinding in each namespace of its grants binds its Role there to its
// ServiceAccount alone; no other binding grants that Role, and no other binding grants anything to the
// ServiceAccount, by name, by its user name or by a group it belongs to. found reports, per namespace, whether the
// refresher's RoleBinding exists.
func (c *checkedRelease) checkBindings(grants []contract.Grant) (findings []Finding, found map[string]bool) {
	found = map[string]bool{}
	cfgName, ns := c.cfg.Metadata.Name, c.cfg.Metadata.Namespace
	wantSubject := c.refresherSubject()
	for _, kind := range []string{"RoleBinding", "ClusterRoleBinding"} {
		for _, d := range c.stream.OfKind(kind) {
			var b rbacv1.RoleBinding // ClusterRoleBinding has the same roleRef and subjects
			if err := d.Decode(&b); err != nil {
				findings = append(findings, Finding{Document: d.String(), Expected: "a " + kind, Found: err.Error()})
				continue
			}
			inNamespace := kind == "RoleBinding" && slices.ContainsFunc(
				grants,
				func(g contract.Grant) bool { return g.Namespace == d.Namespace },
			)
			switch {
			case inNamespace && d.Name == cfgName:
				found[d.Namespace] = true
				if b.RoleRef.Kind != "Role" || b.RoleRef.Name != cfgName || b.RoleRef.APIGroup != rbacv1.GroupName {
					findings = append(findings, Finding{
						Document: d.String(),
						Expected: fmt.Sprintf("roleRef Role %q", cfgName),
						Found:    fmt.Sprintf("roleRef %s %q (apiGroup %q)", b.RoleRef.Kind, b.RoleRef.Name, b.RoleRef.APIGroup),
					})
				}
				if len(b.Subjects) == 0 {
					findings = append(findings, Finding{
						Document: d.String(),
						Expected: "one subject, " + wantSubject,
						Found:    "no subjects",
					})
				}
				for i, s := range b.Subjects {
					if !isServiceAccount(s, cfgName, ns, d.Namespace) {
						findings = append(findings, Finding{
							Document: d.String(),
							Expected: "one subject, " + wantSubject,
							Found:    fmt.Sprintf("subjects[%d]: %s", i, describeSubject(s, d.Namespace)),
						})
					}
				}
			case inNamespace && b.RoleRef.Kind == "Role" && b.RoleRef.Name == cfgName:
				findings = append(findings, Finding{
					Document: d.String(),
					Expected: fmt.Sprintf("Role %q bound only by RoleBinding %q, to %s", cfgName, cfgName, wantSubject),
					Found:    "another binding of it, to " + describeSubjects(b.Subjects, d.Namespace),
				})
			default:
				for _, s := range b.Subjects {
					// A group binds every token of the cluster or namespace: a read-only grant
					// (system:discovery, view) is the cluster's business, not a leak of the refresher's.
					if !coversServiceAccount(
						s,
						cfgName,
						ns,
						d.Namespace,
					) || (s.Kind == rbacv1.GroupKind && !c.grantsMoreThanRead(b.RoleRef, d.Namespace)) {
						continue
					}
					findings = append(findings, Finding{
						Document: d.String(),
						Expected: fmt.Sprintf("%s to be bound only by RoleBinding %q", wantSubject, cfgName),
						Found: fmt.Sprintf(
							"an extra grant of %s %q through subject %s",
							b.RoleRef.Kind,
							b.RoleRef.Name,
							describeSubject(s, d.Namespace),
						),
					})
					break
				}
			}
		}
	}
	return findings, found
}

// isServiceAccount reports whether a subject is the ServiceAccount itself; a subject without a
// namespace means the binding's.
func isServiceAccount(s rbacv1.Subject, name, namespace, bindingNamespace string) bool {
	if s.Kind != rbacv1.ServiceAccountKind || s.Name != name || s.APIGroup != "" {
		return false
	}
	return defaultString(s.Namespace, bindingNamespace) == namespace
}

// coversServiceAccount reports whether the ServiceAccount's token authenticates as a subject:
// the ServiceAccount, its user name system:serviceaccount:<ns>:<name>, or one of its groups
// system:serviceaccounts, system:serviceaccounts:<ns> and system:authenticated.
func coversServiceAccount(s rbacv1.Subject, name, namespace, bindingNamespace string) bool {
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		return isServiceAccount(s, name, namespace, bindingNamespace)
	case rbacv1.UserKind:
		userNamespace, userName, err := serviceaccount.SplitUsername(s.Name)
		return err == nil && userName == name && userNamespace == namespace
	case rbacv1.GroupKind:
		if s.Name == serviceaccount.AllServiceAccountsGroup || s.Name == user.AllAuthenticated {
			return true
		}
		groupNamespace, ok := strings.CutPrefix(s.Name, serviceaccount.ServiceAccountGroupPrefix)
		return ok && groupNamespace == namespace
	}
	return false
}

// powerfulClusterRoles are the default ClusterRoles that write: a group bound to one of them
// hands the refresher's token far more than it needs, whether or not the stream defines it.
var powerfulClusterRoles = []string{"cluster-admin", "admin", "edit"}

// grantsMoreThanRead reports whether a binding's role may do more than get, list and watch: a
// powerful default ClusterRole, or a role of the stream with any other verb. A role that is
// neither (system:discovery, view) is taken as read-only.
func (c *checkedRelease) grantsMoreThanRead(ref rbacv1.RoleRef, bindingNamespace string) bool {
	if ref.Kind == "ClusterRole" && slices.Contains(powerfulClusterRoles, ref.Name) {
		return true
	}
	namespace := bindingNamespace
	if ref.Kind == "ClusterRole" {
		namespace = ""
	}
	for _, d := range c.stream.Find(ref.Kind, namespace, ref.Name) {
		var role rbacv1.Role // a ClusterRole has the same rules
		if err := d.Decode(&role); err != nil {
			return true
		}
		for _, r := range role.Rules {
			if slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) {
				return true
			}
		}
	}
	return false
}

func describeSubject(s rbacv1.Subject, bindingNamespace string) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return fmt.Sprintf("ServiceAccount %s/%s", defaultString(s.Namespace, bindingNamespace), s.Name)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

func describeSubjects(subjects []rbacv1.Subject, bindingNamespace string) string {
	if len(subjects) == 0 {
		return "no subjects"
	}
	described := make([]string, len(subjects))
	for i, s := range subjects {
		described[i] = describeSubject(s, bindingNamespace)
	}
	return strings.Join(described, ", ")
}

// eventsRule is the refresher's one grant besides its targets: contract.EventVerbs on Events
// (events.k8s.io/v1). Exactly this rule is accepted — no other verb, group (the core group's
// events), resource or resourceNames.
var eventsRule = rbacv1.PolicyRule{
	APIGroups: []string{"events.k8s.io"},
	Resources: []string{"events"},
	Verbs:     contract.EventVerbs,
}

func isEventsRule(r rbacv1.PolicyRule) bool {
	return slices.Equal(r.APIGroups, eventsRule.APIGroups) && slices.Equal(r.Resources, eventsRule.Resources) &&
		slices.Equal(r.Verbs, eventsRule.Verbs) && len(r.ResourceNames) == 0 && len(r.NonResourceURLs) == 0
}

// checkRules compares a Role's rules with the grants the refresher needs in its namespace: get and patch on each
// target there, verbs counted per target (get on A and B with patch on A leaves B unpatchable), and exactly one
// rule to create events.k8s.io Events.
func checkRules(doc string, policy []rbacv1.PolicyRule, targets []contract.ResourceNames) []Finding {
	var wantTargets []string
	for _, t := range targets {
		wantTargets = append(wantTargets, fmt.Sprintf("%s.apps with resourceNames %v", t.Resource, t.Names))
	}
	want := fmt.Sprintf("%s on events.events.k8s.io", strings.Join(eventsRule.Verbs, ","))
	if len(wantTargets) > 0 {
		want = "get and patch on " + strings.Join(wantTargets, " and ") + ", and " + want
	}
	var findings []Finding
	events := 0
	type resourceName struct{ resource, name string }
	verbsOf := map[resourceName]map[string]bool{}
	grant := func(n resourceName, verbs []string) {
		if verbsOf[n] == nil {
			verbsOf[n] = map[string]bool{}
		}
		for _, v := range verbs {
			verbsOf[n][v] = true
		}
	}
	for i, r := range policy {
		at := fmt.Sprintf("rules[%d]", i)
		if isEventsRule(r) {
			if events++; events > 1 {
				findings = append(findings, Finding{
					Document: doc,
					Expected: "one rule for events",
					Found:    fmt.Sprintf("%s: %s, again", at, describeRule(r)),
				})
			}
			continue
		}
		j := slices.IndexFunc(
			targets,
			func(t contract.ResourceNames) bool { return slices.Equal(r.Resources, []string{t.Resource}) },
		)
		if !slices.Equal(r.APIGroups, []string{"apps"}) || j < 0 || len(r.NonResourceURLs) > 0 {
			findings = append(findings, Finding{
				Document: doc,
				Expected: "only " + want,
				Found:    fmt.Sprintf("%s: %s", at, describeRule(r)),
			})
			continue
		}
		t := targets[j]
		for _, v := range r.Verbs {
			if v != "get" && v != "patch" {
				findings = append(findings, Finding{
					Document: doc,
					Expected: "verbs get and patch only",
					Found:    fmt.Sprintf("%s: verb %q", at, v),
				})
			}
		}
		if len(r.ResourceNames) == 0 {
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf("resourceNames %v", t.Names),
				Found:    fmt.Sprintf("%s: no resourceNames, a namespace-wide grant on every %s", at, t.Kind),
			})
			for _, n := range t.Names {
				grant(resourceName{t.Resource, n}, r.Verbs)
			}
			continue
		}
		for _, n := range r.ResourceNames {
			if !slices.Contains(t.Names, n) {
				findings = append(findings, Finding{
					Document: doc,
					Expected: fmt.Sprintf("resourceNames %v", t.Names),
					Found:    fmt.Sprintf("%s: resourceName %q, which is no floating image's target", at, n),
				})
			}
			grant(resourceName{t.Resource, n}, r.Verbs)
		}
	}
	for _, t := range targets {
		for _, n := range t.Names {
			var missing []string
			for _, v := range contract.TargetVerbs {
				if !verbsOf[resourceName{t.Resource, n}][v] {
					missing = append(missing, v)
				}
			}
			if len(missing) > 0 {
				findings = append(findings, Finding{
					Document: doc,
					Expected: want,
					Found:    fmt.Sprintf("no %s on %s %q", strings.Join(missing, " or "), t.Kind, n),
				})
			}
		}
	}
	if events == 0 {
		findings = append(findings, Finding{
			Document: doc,
			Expected: want,
			Found: "no rule of exactly " + strings.Join(eventsRule.Verbs, ",") +
				" on events.events.k8s.io: the refresher's Events (and their series) would be refused",
		})
	}
	return findings
}

func describeRule(r rbacv1.PolicyRule) string {
	s := fmt.Sprintf("apiGroups %q resources %q verbs %q", r.APIGroups, r.Resources, r.Verbs)
	if len(r.ResourceNames) > 0 {
		s += fmt.Sprintf(" resourceNames %q", r.ResourceNames)
	}
	if len(r.NonResourceURLs) > 0 {
		s += fmt.Sprintf(" nonResourceURLs %q", r.NonResourceURLs)
	}
	return s
}
