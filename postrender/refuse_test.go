package postrender

import (
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
)

// refreshConfigMap renders a chart's config ConfigMap around a refresh.yaml body.
func refreshConfigMap(body string) string {
	var b strings.Builder
	b.WriteString("---\n# Source: app/templates/refresh.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " +
		"app-refresh\n  labels:\n    image-refresh.io/config: \"true\"\ndata:\n  refresh.yaml: |\n")
	for line := range strings.Lines(body) {
		b.WriteString("    " + line)
	}
	return b.String()
}

// refreshBody is a refresh config with one rollout-restart image on web/api and one set-env
// image on web/api's DIGEST var; each may be pinned.
func refreshBody(restartDigest, envDigest string) string {
	return `apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: app-refresh}
spec:
  images:
  - name: web
    repository: example.com/web
    tag: prod
    digest: "` + restartDigest + `"
    action: rollout-restart
    target: {name: web, container: api}
    annotation: example.com/web-digest
  - name: worker
    repository: example.com/worker
    tag: prod
    digest: "` + envDigest + `"
    action: set-env
    env: WORKER_DIGEST
    target: {name: web, container: api}
    annotation: example.com/worker-digest
`
}

// webDeployment renders the target Deployment with the given api container body.
func webDeployment(container string) string {
	return `---
# Source: app/templates/web.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: api
` + container
}

const (
	floatingContainer = "        image: example.com/web:prod\n        imagePullPolicy: Always\n"
	pinnedDigest      = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

var floatingConfig = refreshConfigMap(refreshBody("", ""))

func TestRefusals(t *testing.T) {
	fileConfig, err := config.Parse([]byte(refreshBody("", "")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		in     string
		opts   Options
		reason Reason
		// want are substrings of the message: the image, the document and the fix.
		want []string
	}{{
		name:   "target Deployment missing",
		in:     floatingConfig + strings.Replace(webDeployment(floatingContainer), "name: web", "name: frontend", 1),
		reason: ReasonTargetMissing,
		want: []string{`image "web" (spec.images[0], example.com/web:prod)`, "targets Deployment web, which the release " +
			"does not render", "it renders Deployment frontend", "set spec.images[0].target.name"},
	}, {
		name:   "target container missing",
		in:     floatingConfig + strings.Replace(webDeployment(floatingContainer), "name: api", "name: server", 1),
		reason: ReasonTargetMissing,
		want: []string{`image "web"`, `targets Deployment web (document 2, app/templates/web.yaml), but container ` +
			`"api" not found`, `it has "server"`, "set spec.images[0].target.container"},
	}, {
		name: "set-env var rendered with a literal value",
		in: floatingConfig +
			webDeployment(floatingContainer+"        env:\n        - name: WORKER_DIGEST\n          value: sha256:abc\n"),
		reason: ReasonEnvRendered,
		want: []string{`image "worker" (spec.images[1], example.com/worker:prod) floats`, "Deployment web (document 2, " +
			"app/templates/web.yaml)", `renders env WORKER_DIGEST with value "sha256:abc"`, "silent downgrade",
			"leave WORKER_DIGEST out of the chart while the image floats"},
	}, {
		name: "set-env var rendered with valueFrom",
		in: floatingConfig + webDeployment(floatingContainer+"        env:\n        - name: WORKER_DIGEST\n          "+
			"valueFrom: {configMapKeyRef: {name: x, key: \"y\"}}\n"),
		reason: ReasonEnvRendered,
		want:   []string{`image "worker"`, "renders env WORKER_DIGEST from valueFrom"},
	}, {
		name: "rollout-restart target digest-pinned",
		in: floatingConfig +
			webDeployment("        image: example.com/web@"+pinnedDigest+"\n        imagePullPolicy: Always\n"),
		reason: ReasonRestartPinned,
		want: []string{`image "web" (spec.images[0], example.com/web:prod) floats`, "Deployment web (document 2, " +
			"app/templates/web.yaml)", "digest-pinned image example.com/web@sha256:0123",
			"run the image by tag (example.com/web:prod)"},
	}, {
		name: "rollout-restart imagePullPolicy IfNotPresent",
		in: floatingConfig +
			webDeployment("        image: example.com/web:prod\n        imagePullPolicy: IfNotPresent\n"),
		reason: ReasonPullPolicy,
		want: []string{`image "web"`, "runs example.com/web:prod with imagePullPolicy IfNotPresent",
			"set imagePullPolicy: Always on that container while web floats"},
	}, {
		name:   "rollout-restart imagePullPolicy absent on a non-latest tag",
		in:     floatingConfig + webDeployment("        image: example.com/web:prod\n"),
		reason: ReasonPullPolicy,
		want: []string{`image "web"`, `with no imagePullPolicy, which Kubernetes defaults to IfNotPresent for ` +
			`"example.com/web:prod"`, "set imagePullPolicy: Always"},
	}, {
		name: "invalid config in the stream",
		in: refreshConfigMap(strings.Replace(refreshBody("", ""), "action: rollout-restart", "action: reboot", 1)) +
			webDeployment(floatingContainer),
		reason: ReasonInvalidConfig,
		want: []string{"refresh config in ConfigMap app-refresh (document 1, app/templates/refresh.yaml)",
			`spec.images[0] (web).action "reboot": unsupported`, "fix the chart values"},
	}, {
		name: "invalid --config",
		in:   webDeployment(floatingContainer),
		opts: Options{Config: &config.RefreshConfig{APIVersion: config.APIVersion, Kind: config.Kind,
			Metadata: config.ObjectMeta{Name: "Bad_Name"}}},
		reason: ReasonInvalidConfig,
		want:   []string{"--config:", `metadata.name "Bad_Name"`, "spec.images: at least one image is required"},
	}, {
		name: "config ConfigMap without refresh.yaml",
		in: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-refresh\n  labels: {image-refresh.io/config: " +
			"\"true\"}\ndata:\n  other.yaml: x\n",
		reason: ReasonInvalidConfig,
		want: []string{"ConfigMap app-refresh (document 1) is labelled image-refresh.io/config",
			"no string data.refresh.yaml", "or drop the label"},
	}, {
		name:   "--config and a config in the stream",
		in:     floatingConfig + webDeployment(floatingContainer),
		opts:   Options{Config: fileConfig},
		reason: ReasonConfigConflict,
		want: []string{"--config was given, but the chart renders its own refresh config in ConfigMap app-refresh " +
			"(document 1, app/templates/refresh.yaml)", "drop --config"},
	}, {
		name: "two configs in the stream",
		in: floatingConfig + strings.Replace(floatingConfig, "name: app-refresh\n", "name: other-refresh\n", 1) +
			webDeployment(floatingContainer),
		reason: ReasonConfigConflict,
		want: []string{"renders 2 ConfigMaps labelled image-refresh.io/config", "ConfigMap app-refresh (document 1",
			"ConfigMap other-refresh (document 2", "remove or unlabel all but one"},
	}, {
		name: "malformed YAML",
		in: floatingConfig +
			"---\n# Source: app/templates/broken.yaml\nkind: ConfigMap\nmetadata:\n  name: x\n   labels: {}\n",
		reason: ReasonMalformedStream,
		want: []string{"document 2 (starting at line 31 of the input, app/templates/broken.yaml", "malformed YAML",
			"fix the template"},
	}, {
		name:   "document that is not a mapping",
		in:     webDeployment(floatingContainer) + "---\n- a\n- b\n",
		reason: ReasonMalformedStream,
		want:   []string{"document 2", "is a YAML sequence, not a mapping"},
	}, {
		name: "injected ServiceAccount already rendered by the chart",
		in: floatingConfig + webDeployment(floatingContainer) +
			"---\n# Source: app/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-refresh\n",
		reason: ReasonNameTaken,
		want: []string{"already renders ServiceAccount app-refresh (document 3, app/templates/sa.yaml)",
			`inject a ServiceAccount of that name for refresh config "app-refresh"`, "rename the config (metadata.name)"},
	}, {
		name: "injected ConfigMap already rendered by the chart",
		in: webDeployment(floatingContainer) +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-refresh-config\n",
		opts:   Options{Config: fileConfig},
		reason: ReasonNameTaken,
		want:   []string{"already renders ConfigMap app-refresh-config (document 2)", "inject a ConfigMap of that name"},
	}, {
		name: "target name matches Deployments in two namespaces",
		in: floatingConfig + strings.Replace(webDeployment(floatingContainer), "name: web", "name: web\n  namespace: a",
			1) + strings.Replace(webDeployment(floatingContainer), "name: web", "name: web\n  namespace: b", 1),
		reason: ReasonTargetMissing,
		want: []string{"targets Deployment web, which matches 2 documents", "Deployment a/web (document 2",
			"Deployment b/web (document 3", "set spec.images[0].target.namespace"},
	}, {
		name: "config ConfigMap is a Helm hook",
		in: strings.Replace(floatingConfig, "  labels:\n", "  annotations:\n    helm.sh/hook: pre-install\n  labels:\n",
			1) + webDeployment(floatingContainer),
		reason: ReasonInvalidConfig,
		want: []string{"ConfigMap app-refresh (document 1, app/templates/refresh.yaml) holds the refresh config, but it " +
			"is a Helm hook (helm.sh/hook: pre-install)", "the CronJob could not mount it",
			"without the helm.sh/hook annotation"},
	}, {
		name: "config ConfigMap in a List that is a Helm hook",
		in: strings.Replace(asList("v1", "List", floatingConfig), "  name: list\n",
			"  name: list\n  annotations: {helm.sh/hook: post-install}\n", 1) + webDeployment(floatingContainer),
		reason: ReasonInvalidConfig,
		want: []string{"ConfigMap app-refresh (document 1 at items[0], app/templates/list.yaml) holds the refresh " +
			"config, but it is a Helm hook (helm.sh/hook: post-install)"},
	}, {
		name:   "--config and a config ConfigMap in a List",
		in:     asList("v1", "List", floatingConfig) + webDeployment(floatingContainer),
		opts:   Options{Config: fileConfig},
		reason: ReasonConfigConflict,
		want: []string{"the chart renders its own refresh config in ConfigMap app-refresh (document 1 at items[0], " +
			"app/templates/list.yaml)"},
	}, {
		name: "two configs, one in a List",
		in: floatingConfig + asList("v1", "List", strings.Replace(floatingConfig, "name: app-refresh\n",
			"name: other-refresh\n", 1)) + webDeployment(floatingContainer),
		reason: ReasonConfigConflict,
		want: []string{"renders 2 ConfigMaps labelled",
			"ConfigMap other-refresh (document 2 at items[0], app/templates/list.yaml)"},
	}, {
		name: "target Deployment in a List pulls IfNotPresent",
		in: floatingConfig + asList("v1", "List", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
			webDeployment("        image: example.com/web:prod\n        imagePullPolicy: IfNotPresent\n")),
		reason: ReasonPullPolicy,
		want: []string{`container "api" of Deployment web (document 2 at items[1], app/templates/list.yaml) runs ` +
			`example.com/web:prod with imagePullPolicy IfNotPresent`},
	}, {
		name:   "a list named like the target is not a Deployment",
		in:     floatingConfig + "---\napiVersion: apps/v1\nkind: DeploymentList\nmetadata: {name: web}\nitems: []\n",
		reason: ReasonTargetMissing,
		want:   []string{"targets Deployment web, which the release does not render (it renders no Deployment)"},
	}, {
		name: "injected ServiceAccount already rendered in a List, labelled as if injected",
		in: floatingConfig + webDeployment(floatingContainer) + asList("v1", "List", "apiVersion: v1\n"+
			"kind: ServiceAccount\nmetadata:\n  name: app-refresh\n  labels: {app.kubernetes.io/managed-by: image-refresh}\n"),
		reason: ReasonNameTaken,
		want:   []string{"already renders ServiceAccount app-refresh (document 3 at items[0], app/templates/list.yaml)"},
	}, {
		name: "a ValidatingAdmissionPolicy of the guard's name rendered by the chart",
		in: floatingConfig + webDeployment(floatingContainer) +
			"---\n# Source: app/templates/vap.yaml\napiVersion: admissionregistration.k8s.io/v1\n" +
			"kind: ValidatingAdmissionPolicy\nmetadata:\n  name: app-refresh-guard\n  namespace: ignored\n",
		reason: ReasonNameTaken,
		want: []string{"already renders ValidatingAdmissionPolicy ignored/app-refresh-guard (document 3, " +
			"app/templates/vap.yaml)", "inject a ValidatingAdmissionPolicy of that name"},
	}, {
		name: "a guard binding labelled as if injected, in a List",
		in: floatingConfig + webDeployment(floatingContainer) + asList("v1", "List",
			"apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata:\n  name: "+
				"app-refresh-guard\n  labels: {app.kubernetes.io/managed-by: image-refresh}\n"),
		reason: ReasonNameTaken,
		want:   []string{"already renders ValidatingAdmissionPolicyBinding app-refresh-guard (document 3 at items[0]"},
	}, {
		name: "keep-chomped value at the end without a final newline",
		in: floatingConfig + webDeployment(floatingContainer) +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: tail}\ndata:\n  x: |+\n    kept",
		reason: ReasonMalformedStream,
		want:   []string{"ends without a final newline", "end the input with a newline"},
	}} {
		t.Run(tc.name, func(t *testing.T) { assertRefused(t, tc.in, tc.opts, tc.reason, tc.want) })
	}
}

// assertRefused renders in and wants only refusals of reason, the message holding every want.
func assertRefused(t *testing.T, in string, opts Options, reason Reason, want []string) {
	t.Helper()
	out, err := Render([]byte(in), opts)
	if err == nil {
		t.Fatalf("Render succeeded, want a %s refusal; output:\n%s", reason, out)
	}
	if out != nil {
		t.Errorf("Render returned %d bytes of output with its error, want none", len(out))
	}
	refusals := Refusals(err)
	if len(refusals) == 0 {
		t.Fatalf("error %q is not a refusal", err)
	}
	for _, r := range refusals {
		if r.Reason != reason {
			t.Errorf("refusal %q has reason %s, want %s", r, r.Reason, reason)
		}
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("message lacks %q:\n%s", w, err)
		}
	}
}

// TestRefusalsAllReported: every problem of a release is reported in one run.
func TestRefusalsAllReported(t *testing.T) {
	in := floatingConfig + webDeployment("        image: example.com/web:prod\n        env:\n        - name: "+
		"WORKER_DIGEST\n          value: x\n")
	_, err := Render([]byte(in), Options{})
	var reasons []Reason
	for _, r := range Refusals(err) {
		reasons = append(reasons, r.Reason)
	}
	if want := []Reason{ReasonPullPolicy, ReasonEnvRendered}; !equalReasons(reasons, want) {
		t.Errorf("reasons = %v, want %v (err: %v)", reasons, want, err)
	}
}

func equalReasons(a, b []Reason) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAccepted lists releases that look close to a refusal but work.
func TestAccepted(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
	}{{
		name: "imagePullPolicy absent on the latest tag defaults to Always",
		in: refreshConfigMap(strings.Replace(refreshBody("", ""), "example.com/web\n    tag: prod",
			"example.com/web\n    tag: latest", 1)) + webDeployment("        image: example.com/web:latest\n"),
	}, {
		name: "imagePullPolicy absent on an untagged image defaults to Always",
		in: refreshConfigMap(strings.Replace(refreshBody("", ""), "example.com/web\n    tag: prod",
			"example.com:5000/web\n    tag: latest", 1)) + webDeployment("        image: example.com:5000/web\n"),
	}, {
		name: "set-env var named without a value is left to the refresher",
		in:   floatingConfig + webDeployment(floatingContainer+"        env:\n        - name: WORKER_DIGEST\n"),
	}, {
		name: "pinned images are not checked against the release",
		in: refreshConfigMap(strings.Replace(refreshBody("", pinnedDigest), "target: {name: web, container: api}\n    "+
			"annotation: example.com/worker", "target: {name: gone, container: api}\n    annotation: example.com/worker", 1)) +
			webDeployment(floatingContainer),
	}, {
		name: "target Deployment in a v1 List",
		in: floatingConfig + asList("v1", "List", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n",
			webDeployment(floatingContainer)),
	}, {
		name: "target Deployment as a kind-less item of a DeploymentList",
		in: floatingConfig + asList("apps/v1", "DeploymentList", strings.Replace(webDeployment(floatingContainer),
			"apiVersion: apps/v1\nkind: Deployment\n", "", 1)),
	}, {
		name: "config ConfigMap in a v1 List",
		in:   asList("v1", "List", floatingConfig) + webDeployment(floatingContainer),
	}, {
		name: "config ConfigMap as a kind-less item of a ConfigMapList",
		in: asList("v1", "ConfigMapList", strings.Replace(floatingConfig, "apiVersion: v1\nkind: ConfigMap\n", "", 1)) +
			webDeployment(floatingContainer),
	}, {
		name: "a Deployment without a namespace matches a namespaced target",
		in: refreshConfigMap(strings.Replace(refreshBody("", ""), "name: app-refresh}",
			"name: app-refresh, namespace: prod}", 1)) + webDeployment(floatingContainer),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render([]byte(tc.in), Options{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if !strings.Contains(string(out), "kind: CronJob") {
				t.Errorf("no CronJob injected:\n%s", out)
			}
		})
	}
}
