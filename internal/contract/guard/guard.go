// Package guard is the admission guard of the refresh contract: the ValidatingAdmissionPolicy
// and binding that let the refresher's ServiceAccount change only what the refresher writes.
// The post-renderer injects it and chartcheck compares a rendered one with it; the refresher
// never links it (the admissionregistration types would grow its image).
package guard

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
)

// The admission guard is a ValidatingAdmissionPolicy bound to the refresher's ServiceAccount:
// RBAC lets that identity patch its targets (Deployments, DaemonSets), and a patch can change anything in the
// pod template, so the API server itself allows it only the changes the refresher makes.
//
// How the CEL is built. CEL compares whole sub-objects (a == b is deep equality) but has no
// "equal except these paths". So every field on the way to an allowed field is walked: at each
// level (metadata, spec, spec.template, spec.template.metadata, spec.template.spec, a container
// a set-env or set-image image writes) every sibling of the allowed path is compared whole with oldObject, one
// validation per field so the denial names it. The siblings are read from the k8s.io/api Go
// types (guardFields), so a field added by a Kubernetes upgrade is compared, never skipped.
// Optional-field access (`a.?f == b.?f`) makes an absent field equal to an absent one and
// unequal to a set one. The allowed paths themselves:
//   - metadata.annotations: the targets' audit annotations (only to a sha256 digest) and
//     status annotations (at most contract.StatusMaxBytes); every other key unchanged;
//   - spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt] on a target of a
//     rollout-restart image (only to an RFC 3339 time);
//   - on a set-env image's container, the value of its variable: exactly one entry, a plain
//     value shaped like a digest (never valueFrom, never removed); every other entry unchanged;
//   - on a set-image image's container, its image: only to '<repository>@sha256:' + 64 lowercase
//     hex, the repository exactly as configured (what the refresher writes).
// Containers keep their names and order; a container no set-env or set-image image writes is
// compared whole.
// A validation that concerns one target starts with "object.metadata.name != '<target>' ||", or, where the guard
// covers several namespaces or kinds, with the negation of the target's match (targetMatch).
// Server-written metadata (resourceVersion, generation, managedFields, a DaemonSet's template generation) is not
// compared: the API server sets it on every update before admission, and it runs nothing.

const (
	// guardSuffix names the guard's policy and binding: "<config name>-guard", followed by
	// ".<namespace>" when the namespace is known, so two releases never collide.
	guardSuffix = "-guard"
	// MessagePrefix opens every denial the guard reports.
	MessagePrefix = "image-refresh guard: "

	digestPattern  = `^sha256:[0-9a-f]{64}$`
	rfc3339Pattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$`
)

// guardServerManaged are the ObjectMeta fields of the target the guard does not compare:
// the API server writes them on every update, before admission.
var guardServerManaged = []string{"resourceVersion", "generation", "managedFields"}

// serverAnnotations are the annotations the API server writes on an update of a target kind, before admission:
// a DaemonSet's template generation, counted up when its template changes (whatever the request says).
var serverAnnotations = map[string][]string{config.KindDaemonSet: {appsv1.DeprecatedTemplateGeneration}}

// Name is the name of the guard's policy and of its binding.
func Name(configName, namespace string) string {
	if namespace == "" {
		return configName + guardSuffix
	}
	return configName + guardSuffix + "." + namespace
}

// serviceAccountUsername is the username the API server gives a ServiceAccount's token.
func serviceAccountUsername(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// guardTarget is what the refresher may write on one target.
type guardTarget struct {
	// key is the target, its namespace resolved ("" = the release namespace).
	key config.TargetKey
	// match is the CEL condition that an admitted object is this target (targetMatch).
	match string
	// annotations are the audit (digest) and status annotation keys of its images.
	audit, status []string
	restart       bool
	// containers are those set-env and set-image images write, in config order; setEnv maps one
	// to the variables set-env images write in it, setImage to the repositories set-image
	// images give it.
	containers []string
	setEnv     map[string][]string
	setImage   map[string][]string
}

func guardTargets(cfg *config.RefreshConfig, namespace string) []*guardTarget {
	var out []*guardTarget
	byKey := map[config.TargetKey]*guardTarget{}
	for _, rt := range contract.Targets(cfg, "", namespace) {
		img := rt.Image
		t := byKey[rt.Key]
		if t == nil {
			t = &guardTarget{key: rt.Key, setEnv: map[string][]string{}, setImage: map[string][]string{}}
			byKey[t.key] = t
			out = append(out, t)
		}
		t.audit = appendNew(t.audit, img.Annotation)
		t.status = appendNew(t.status, img.StatusAnnotation())
		switch img.Action {
		case config.ActionRolloutRestart:
			t.restart = true
		case config.ActionSetEnv:
			t.containers = appendNew(t.containers, img.Target.Container)
			t.setEnv[img.Target.Container] = appendNew(t.setEnv[img.Target.Container], img.Env)
		case config.ActionSetImage:
			t.containers = appendNew(t.containers, img.Target.Container)
			t.setImage[img.Target.Container] = appendNew(t.setImage[img.Target.Container], img.Repository)
		}
	}
	kinds, namespaces := guardKinds(out), guardNamespaces(out)
	for _, t := range out {
		t.match = targetMatch(t.key, len(kinds) > 1, len(namespaces) > 1)
	}
	return out
}

// targetMatch is the CEL condition that the admitted object is the target: its name, and its resource and
// namespace where the guard covers more than one (the Role already limits each namespace to its own targets).
func targetMatch(key config.TargetKey, byResource, byNamespace bool) string {
	match := "object.metadata.name == " + quote(key.Name)
	if byNamespace {
		match += " && request.namespace == " + quote(key.Namespace)
	}
	if byResource {
		match += " && request.resource.resource == " + quote(contract.Resource(key.Kind))
	}
	return match
}

// guardKinds are the kinds of the targets, in config.TargetKinds order.
func guardKinds(targets []*guardTarget) []string {
	return slices.DeleteFunc(slices.Clone(config.TargetKinds), func(kind string) bool {
		return !slices.ContainsFunc(targets, func(t *guardTarget) bool { return t.key.Kind == kind })
	})
}

// guardNamespaces are the namespaces of the targets, in config order.
func guardNamespaces(targets []*guardTarget) []string {
	var out []string
	for _, t := range targets {
		out = appendNew(out, t.key.Namespace)
	}
	return out
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// For returns the admission guard of a config whose injected objects live in namespace ("" =
// the release namespace, unknown to a post-renderer) and run as ServiceAccount serviceAccount.
// The objects carry only their names; the caller adds labels. Nil when nothing floats.
func For(cfg *config.RefreshConfig, namespace, serviceAccount string) (*admissionv1.ValidatingAdmissionPolicy,
	*admissionv1.ValidatingAdmissionPolicyBinding) {
	targets := guardTargets(cfg, namespace)
	if len(targets) == 0 {
		return nil, nil
	}
	kinds := guardKinds(targets)
	resources := make([]string, len(kinds))
	for i, kind := range kinds {
		resources[i] = contract.Resource(kind)
	}
	name := Name(cfg.Metadata.Name, namespace)
	// Without a known namespace the ServiceAccount is matched in the request's namespace: the
	// Role (hence every write the token can make) lives there.
	user := quote(serviceAccountUsername(namespace, serviceAccount))
	if namespace == "" {
		user = "'system:serviceaccount:' + request.namespace + ':' + " + quote(serviceAccount)
	}
	fail := admissionv1.Fail
	policy := &admissionv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionv1.MatchResources{
				ResourceRules: []admissionv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionv1.RuleWithOperations{
						Operations: []admissionv1.OperationType{admissionv1.Update},
						Rule: admissionv1.Rule{
							APIGroups: []string{appsv1.GroupName}, APIVersions: []string{"v1"}, Resources: resources,
						},
					},
				}},
			},
			MatchConditions: []admissionv1.MatchCondition{{Name: "refresher-service-account",
				Expression: "request.userInfo.username == " + user}},
			Variables:   guardVariables(targets),
			Validations: guardValidations(cfg.Metadata.Name, targets, kinds),
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(),
			Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
		},
	}
	if namespace != "" {
		// The refresher's namespace, then every other namespace with a target (each has a Role of its own).
		namespaces := appendNew(nil, namespace)
		for _, ns := range guardNamespaces(targets) {
			namespaces = appendNew(namespaces, ns)
		}
		binding.Spec.MatchResources = &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: namespaces,
			}},
		}}
	}
	return policy, binding
}

// guardVariables are the shared sub-expressions: annotations and containers old and new, what
// each target allows, and each container a target's set-env or set-image images write, old and new.
func guardVariables(targets []*guardTarget) []admissionv1.Variable {
	vars := []admissionv1.Variable{
		{Name: "oldAnnotations", Expression: "oldObject.metadata.?annotations.orValue({})"},
		{Name: "newAnnotations", Expression: "object.metadata.?annotations.orValue({})"},
		{Name: "oldTemplateAnnotations", Expression: "oldObject.spec.template.metadata.?annotations.orValue({})"},
		{Name: "newTemplateAnnotations", Expression: "object.spec.template.metadata.?annotations.orValue({})"},
		{Name: "oldContainers", Expression: "oldObject.spec.template.spec.containers"},
		{Name: "newContainers", Expression: "object.spec.template.spec.containers"},
		{Name: "allowedAnnotations", Expression: byTarget(targets, func(t *guardTarget) string {
			return quoteList(append(append(slices.Clone(t.audit), t.status...), serverAnnotations[t.key.Kind]...))
		})},
		{Name: "allowedTemplateAnnotations", Expression: byTarget(targets, func(t *guardTarget) string {
			if t.restart {
				return quoteList([]string{config.RestartedAtAnnotation})
			}
			return "[]"
		})},
		{Name: "writtenContainers", Expression: byTarget(targets,
			func(t *guardTarget) string { return quoteList(t.containers) })},
		// Keys of other annotations that changed: added, removed or given another value.
		{Name: "changedAnnotations", Expression: changedKeys("newAnnotations", "oldAnnotations", "allowedAnnotations")},
		{Name: "changedTemplateAnnotations", Expression: changedKeys("newTemplateAnnotations", "oldTemplateAnnotations",
			"allowedTemplateAnnotations")},
		// Containers (same names, same order: another validation) no set-env or set-image image writes.
		{Name: "changedContainers", Expression: "variables.newContainers.filter(c, !(c.name in " +
			"variables.writtenContainers) && !(c in variables.oldContainers)).map(c, c.name)"},
	}
	for i, t := range targets {
		for j, c := range t.containers {
			v := containerVar(i, j)
			vars = append(vars,
				admissionv1.Variable{Name: v + "New", Expression: "variables.newContainers.filter(c, c.name == " + quote(c) + ")"},
				admissionv1.Variable{Name: v + "Old", Expression: "variables.oldContainers.filter(c, c.name == " + quote(c) + ")"})
			for _, age := range []string{"New", "Old"} {
				env := fmt.Sprintf("(variables.%[1]s%[2]s.size() == 1 ? variables.%[1]s%[2]s[0].?env.orValue([]) : [])", v, age)
				for k, name := range t.setEnv[c] {
					vars = append(vars, admissionv1.Variable{Name: envVar(i, j, k) + age, Expression: env + ".filter(e, e.name == " +
						quote(name) + ")"})
				}
			}
		}
	}
	return vars
}

func containerVar(target, container int) string {
	return fmt.Sprintf("target%dContainer%d", target, container)
}

// envVar names the entries of one set-env variable in a container, old and new.
func envVar(target, container, env int) string {
	return fmt.Sprintf("%sEnv%d", containerVar(target, container), env)
}

// byTarget is a CEL expression choosing per target; [] for any other object.
func byTarget(targets []*guardTarget, value func(*guardTarget) string) string {
	var b strings.Builder
	for _, t := range targets {
		fmt.Fprintf(&b, "%s ? %s : ", t.match, value(t))
	}
	b.WriteString("[]")
	return b.String()
}

func changedKeys(newMap, oldMap, allowed string) string {
	n, o, a := "variables."+newMap, "variables."+oldMap, "variables."+allowed
	return fmt.Sprintf("%[1]s.filter(k, !(k in %[3]s) && !(k in %[2]s && %[2]s[k] == %[1]s[k])) + %[2]s.filter(k, !(k "+
		"in %[3]s) && !(k in %[1]s))", n, o, a)
}

// guardLevel is one object level on the way to an allowed field: its path, its Go type, and
// the fields the guard does not compare whole there (the way on, or server-written metadata).
type guardLevel struct {
	Path      string
	Type      reflect.Type
	NotWhole  []string
	PerTarget bool // a written container: compared per target and container, NotWhole per container
}

// guardLevels are the levels the guard walks, in order. The spec level is the target kind's (specTypes).
var guardLevels = []guardLevel{
	{Path: "metadata", Type: reflect.TypeFor[metav1.ObjectMeta](), NotWhole: append([]string{"annotations"},
		guardServerManaged...)},
	{Path: "spec", NotWhole: []string{"template"}},
	{Path: "spec.template", Type: reflect.TypeFor[corev1.PodTemplateSpec](), NotWhole: []string{"metadata", "spec"}},
	{Path: "spec.template.metadata", Type: reflect.TypeFor[metav1.ObjectMeta](), NotWhole: []string{"annotations"}},
	{Path: "spec.template.spec", Type: reflect.TypeFor[corev1.PodSpec](), NotWhole: []string{"containers"}},
	{Path: "container", Type: reflect.TypeFor[corev1.Container](), PerTarget: true},
}

// specTypes are the spec types of the target kinds. A policy over both kinds compares the fields of both: a field
// absent from an object's kind is absent in its old object too, and `.?` makes the two equal.
var specTypes = map[string]reflect.Type{
	config.KindDeployment: reflect.TypeFor[appsv1.DeploymentSpec](),
	config.KindDaemonSet:  reflect.TypeFor[appsv1.DaemonSetSpec](),
}

// guardFields lists the JSON field names of a Kubernetes API struct, embedded structs inlined.
func guardFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case tag == "-" || !f.IsExported():
		case f.Anonymous && tag == "":
			out = append(out, guardFields(f.Type)...)
		default:
			if tag == "" {
				tag = f.Name
			}
			out = append(out, tag)
		}
	}
	return out
}

// compared are the fields of a level compared whole, for targets of kinds.
func (l guardLevel) compared(kinds []string) []string {
	var fields []string
	if l.Type != nil {
		fields = guardFields(l.Type)
	} else { // the spec level: the fields of every target kind's spec, each once
		for _, kind := range kinds {
			for _, f := range guardFields(specTypes[kind]) {
				fields = appendNew(fields, f)
			}
		}
	}
	return slices.DeleteFunc(fields, func(f string) bool { return slices.Contains(l.NotWhole, f) })
}

func guardValidations(configName string, targets []*guardTarget, kinds []string) []admissionv1.Validation {
	forbidden := metav1.StatusReasonForbidden
	var vs []admissionv1.Validation
	add := func(expr, message string) {
		vs = append(vs, admissionv1.Validation{Expression: expr, Message: MessagePrefix + message, Reason: &forbidden})
	}
	// addDynamic's message is text + messageExpr + tail.
	addDynamic := func(expr, text, messageExpr, tail string) {
		m := quote(MessagePrefix+text) + " + " + messageExpr
		if tail != "" {
			m += " + " + quote(tail)
		}
		vs = append(vs, admissionv1.Validation{Expression: expr, MessageExpression: m, Reason: &forbidden})
	}
	isTarget, kind := make([]string, len(targets)), quote(kinds[0]+" ")
	for i, t := range targets {
		isTarget[i] = t.match
	}
	if len(kinds) > 1 {
		kind = "request.kind.kind + ' '"
	}
	if slices.ContainsFunc(targets, func(t *guardTarget) bool { return t.match != targetMatch(t.key, false, false) }) {
		vs = append(vs, admissionv1.Validation{Expression: strings.Join(isTarget, " || "),
			MessageExpression: quote(MessagePrefix) + " + " + kind + " + request.namespace + '/' + object.metadata.name + " +
				quote(" is not a target of refresh config "+configName), Reason: &forbidden})
	} else {
		names := make([]string, len(targets))
		for i, t := range targets {
			names[i] = t.key.Name
		}
		addDynamic("object.metadata.name in "+quoteList(names), kinds[0]+" ", "object.metadata.name",
			" is not a target of refresh config "+configName)
	}

	for _, level := range guardLevels {
		if level.PerTarget || level.Path == "spec.template" {
			continue // spec.template has no field but the two walked into
		}
		for _, f := range level.compared(kinds) {
			add(fmt.Sprintf("object.%[1]s.?%[2]s == oldObject.%[1]s.?%[2]s", level.Path, celField(f)),
				level.Path+"."+f+" may not change")
		}
	}
	addDynamic("variables.changedAnnotations.size() == 0", "annotation ", "variables.changedAnnotations[0]",
		" may not change")
	addDynamic("variables.changedTemplateAnnotations.size() == 0",
		"pod template annotation ", "variables.changedTemplateAnnotations[0]", " may not change")
	add("variables.newContainers.map(c, c.name) == variables.oldContainers.map(c, c.name)",
		"containers may not be added, removed, renamed or reordered")
	addDynamic("variables.changedContainers.size() == 0", "container ", "variables.changedContainers[0]",
		" may not change")

	for i, t := range targets {
		only := "!(" + t.match + ") || "
		if t.match == targetMatch(t.key, false, false) {
			only = "object.metadata.name != " + quote(t.key.Name) + " || "
		}
		for _, key := range t.audit {
			add(only+changedTo("newAnnotations", "oldAnnotations", key, "matches('"+digestPattern+"')"),
				"annotation "+key+" may only be set to a sha256 digest")
		}
		for _, key := range t.status {
			add(only+changedTo("newAnnotations", "oldAnnotations", key, fmt.Sprintf("size() <= %d", contract.StatusMaxBytes)),
				fmt.Sprintf("annotation %s may only be set, to at most %d bytes", key, contract.StatusMaxBytes))
		}
		if t.restart {
			add(only+changedTo("newTemplateAnnotations", "oldTemplateAnnotations", config.RestartedAtAnnotation,
				"matches('"+rfc3339Pattern+"')"),
				"pod template annotation "+config.RestartedAtAnnotation+" may only be set to a time")
		}
		for j, c := range t.containers {
			v := "variables." + containerVar(i, j)
			// The container's presence is the names validation's; here both have it.
			both := only + v + "New.size() != 1 || " + v + "Old.size() != 1 || "
			level := guardLevels[len(guardLevels)-1]
			for _, f := range slices.DeleteFunc(level.compared(kinds), t.writes(c)) {
				add(fmt.Sprintf("%s%sNew[0].?%s == %sOld[0].?%s", both, v, celField(f), v, celField(f)),
					"container "+c+" "+f+" may not change")
			}
			if repos := t.setImage[c]; len(repos) > 0 {
				pinned, shown := make([]string, len(repos)), make([]string, len(repos))
				for k, repo := range repos {
					pinned[k] = fmt.Sprintf("%sNew[0].?image.orValue('').matches(%s)", v, quote(pinnedPattern(repo)))
					shown[k] = repo + "@sha256:<64 hex>"
				}
				add(fmt.Sprintf("%s%sNew[0].?image == %sOld[0].?image || %s", both, v, v, strings.Join(pinned, " || ")),
					"container "+c+" image may only be set to "+strings.Join(shown, " or "))
			}
			envs := t.setEnv[c]
			if len(envs) == 0 {
				continue
			}
			newEnv, oldEnv := v+"New[0].?env.orValue([])", v+"Old[0].?env.orValue([])"
			add(fmt.Sprintf("%s%s.filter(e, !(e.name in %s)) == %s.filter(e, !(e.name in %s))", both, newEnv, quoteList(envs),
				oldEnv, quoteList(envs)),
				"container "+c+" env may change only in "+strings.Join(envs, ", "))
			for k, env := range envs {
				n, o := "variables."+envVar(i, j, k)+"New", "variables."+envVar(i, j, k)+"Old"
				add(fmt.Sprintf("%[1]s%[2]s == %[3]s || (%[2]s.size() == 1 && !has(%[2]s[0].valueFrom) && "+
					"%[2]s[0].?value.orValue('').matches('%[4]s'))",
					only, n, o, digestPattern),
					"container "+c+" env "+env+" may only be set to a sha256 digest, as one plain value")
			}
		}
	}
	return vs
}

// writes reports whether a field of container c is one the target's images write (env, image).
func (t *guardTarget) writes(c string) func(string) bool {
	return func(f string) bool {
		return (f == "env" && len(t.setEnv[c]) > 0) || (f == "image" && len(t.setImage[c]) > 0)
	}
}

// pinnedPattern matches exactly what set-image writes for repository: repository@sha256:<64 hex>.
func pinnedPattern(repository string) string {
	return "^" + regexp.QuoteMeta(repository) + "@" + digestPattern[1:]
}

// changedTo is true when a map key is unchanged, or set (never removed) to a value for which
// check holds.
func changedTo(newMap, oldMap, key, check string) string {
	n, o, k := "variables."+newMap, "variables."+oldMap, quote(key)
	return fmt.Sprintf("(%[3]s in %[1]s ? ((%[3]s in %[2]s && %[2]s[%[3]s] == %[1]s[%[3]s]) || %[1]s[%[3]s].%[4]s) : "+
		"!(%[3]s in %[2]s))", n, o, k, check)
}

// celReserved are CEL's reserved words that name Kubernetes fields; Kubernetes escapes such a
// field as __<word>__.
var celReserved = []string{"namespace"}

func celField(f string) string {
	if slices.Contains(celReserved, f) {
		return "__" + f + "__"
	}
	return f
}

// quote is a CEL single-quoted string literal.
func quote(s string) string { return "'" + escape(s) + "'" }

func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`).Replace(s)
}

func quoteList(list []string) string {
	quoted := make([]string, len(list))
	for i, s := range list {
		quoted[i] = quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
