package guard

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

func guardConfig(t *testing.T, namespace string) *config.RefreshConfig {
	t.Helper()
	cfg, err := config.Parse([]byte(`apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: refresh, namespace: "` + namespace + `"}
spec:
  images:
  - {name: web, repository: example.com/web, tag: prod, action: rollout-restart, annotation: example.com/web-digest,
     target: {name: web, container: app}}
  - {name: worker, repository: example.com/worker, tag: prod, action: set-env, env: WORKER_DIGEST,
     annotation: example.com/worker-digest, target: {name: web, container: app}}
  - {name: sidecar, repository: example.com/sidecar, tag: prod, action: set-env, env: SIDECAR_DIGEST,
     annotation: example.com/sidecar-digest, target: {name: web, container: proxy}}
  - {name: proxy, repository: example.com:5000/proxy, tag: prod, action: set-image, annotation: ` +
		`example.com/proxy-digest,
     target: {name: web, container: proxy}}
  - {name: other, repository: example.com/other, tag: prod, action: rollout-restart, annotation: ` +
		`example.com/other-digest,
     target: {name: other, container: main}}
  - {name: jobs, repository: docker.io/tracebloc/jobs-manager, tag: prod, action: set-image, annotation: ` +
		`example.com/jobs-digest,
     target: {name: jobs, container: api}}
  - {name: pinned, repository: example.com/pinned, digest: "sha256:` + strings.Repeat("a", 64) + `", action: set-env,
     env: PINNED_DIGEST, annotation: example.com/pinned-digest, target: {name: pinned, container: main}}
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// jsonFields lists a struct's JSON field names, embedded structs inlined; written apart from
// guardFields so that a mistake there does not hide here.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if f.Anonymous && name == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		if name != "-" && f.IsExported() {
			out = append(out, name)
		}
	}
	return out
}

// TestGuardComparesEveryField fails when a field of the Kubernetes types along the allowed
// paths is neither compared with oldObject nor one of the paths the refresher writes: a
// Kubernetes upgrade that adds a field cannot open a hole silently.
func TestGuardComparesEveryField(t *testing.T) {
	policy, _ := For(guardConfig(t, "apps"), "apps", "refresh")
	var exprs []string
	for _, v := range policy.Spec.Validations {
		exprs = append(exprs, v.Expression)
	}
	all := strings.Join(exprs, "\n")
	// The way to what the refresher writes, and the metadata the API server writes itself. A
	// change here is a change of the threat model: docs/refresher.md says why each is open.
	walked := map[string][]string{
		"metadata":               {"annotations", "resourceVersion", "generation", "managedFields"},
		"spec":                   {"template"},
		"spec.template":          {"metadata", "spec"},
		"spec.template.metadata": {"annotations"},
		"spec.template.spec":     {"containers"},
	}
	// Every container a set-env or set-image image writes, of every target, and what is written
	// there: web's app (set-env), web's proxy (set-env and set-image), jobs' api (set-image).
	containers := map[string][]string{
		"target0Container0": {"env"},
		"target0Container1": {"env", "image"},
		"target2Container0": {"image"},
	}
	levels := []struct {
		path string
		typ  reflect.Type
	}{
		{"metadata", reflect.TypeFor[metav1.ObjectMeta]()},
		{"spec", reflect.TypeFor[appsv1.DeploymentSpec]()},
		{"spec.template", reflect.TypeFor[corev1.PodTemplateSpec]()},
		{"spec.template.metadata", reflect.TypeFor[metav1.ObjectMeta]()},
		{"spec.template.spec", reflect.TypeFor[corev1.PodSpec]()},
		{"container", reflect.TypeFor[corev1.Container]()},
	}
	for _, level := range levels {
		fields := jsonFields(level.typ)
		if len(fields) < 2 {
			t.Fatalf("%s: %d fields read from %s", level.path, len(fields), level.typ)
		}
		for _, f := range fields {
			if slices.Contains(walked[level.path], f) {
				continue
			}
			field := f
			if f == "namespace" {
				field = "__namespace__"
			}
			var want []string
			if level.path == "container" {
				for c, written := range containers {
					if !slices.Contains(written, f) {
						want = append(want, fmt.Sprintf("variables.%[1]sNew[0].?%[2]s == variables.%[1]sOld[0].?%[2]s", c, field))
					}
				}
			} else {
				want = []string{fmt.Sprintf("object.%[1]s.?%[2]s == oldObject.%[1]s.?%[2]s", level.path, field)}
			}
			for _, w := range want {
				if !strings.Contains(all, w) {
					t.Errorf(
						"%s.%s (%s) is neither compared with oldObject nor an allowed path: no validation %q",
						level.path,
						f,
						level.typ,
						w,
					)
				}
			}
		}
	}
	// The written fields are checked: env entries and the image.
	for c, written := range containers {
		for _, f := range written {
			w := map[string]string{
				"env": fmt.Sprintf("variables.%[1]sNew[0].?env.orValue([]).filter(e, !(e.name in ", c),
				"image": fmt.Sprintf("variables.%[1]sNew[0].?image == variables.%[1]sOld[0].?image || "+
					"variables.%[1]sNew[0].?image.orValue('').matches(", c),
			}[f]
			if !strings.Contains(all, w) {
				t.Errorf("container %s: %s is written but not checked: no validation %q", c, f, w)
			}
		}
	}
	// The compared-whole parts.
	for _, w := range []string{
		"variables.newContainers.map(c, c.name) == variables.oldContainers.map(c, c.name)",
		"variables.changedContainers.size() == 0",
		"variables.changedAnnotations.size() == 0",
		"variables.changedTemplateAnnotations.size() == 0",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("no validation %q", w)
		}
	}
}

func TestGuardShape(t *testing.T) {
	for _, tc := range []struct {
		name, namespace, wantName, wantUser string
	}{
		{"namespace known", "apps", "refresh-guard.apps",
			"request.userInfo.username == 'system:serviceaccount:apps:refresh'"},
		{"release namespace", "", "refresh-guard",
			"request.userInfo.username == 'system:serviceaccount:' + request.namespace + ':' + 'refresh'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy, binding := For(guardConfig(t, tc.namespace), tc.namespace, "refresh")
			if policy.Name != tc.wantName || binding.Name != tc.wantName || binding.Spec.PolicyName != tc.wantName {
				t.Errorf("names %q %q → %q, want %q", policy.Name, binding.Name, binding.Spec.PolicyName, tc.wantName)
			}
			spec := policy.Spec
			if spec.FailurePolicy == nil || *spec.FailurePolicy != admissionv1.Fail {
				t.Errorf("failurePolicy %v, want Fail", spec.FailurePolicy)
			}
			rules := spec.MatchConstraints.ResourceRules
			if len(rules) != 1 || !reflect.DeepEqual(rules[0].Operations, []admissionv1.OperationType{admissionv1.Update}) ||
				!reflect.DeepEqual(
					rules[0].APIGroups,
					[]string{"apps"},
				) || !reflect.DeepEqual(rules[0].Resources, []string{"deployments"}) {
				t.Errorf("resource rules %+v, want UPDATE of apps deployments", rules)
			}
			if len(spec.MatchConditions) != 1 || spec.MatchConditions[0].Expression != tc.wantUser {
				t.Errorf("match conditions %+v, want %q", spec.MatchConditions, tc.wantUser)
			}
			if !reflect.DeepEqual(binding.Spec.ValidationActions, []admissionv1.ValidationAction{admissionv1.Deny}) {
				t.Errorf("validation actions %v, want Deny", binding.Spec.ValidationActions)
			}
			selector := binding.Spec.MatchResources
			switch {
			case tc.namespace == "" && selector != nil:
				t.Errorf("binding selects %+v without a known namespace", selector)
			case tc.namespace != "" && (selector == nil || selector.NamespaceSelector == nil ||
				!reflect.DeepEqual(selector.NamespaceSelector.MatchExpressions[0].Values, []string{tc.namespace})):
				t.Errorf("binding selects %+v, want namespace %s", selector, tc.namespace)
			}
			for _, v := range spec.Validations {
				msg := v.Message + v.MessageExpression
				if !strings.Contains(msg, MessagePrefix) || v.Reason == nil || *v.Reason != metav1.StatusReasonForbidden {
					t.Errorf("validation %q: message %q, reason %v", v.Expression, msg, v.Reason)
				}
			}
		})
	}
}

// TestGuardAllowsWhatTheConfigWrites: exactly the config's targets, containers, variables and
// annotations are named; pinned images are not.
func TestGuardAllowsWhatTheConfigWrites(t *testing.T) {
	policy, _ := For(guardConfig(t, "apps"), "apps", "refresh")
	vars := map[string]string{}
	for _, v := range policy.Spec.Variables {
		vars[v.Name] = v.Expression
	}
	for name, want := range map[string]string{
		"allowedAnnotations": "object.metadata.name == 'web' ? ['example.com/web-digest', 'example.com/worker-digest', " +
			"'example.com/sidecar-digest', " +
			"'example.com/proxy-digest', 'image-refresh.io/status-web', 'image-refresh.io/status-worker', " +
			"'image-refresh.io/status-sidecar', " +
			"'image-refresh.io/status-proxy'] : " +
			"object.metadata.name == 'other' ? ['example.com/other-digest', 'image-refresh.io/status-other'] : " +
			"object.metadata.name == 'jobs' ? ['example.com/jobs-digest', 'image-refresh.io/status-jobs'] : []",
		"allowedTemplateAnnotations": "object.metadata.name == 'web' ? ['kubectl.kubernetes.io/restartedAt'] : " +
			"object.metadata.name == 'other' ? ['kubectl.kubernetes.io/restartedAt'] : object.metadata.name == 'jobs' ? [] : []",
		"writtenContainers": "object.metadata.name == 'web' ? ['app', 'proxy'] : object.metadata.name == 'other' ? [] : " +
			"object.metadata.name == 'jobs' ? ['api'] : []",
		"target2Container0New": "variables.newContainers.filter(c, c.name == 'api')",
		"target0Container0Env0New": "(variables.target0Container0New.size() == 1 ? " +
			"variables.target0Container0New[0].?env.orValue([]) : []).filter(e, e.name == 'WORKER_DIGEST')",
		"target0Container1Env0Old": "(variables.target0Container1Old.size() == 1 ? " +
			"variables.target0Container1Old[0].?env.orValue([]) : []).filter(e, e.name == 'SIDECAR_DIGEST')",
	} {
		if vars[name] != want {
			t.Errorf("variable %s:\n got %s\nwant %s", name, vars[name], want)
		}
	}
	all := fmt.Sprint(policy.Spec)
	for _, absent := range []string{"pinned", "PINNED_DIGEST", "target1Container0"} {
		if strings.Contains(all, absent) {
			t.Errorf("the guard names %q", absent)
		}
	}
	if !strings.Contains(all, "object.metadata.name in ['web', 'other', 'jobs']") {
		t.Errorf("the guard does not limit the refresher to its targets")
	}
}

func TestGuardNilWhenAllPinned(t *testing.T) {
	cfg := guardConfig(t, "apps")
	cfg.Spec.Images = cfg.Spec.Images[len(cfg.Spec.Images)-1:]
	if p, b := For(cfg, "apps", "refresh"); p != nil || b != nil {
		t.Errorf("Guard of an all-pinned config = %v, %v; want nothing", p, b)
	}
}

// TestGuardSetImage: a set-image container's image may move only to what the refresher writes,
// '<repository as configured>@sha256:<64 hex>'; its other fields, env included unless a set-env
// image writes it too, are compared whole.
func TestGuardSetImage(t *testing.T) {
	policy, _ := For(guardConfig(t, "apps"), "apps", "refresh")
	messages := map[string]string{}
	for _, v := range policy.Spec.Validations {
		messages[v.Message] = v.Expression
	}
	for _, tc := range []struct {
		container, repository string
	}{
		{"target0Container1", "example.com:5000/proxy"},
		{"target2Container0", "docker.io/tracebloc/jobs-manager"},
	} {
		name := map[string]string{"target0Container1": "proxy", "target2Container0": "api"}[tc.container]
		expr, ok := messages[MessagePrefix+"container "+name+" image may only be set to "+tc.repository+"@sha256:<64 hex>"]
		if !ok {
			t.Errorf("%s: no validation of its image", name)
			continue
		}
		want := fmt.Sprintf(
			"variables.%[1]sNew[0].?image == variables.%[1]sOld[0].?image || "+
				"variables.%[1]sNew[0].?image.orValue('').matches(%[2]s)",
			tc.container,
			quote(pinnedPattern(tc.repository)),
		)
		if !strings.HasSuffix(expr, want) {
			t.Errorf("%s image:\n got %s\nwant …%s", name, expr, want)
		}
		if _, ok := messages[MessagePrefix+"container "+name+" image may not change"]; ok {
			t.Errorf("%s: its image is also compared whole", name)
		}
	}
	if _, ok := messages[MessagePrefix+"container api env may not change"]; !ok {
		t.Errorf("the set-image-only container api: env is not compared whole")
	}
	if _, ok := messages[MessagePrefix+"container proxy env may change only in SIDECAR_DIGEST"]; !ok {
		t.Errorf("container proxy (set-env and set-image): its env is not checked")
	}

	digest := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		name, repository, image string
		want                    bool
	}{
		{"what the refresher writes", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager@" + digest, true},
		{"with a port", "example.com:5000/proxy", "example.com:5000/proxy@" + digest, true},
		{"the repository spelled otherwise", "docker.io/tracebloc/jobs-manager", "tracebloc/jobs-manager@" + digest, false},
		{"another repository", "docker.io/tracebloc/jobs-manager", "docker.io/evil/jobs-manager@" + digest, false},
		{"a longer repository", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager-evil@" + digest, false},
		{"a dot is not any character", "example.com:5000/proxy", "exampleXcom:5000/proxy@" + digest, false},
		{"a tag", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager:evil", false},
		{"a tag and the digest", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager:evil@" + digest,
			false},
		{"uppercase hex", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager@" + strings.ToUpper(digest),
			false},
		{"a short digest", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager@" + digest[:70], false},
		{"another algorithm", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager@sha512:" + digest[7:],
			false},
		{"a trailing newline", "docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/jobs-manager@" + digest + "\n",
			false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// CEL's matches is RE2, as Go's regexp.
			if got := regexp.MustCompile(pinnedPattern(tc.repository)).MatchString(tc.image); got != tc.want {
				t.Errorf("%s matches %q = %v, want %v", pinnedPattern(tc.repository), tc.image, got, tc.want)
			}
		})
	}
}

// TestGuardOverKindsAndNamespaces: with a DaemonSet in another namespace the guard matches both resources in both
// namespaces, tells its targets apart by name, namespace and resource, and compares the fields of both spec
// types; a config of Deployments in one namespace keeps the name-only match.
func TestGuardOverKindsAndNamespaces(t *testing.T) {
	cfg := guardConfig(t, "apps")
	cfg.Spec.Images = append(cfg.Spec.Images, config.Image{Name: "agent", Repository: "example.com/agent", Tag: "prod",
		Action: config.ActionRolloutRestart, Annotation: "example.com/agent-digest",
		Target: config.Target{Kind: config.KindDaemonSet, Name: "agent", Namespace: "agents", Container: "agent"}})
	policy, binding := For(cfg, "apps", "refresh")
	if got := policy.Spec.MatchConstraints.ResourceRules[0].Resources; !slices.Equal(
		got,
		[]string{"deployments", "daemonsets"},
	) {
		t.Errorf("resources %v", got)
	}
	if got := binding.Spec.MatchResources.NamespaceSelector.MatchExpressions[0].Values; !slices.Equal(
		got,
		[]string{"apps", "agents"},
	) {
		t.Errorf("namespaces %v", got)
	}
	messages := map[string]string{}
	for _, v := range policy.Spec.Validations {
		messages[v.Message] = v.Expression
	}
	// Every field of both spec types but the template, read apart from guardFields (jsonFields).
	specFields := append(jsonFields(reflect.TypeFor[appsv1.DeploymentSpec]()),
		jsonFields(reflect.TypeFor[appsv1.DaemonSetSpec]())...)
	for _, field := range slices.DeleteFunc(specFields, func(f string) bool { return f == "template" }) {
		want := fmt.Sprintf("object.spec.?%[1]s == oldObject.spec.?%[1]s", field)
		if got := messages[MessagePrefix+"spec."+field+" may not change"]; got != want {
			t.Errorf("spec.%s is compared by %q; want %q", field, got, want)
		}
	}
	agent := "object.metadata.name == 'agent' && request.namespace == 'agents' && request.resource.resource == " +
		"'daemonsets'"
	if got := messages[MessagePrefix+"annotation example.com/agent-digest may only be set to a "+
		"sha256 digest"]; !strings.HasPrefix(
		got,
		"!("+agent+") || ",
	) {
		t.Errorf("the agent's annotation is checked by %s", got)
	}
	// The API server counts a DaemonSet's template generation up in an annotation before admission.
	for _, v := range policy.Spec.Variables {
		if v.Name == "allowedAnnotations" &&
			!strings.Contains(
				v.Expression,
				agent+" ? ['example.com/agent-digest', 'image-refresh.io/status-agent', '"+appsv1.DeprecatedTemplateGeneration+"']",
			) {
			t.Errorf("allowedAnnotations %s: want the agent's own and the server's template generation", v.Expression)
		}
	}
	if first := policy.Spec.Validations[0]; !strings.Contains(first.Expression, agent) ||
		!strings.Contains(first.MessageExpression, "request.kind.kind") {
		t.Errorf("first validation %+v: want the targets by name, namespace and resource", first)
	}

	single, _ := For(guardConfig(t, "apps"), "apps", "refresh")
	for _, v := range single.Spec.Validations {
		if strings.Contains(v.Expression, "request.namespace") || strings.Contains(v.Expression, "request.resource") ||
			v.Message == MessagePrefix+"spec.updateStrategy may not change" {
			t.Errorf("a Deployment-only config in one namespace: %s %s", v.Message, v.Expression)
		}
	}
}
