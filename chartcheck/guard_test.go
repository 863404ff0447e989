package chartcheck

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/tracebloc/image-refresh/internal/contract/guard"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
	"github.com/tracebloc/image-refresh/postrender"
)

// editStream applies edits (old text → new, each old text once in the stream) and returns the
// findings of the edited stream, "check: finding", and its check results.
func editStream(t *testing.T, stream []byte, edits map[string]string, namespace string) ([]string, []CheckResult) {
	t.Helper()
	edited := bytes.Clone(stream)
	for old, new := range edits {
		if n := bytes.Count(stream, []byte(old)); n != 1 {
			t.Fatalf("the edit's old text %q occurs %d times in the stream", old, n)
		}
		edited = bytes.Replace(edited, []byte(old), []byte(new), 1)
	}
	s, err := parseStream(edited)
	if err != nil {
		t.Fatal(err)
	}
	if namespace != "" {
		s.DefaultNamespace(namespace)
	}
	results := checkScenario(s, false, nil, nil, false)
	var got []string
	for _, c := range results {
		for _, f := range c.Findings {
			got = append(got, c.Name+": "+f.String())
		}
	}
	return got, results
}

func resultOf(results []CheckResult, name string) CheckResult {
	for _, r := range results {
		if r.Name == name {
			return r
		}
	}
	return CheckResult{}
}

// TestGuardEdits breaks the admission guard of the valid stream one edit at a time, as
// TestStreamEdits breaks the Role: each weakening (or any other change) of the policy or its
// binding is a finding of admission-guard that names what differs.
func TestGuardEdits(t *testing.T) {
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	const (
		policy  = `admission-guard: ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc" (document 9): `
		binding = `admission-guard: ValidatingAdmissionPolicyBinding "stg-image-refresh-guard.tracebloc" (document 10): `
		config  = `admission-guard: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): `

		imageValidation = "  - expression: object.metadata.name != 'stg-jobs-manager' || " +
			"variables.target0Container0New.size() != 1 || variables.target0Container0Old.size() != 1 || " +
			"variables.target0Container0New[0].?image == variables.target0Container0Old[0].?image\n" +
			"    message: 'image-refresh guard: container api image may not change'\n    reason: Forbidden\n"
		refresher    = "request.userInfo.username == 'system:serviceaccount:tracebloc:stg-image-refresh'"
		bindingStart = "---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n"
		guardOff     = "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n---"
	)
	// The binding, the last document of the stream.
	bindingDoc := string(valid[bytes.Index(valid, []byte(bindingStart)):])
	tests := []struct {
		name  string
		edits map[string]string
		want  []string
	}{
		{
			name:  "failurePolicy Ignore",
			edits: map[string]string{"  failurePolicy: Fail\n": "  failurePolicy: Ignore\n"},
			want:  []string{policy + "expected failurePolicy Fail; found failurePolicy Ignore"},
		},
		{
			name:  "failurePolicy left to the API server's default, Fail",
			edits: map[string]string{"  failurePolicy: Fail\n": ""},
		},
		{
			name:  "a validation removed",
			edits: map[string]string{imageValidation: ""},
			want: []string{
				policy + "expected validation 'image-refresh guard: container api image may not change'; found no such validation",
			},
		},
		{
			name: "a validation's expression altered",
			edits: map[string]string{
				"[0].?value.orValue('').matches('^sha256:[0-9a-f]{64}$')": "[0].?value.orValue('').matches('^sha256:.*$')",
			},
			want: []string{
				policy + "expected validation 'image-refresh guard: container api env INGESTOR_IMAGE_DIGEST may only be set to a " +
					"sha256 digest, as one plain value' with expression " +
					"…[0].?value.orValue('').matches('^sha256:[0-9a-f]{64}$')); found expression " +
					"…[0].?value.orValue('').matches('^sha256:.*$'))",
			},
		},
		{
			name: "a validation's reason altered",
			edits: map[string]string{
				imageValidation: strings.Replace(imageValidation, "reason: Forbidden", "reason: Invalid", 1),
			},
			want: []string{
				policy + "expected validation 'image-refresh guard: container api image may not change' with reason Forbidden; " +
					"found reason Invalid",
			},
		},
		{
			name: "a validation's message altered",
			edits: map[string]string{
				imageValidation: strings.Replace(imageValidation, "container api image", "container api", 1),
			},
			want: []string{
				policy + "expected validation 'image-refresh guard: container api image may not change'; found no such validation",
				policy + "expected no validation but the guard's; found an added validation 'image-refresh guard: container api " +
					"may not change': object.metadata.name != 'stg-jobs-manager' || variables.target0Container0New.size() != 1 || " +
					"variables.target0Container0O…",
			},
		},
		{
			name: "a validation added",
			edits: map[string]string{
				"  validations:\n": "  validations:\n  - expression: object.metadata.name != 'stg-jobs-manager'\n" +
					"    message: nope\n",
			},
			want: []string{
				policy + "expected no validation but the guard's; found an added validation 'nope': object.metadata.name != " +
					"'stg-jobs-manager'",
			},
		},
		{
			// A misspelt field is dropped, as by the API server: no validation at all.
			name:  "every validation gone",
			edits: map[string]string{"  validations:\n": "  validationz:\n"},
			want: []string{
				policy + `expected validation with messageExpression 'image-refresh guard: Deployment ' + object.metadata.name + ` +
					`' is not a target of refresh config stg-image-refresh'; found no such validation`,
				policy + `expected validation 'image-refresh guard: metadata.name may not change'; found no such validation`,
				policy + `expected validation 'image-refresh guard: metadata.generateName may not change'; found no such ` +
					`validation`,
				policy + `expected validation 'image-refresh guard: metadata.namespace may not change'; found no such validation`,
				policy + `expected validation 'image-refresh guard: metadata.selfLink may not change'; found no such validation`,
				policy + fmt.Sprintf(
					"expected %d more validations of the guard; found none of them",
					bytes.Count(valid, []byte("\n  - expression: "))-maxMissing,
				),
			},
		},
		{
			name:  "validations reordered: the same set",
			edits: map[string]string{imageValidation: "", "  validations:\n": "  validations:\n" + imageValidation},
		},
		{
			name:  "a matchCondition for another user",
			edits: map[string]string{refresher: "request.userInfo.username == 'system:serviceaccount:tracebloc:default'"},
			want: []string{
				policy + "expected matchCondition 'refresher-service-account' with expression " + refresher +
					"; found expression request.userInfo.username == 'system:serviceaccount:tracebloc:default'",
			},
		},
		{
			name:  "a matchCondition added: the guard binds fewer requests",
			edits: map[string]string{"  matchConditions:\n": "  matchConditions:\n  - name: never\n    expression: 'false'\n"},
			want:  []string{policy + "expected no matchCondition but the guard's; found an added matchCondition 'never': false"},
		},
		{
			name:  "the guard matches CREATE instead of UPDATE",
			edits: map[string]string{"    - operations:\n      - UPDATE\n": "    - operations:\n      - CREATE\n"},
			want: []string{
				policy + `expected matchConstraints.resourceRules ` +
					`[{"operations":["UPDATE"],"apiGroups":["apps"],"apiVersions":["v1"],"resources":["deployments"],"scope":"*"}]; ` +
					`found matchConstraints.resourceRules ` +
					`[{"operations":["CREATE"],"apiGroups":["apps"],"apiVersions":["v1"],"resources":["deployments"],"scope":"*"}]`,
			},
		},
		{
			name: "the guard matches nothing by its object selector",
			edits: map[string]string{
				"  matchConstraints:\n": "  matchConstraints:\n    objectSelector: {matchLabels: {never: \"true\"}}\n",
			},
			want: []string{
				policy + `expected matchConstraints.objectSelector {}; found matchConstraints.objectSelector ` +
					`{"matchLabels":{"never":"true"}}`,
			},
		},
		{
			name:  "a variable altered",
			edits: map[string]string{"[''api''] : []'": "[''api'', ''pods-monitor''] : []'"},
			want: []string{
				policy + "expected variable 'writtenContainers' with expression object.metadata.name == 'stg-jobs-manager' ? " +
					"['api'] : []; found expression object.metadata.name == 'stg-jobs-manager' ? ['api', 'pods-monitor'] : []",
			},
		},
		{
			name:  "a variable removed and another added",
			edits: map[string]string{"  - name: changedContainers\n": "  - name: changedContainerz\n"},
			want: []string{
				policy + "expected variable 'changedContainers'; found no such variable",
				policy + "expected no variable but the guard's; found an added variable 'changedContainerz': " +
					"variables.newContainers.filter(c, !(c.name in variables.writtenContainers) && !(c in " +
					"variables.oldContainers)).map(c, c.…",
			},
		},
		{
			name: "variables reordered",
			edits: map[string]string{
				"  - name: oldAnnotations\n" +
					"    expression: oldObject.metadata.?annotations.orValue({})\n  - name: newAnnotations\n" +
					"    expression: object.metadata.?annotations.orValue({})\n": "  - name: newAnnotations\n" +
					"    expression: object.metadata.?annotations.orValue({})\n" +
					"  - name: oldAnnotations\n    expression: oldObject.metadata.?annotations.orValue({})\n",
			},
			want: []string{
				policy + "expected variables in the guard's order (one may use only those before it): variables[0] " +
					"'oldAnnotations'; found variables[0] 'newAnnotations'",
			},
		},
		{
			name:  "the binding's policyName changed",
			edits: map[string]string{"  policyName: stg-image-refresh-guard.tracebloc\n": "  policyName: other\n"},
			want:  []string{binding + "expected policyName stg-image-refresh-guard.tracebloc; found policyName other"},
		},
		{
			name:  "the binding removed",
			edits: map[string]string{bindingDoc: ""},
			want: []string{
				config + `expected ValidatingAdmissionPolicyBinding "stg-image-refresh-guard.tracebloc" (the admission guard, ` +
					`spec.job.admissionGuard); found no such object in the stream`,
			},
		},
		{
			name: "the policy renamed",
			edits: map[string]string{
				"kind: ValidatingAdmissionPolicy\nmetadata:\n" +
					"  name: stg-image-refresh-guard.tracebloc\n": "kind: ValidatingAdmissionPolicy\nmetadata:\n" +
					"  name: stg-image-refresh-guard\n",
			},
			want: []string{
				config + `expected ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc" (the admission guard, ` +
					`spec.job.admissionGuard); found no such object in the stream`,
			},
		},
		{
			name:  "validationActions Warn",
			edits: map[string]string{"  validationActions:\n  - Deny\n": "  validationActions:\n  - Warn\n"},
			want:  []string{binding + "expected validationActions [\"Deny\"]; found validationActions [\"Warn\"]"},
		},
		{
			name:  "validationActions Deny and Audit, in flow style",
			edits: map[string]string{"  validationActions:\n  - Deny\n": "  validationActions: [Deny, Audit]\n"},
			want:  []string{binding + "expected validationActions [\"Deny\"]; found validationActions [\"Deny\",\"Audit\"]"},
		},
		{
			name: "the binding's namespace selector dropped: every namespace",
			edits: map[string]string{
				"  matchResources:\n    namespaceSelector:\n      matchExpressions:\n      - key: kubernetes.io/metadata.name\n" +
					"        operator: In\n        values:\n        - tracebloc\n": "",
			},
			want: []string{
				binding + `expected matchResources.namespaceSelector ` +
					`{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"In","values":["tracebloc"]}]}; found ` +
					`matchResources.namespaceSelector {}`,
			},
		},
		{
			name: "the binding as a Helm hook",
			edits: map[string]string{
				bindingStart + "metadata:\n": bindingStart + "metadata:\n  annotations: {helm.sh/hook: post-install}\n",
			},
			want: []string{
				binding + "expected the admission guard as a resource of the release; found a Helm hook (helm.sh/hook: " +
					"post-install), which Helm neither upgrades nor deletes with the release",
			},
		},
		{
			name: "the policy twice",
			edits: map[string]string{
				bindingStart: "---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n" +
					"metadata: {name: stg-image-refresh-guard.tracebloc, namespace: other}\nspec: {}\n" + bindingStart,
			},
			want: []string{
				`admission-guard: ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc" (document 10): expected one ` +
					`ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc"; found 2: ValidatingAdmissionPolicy ` +
					`"stg-image-refresh-guard.tracebloc" (document 9), ValidatingAdmissionPolicy ` +
					`"stg-image-refresh-guard.tracebloc" (document 10)`,
			},
		},
		{
			name: "a paramKind added",
			edits: map[string]string{
				"  failurePolicy: Fail\n": "  failurePolicy: Fail\n  paramKind: {apiVersion: v1, kind: ConfigMap}\n",
			},
			want: []string{policy + `expected paramKind unset; found paramKind {"apiVersion":"v1","kind":"ConfigMap"}`},
		},
		{
			name: "the guard turned off but still in the stream",
			edits: map[string]string{
				guardOff: "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n      job: {admissionGuard: false}\n" +
					"---",
			},
			want: []string{
				`admission-guard: ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc" (document 9): expected no ` +
					`admission guard: spec.job.admissionGuard is false; found an image-refresh ValidatingAdmissionPolicy`,
				`admission-guard: ValidatingAdmissionPolicyBinding "stg-image-refresh-guard.tracebloc" (document 10): expected ` +
					`no admission guard: spec.job.admissionGuard is false; found an image-refresh ValidatingAdmissionPolicyBinding`,
			},
		},
		{
			name: "the guard turned off and left out: a warning",
			edits: map[string]string{
				guardOff: "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n      job: {admissionGuard: false}\n" +
					"---",
				string(valid[bytes.Index(valid, []byte(guardStart)):]): "",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, results := editStream(t, valid, tt.edits, "")
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			r := resultOf(results, guardCheck)
			wantStatus := StatusPass
			switch {
			case len(tt.want) > 0:
				wantStatus = StatusFail
			case strings.Contains(tt.name, "a warning"):
				wantStatus = StatusWarn
			}
			if r.Status != wantStatus {
				t.Errorf("check %s is %q, want %q", guardCheck, r.Status, wantStatus)
			}
			if wantStatus == StatusWarn && !strings.Contains(r.Warning, "may patch anything in its targets' pod templates") {
				t.Errorf("warning %q", r.Warning)
			}
		})
	}
}

// TestGuardWithoutANamespace: a chart that names no namespace for its config gets the guard
// the post-renderer can write without one (named <config>-guard, the ServiceAccount matched in
// the request's namespace); chartcheck expects that one, also once -n puts the objects into a
// namespace, and a guard named after that namespace instead is not it.
func TestGuardWithoutANamespace(t *testing.T) {
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	// The chart's part of the stream, without namespaces, post-rendered again.
	chart := valid[:bytes.Index(
		valid,
		[]byte("---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: stg-image-refresh\n"),
	)]
	chart = bytes.ReplaceAll(chart, []byte("      namespace: tracebloc\n"), nil)
	chart = bytes.ReplaceAll(chart, []byte("  namespace: tracebloc\n"), nil)
	stream, err := postrender.Render(chart, postrender.Options{})
	if err != nil {
		t.Fatal(err)
	}
	name := guard.Name("stg-image-refresh", "")
	if !bytes.Contains(stream, []byte("kind: ValidatingAdmissionPolicy\nmetadata:\n  name: "+name+"\n")) {
		t.Fatalf("the post-renderer wrote no guard %s:\n%s", name, stream)
	}
	for _, namespace := range []string{"", "tracebloc"} {
		got, results := editStream(t, stream, nil, namespace)
		if len(got) > 0 || resultOf(results, guardCheck).Status != StatusPass {
			t.Errorf(
				"-n %q: %s %s; findings:\n  %s",
				namespace,
				guardCheck,
				resultOf(results, guardCheck).Status,
				strings.Join(got, "\n  "),
			)
		}
	}
	renamed := bytes.ReplaceAll(stream, []byte("  name: "+name+"\n"), []byte("  name: "+name+".tracebloc\n"))
	got, _ := editStream(t, renamed, nil, "tracebloc")
	want := []string{
		`admission-guard: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): expected ` +
			`ValidatingAdmissionPolicy "stg-image-refresh-guard" (the admission guard, spec.job.admissionGuard); found no ` +
			`such object in the stream`,
		`admission-guard: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): expected ` +
			`ValidatingAdmissionPolicyBinding "stg-image-refresh-guard" (the admission guard, spec.job.admissionGuard); found ` +
			`no such object in the stream`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestGuardWhenNothingFloats: with every image pinned nothing is injected, the guard neither.
func TestGuardWhenNothingFloats(t *testing.T) {
	base, err := os.ReadFile(testdataDir + "/streams/cronjob-all-pinned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	guard := valid[bytes.Index(valid, []byte(guardStart)):]
	_, results := editStream(t, base, nil, "")
	if r := resultOf(results, guardCheck); r.Status != StatusPass {
		t.Errorf("without a guard: %s is %q, want pass", guardCheck, r.Status)
	}
	got, _ := editStream(t, append(bytes.Clone(base), guard...), nil, "")
	var guardFindings []string
	for _, f := range got {
		if strings.HasPrefix(f, guardCheck+": ") {
			guardFindings = append(guardFindings, f)
		}
	}
	want := []string{
		`admission-guard: ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc" (document 9): expected nothing ` +
			`injected: every image is pinned; found an image-refresh ValidatingAdmissionPolicy`,
		`admission-guard: ValidatingAdmissionPolicyBinding "stg-image-refresh-guard.tracebloc" (document 10): expected ` +
			`nothing injected: every image is pinned; found an image-refresh ValidatingAdmissionPolicyBinding`,
	}
	if !slices.Equal(guardFindings, want) {
		t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(guardFindings, "\n  "), strings.Join(want, "\n  "))
	}
}

// guardStart opens the policy, the first guard document of a post-rendered stream.
const guardStart = "---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n"

// TestFixtureStreamsArePostRendered: the fixture streams the post-renderer accepts are its own
// output (running it again changes nothing), so they carry the guard guard.For generates;
// those broken on purpose after post-rendering end with the guard of their config. A change of
// the guard (a field a Kubernetes upgrade adds) is one `go test ./chartcheck -update` away.
func TestFixtureStreamsArePostRendered(t *testing.T) {
	stream := func(name string) (string, []byte) {
		path := testdataDir + "/streams/" + name + ".yaml"
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return path, data
	}
	for _, name := range []string{
		"valid", "annotation-key-wrong", "deployment-privileged", "ingestor-docker-io", "verification", "guard-off",
	} {
		path, data := stream(name)
		out, err := postrender.Render(data, postrender.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		golden.Assert(t, path, out)
	}
	// Broken after post-rendering: the Role (role-namespace-wide), the Deployment's env
	// (env-chart-owned), a config the post-renderer refuses (ingestor-rollout-restart: its
	// guard is guard.For's, as YAML).
	for _, name := range []string{"role-namespace-wide", "env-chart-owned", "ingestor-rollout-restart"} {
		path, data := stream(name)
		i := bytes.Index(data, []byte(guardStart))
		if i < 0 {
			t.Fatalf("%s has no guard", name)
		}
		s, err := parseStream(data)
		if err != nil {
			t.Fatal(err)
		}
		c := &checkedRelease{stream: s}
		if findings, ok := c.loadConfig(); !ok || len(findings) > 0 {
			t.Fatalf("%s: %v", name, findings)
		}
		golden.Assert(t, path, append(bytes.Clone(data[:i]), guardYAML(t, c)...))
	}
}

// guardYAML is the guard of a stream's config as the post-renderer writes it: valid's guard
// when the config is valid's, else guard.For's objects as YAML (another key order, the
// same objects).
func guardYAML(t *testing.T, c *checkedRelease) []byte {
	t.Helper()
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := parseStream(valid)
	if err != nil {
		t.Fatal(err)
	}
	vc := &checkedRelease{stream: vs}
	vc.loadConfig()
	if reflect.DeepEqual(vc.cfg, c.cfg) {
		return valid[bytes.Index(valid, []byte(guardStart)):]
	}
	policy, binding := guard.For(c.cfg, c.guardNamespace, c.cfg.Metadata.Name)
	labels := map[string]string{
		"app.kubernetes.io/instance": c.cfg.Metadata.Name,
		postrender.ManagedByLabel:    postrender.ManagedByValue,
		"app.kubernetes.io/name":     "image-refresh",
	}
	var out []byte
	for _, obj := range []map[string]any{
		{
			"apiVersion": policy.APIVersion,
			"kind":       policy.Kind,
			"metadata":   map[string]any{"name": policy.Name, "labels": labels},
			"spec":       policy.Spec,
		},
		{
			"apiVersion": binding.APIVersion,
			"kind":       binding.Kind,
			"metadata":   map[string]any{"name": binding.Name, "labels": labels},
			"spec":       binding.Spec,
		},
	} {
		data, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, "---\n"...), data...)
	}
	return out
}

// TestDeprecationWarning: a config using the deprecated spec.waitLimit passes refresh-config
// with a warning that names the replacement; nothing else changes.
func TestDeprecationWarning(t *testing.T) {
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	const schedule = "      schedule: \"7,22,37,52 * * * *\"\n"
	got, results := editStream(t, valid, map[string]string{schedule: schedule + "      waitLimit: 4\n"}, "")
	if len(got) != 0 {
		t.Errorf("findings %q, want none", got)
	}
	r := resultOf(results, refreshConfigCheck)
	if r.Status != StatusWarn || !strings.Contains(r.Warning, "spec.waitLimit is deprecated") ||
		!strings.Contains(r.Warning, "set spec.waitTimeout instead") {
		t.Errorf("refresh-config: %q, warning %q; want a deprecation warning", r.Status, r.Warning)
	}
}
