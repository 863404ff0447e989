package postrender

import (
	"strings"
	"testing"
)

// The cases where the binaries once disagreed, each as a release stream: the post-renderer reaches the contract's
// rule (internal/contract) and agrees with chartcheck and the refresher.

// anchoredDeployment is the target Deployment with its api container built from anchors: the
// container body is whatever follows "- name: api" (8 spaces), and x-defaults holds an anchor
// &defaults of image, pull policy and env.
func anchoredDeployment(defaults, container string) string {
	return "---\n# Source: app/templates/web.yaml\nx-defaults: &defaults " + defaults + "\napiVersion: apps/v1\n" +
		"kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: api\n" +
		container
}

func withNamespace(doc, ns string) string {
	return strings.Replace(doc, "  name: web\n", "  name: web\n  namespace: "+ns+"\n", 1)
}

// configIn renders the config ConfigMap in a namespace, the config edited by replacer pairs.
func configIn(ns string, edits ...string) string {
	cm := refreshConfigMap(strings.NewReplacer(edits...).Replace(refreshBody("", "")))
	if ns == "" {
		return cm
	}
	return strings.Replace(cm, "  name: app-refresh\n", "  name: app-refresh\n  namespace: "+ns+"\n", 1)
}

// setImageWeb are configIn edits turning the web image into a set-image image.
var setImageWeb = []string{"    action: rollout-restart\n", "    action: set-image\n"}

func TestContractRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		reason Reason
		want   string
	}{{
		name: "target in another namespace than the release's, which the RoleBinding there cannot name",
		in: configIn("", "target: {name: web, container: api}", "target: {name: web, namespace: other, container: api}") +
			withNamespace(webDeployment(floatingContainer), "other"),
		reason: ReasonRBACNamespace,
		want: `target Deployment other/web is in namespace "other", where the refresher's RoleBinding must name the ` +
			`namespace of the refresher's ServiceAccount`,
	}, {
		name: "merge key carries the set-env variable with a value",
		in: configIn("") + anchoredDeployment(`{image: "example.com/web:prod", imagePullPolicy: Always, env: [{name: `+
			`WORKER_DIGEST, value: "sha256:old"}]}`, "        <<: *defaults\n"),
		reason: ReasonEnvRendered,
		want:   `renders env WORKER_DIGEST with value "sha256:old"`,
	}, {
		name: "alias carries the set-env variable with a value",
		in: configIn("") + anchoredDeployment(`[{name: WORKER_DIGEST, value: "sha256:old"}]`,
			"        image: example.com/web:prod\n        imagePullPolicy: Always\n        env: *defaults\n"),
		reason: ReasonEnvRendered,
		want:   `renders env WORKER_DIGEST with value "sha256:old"`,
	}, {
		name: "merge key carries imagePullPolicy IfNotPresent",
		in: configIn("") + anchoredDeployment(`{image: "example.com/web:prod", imagePullPolicy: IfNotPresent}`,
			"        <<: *defaults\n"),
		reason: ReasonPullPolicy,
		want:   "with imagePullPolicy IfNotPresent",
	}, {
		name: "duplicate imagePullPolicy: the last wins, as on the API server",
		in: configIn("") + webDeployment("        image: example.com/web:prod\n        imagePullPolicy: "+
			"Always\n        imagePullPolicy: IfNotPresent\n"),
		reason: ReasonPullPolicy,
		want:   "with imagePullPolicy IfNotPresent",
	}, {
		name:   "duplicate container name: the last wins",
		in:     configIn("") + webDeployment(floatingContainer+"        name: server\n"),
		reason: ReasonTargetMissing,
		want:   `container "api" not found (it has "server")`,
	}, {
		name:   "rollout-restart container runs another repository with Always",
		in:     configIn("") + webDeployment("        image: example.com/other:prod\n        imagePullPolicy: Always\n"),
		reason: ReasonRestartReference,
		want:   "runs example.com/other:prod, not example.com/web:prod",
	}, {
		name: "set-env variable listed twice",
		in: configIn("") +
			webDeployment(floatingContainer+"        env:\n        - name: WORKER_DIGEST\n        - name: WORKER_DIGEST\n"),
		reason: ReasonEnvDuplicate,
		want:   "lists env WORKER_DIGEST 2 times",
	}, {
		name: "two set-env images write one variable once namespaces are resolved",
		in: configIn("", "    annotation: example.com/worker-digest\n", "    annotation: example.com/worker-digest\n"+
			"  - {name: worker-b, repository: example.com/worker, tag: prod, action: set-env, env: WORKER_DIGEST, target: "+
			"{name: web, container: api}, annotation: example.com/b}\n") + webDeployment(floatingContainer),
		reason: ReasonEnvShared,
		want:   `spec.images[2] (worker-b).env "WORKER_DIGEST": spec.images[1] (worker) already sets it`,
	}, {
		name: "set-env variable through envFrom of a ConfigMap of the release",
		in: configIn("") + webDeployment(floatingContainer+"        envFrom: [{configMapRef: {name: digests}}]\n") +
			"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: digests}\ndata: {WORKER_DIGEST: \"sha256:old\"}\n",
		reason: ReasonEnvRendered,
		want:   "takes env WORKER_DIGEST from ConfigMap digests (document 3) (envFrom)",
	}, {
		name:   "config ConfigMap in a, target Deployment only in b",
		in:     configIn("a") + withNamespace(webDeployment(floatingContainer), "b"),
		reason: ReasonTargetMissing,
		want:   "targets Deployment a/web, which the release does not render (it renders Deployment b/web)",
	}, {
		name: "a CRD kind named Deployment in another API group is not the target",
		in: configIn("") + strings.Replace(webDeployment(floatingContainer), "apiVersion: apps/v1",
			"apiVersion: example.com/v1", 1),
		reason: ReasonTargetMissing,
		want:   "it renders no Deployment",
	}, {
		name: "set-image container runs another repository",
		in: configIn("", setImageWeb...) +
			webDeployment("        image: example.com/other:prod\n        imagePullPolicy: IfNotPresent\n"),
		reason: ReasonImageReference,
		want:   "runs example.com/other:prod, not the repository example.com/web",
	}, {
		name:   "set-image container runs another repository by digest",
		in:     configIn("", setImageWeb...) + webDeployment("        image: ghcr.io/example/web@"+pinnedDigest+"\n"),
		reason: ReasonImageReference,
		want:   "not the repository example.com/web",
	}, {
		name:   "set-image container runs no image reference",
		in:     configIn("", setImageWeb...) + webDeployment("        image: \"Not An Image\"\n"),
		reason: ReasonImageReference,
		want:   `runs "Not An Image", which is not an image reference`,
	}, {
		name: "two set-image images set one container's image",
		in: configIn("", append(setImageWeb, "    annotation: example.com/worker-digest\n",
			"    annotation: example.com/worker-digest\n"+
				"  - {name: web-b, repository: example.com/web, tag: canary, action: set-image, target: {name: web, container: "+
				"api}, annotation: example.com/b}\n")...) +
			webDeployment(floatingContainer),
		reason: ReasonImageShared,
		want:   `spec.images[2] (web-b): spec.images[0] (web) already sets the image of container "api"`,
	}, {
		name: "paused target",
		in: configIn("") + strings.Replace(webDeployment(floatingContainer), "spec:\n  template:",
			"spec:\n  paused: true\n  template:", 1),
		reason: ReasonTargetState,
		want:   "spec.paused: true",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render([]byte(tc.in), Options{})
			if err == nil {
				t.Fatalf("Render succeeded, want a %s refusal; output:\n%s", tc.reason, out)
			}
			refusals := Refusals(err)
			if len(refusals) == 0 || !strings.Contains(refusals[0].Message, tc.want) {
				t.Fatalf("refusals %v; want the first containing %q", err, tc.want)
			}
			for _, r := range refusals {
				if r.Reason != tc.reason {
					t.Errorf("refusal %q has reason %s; want %s", r.Message, r.Reason, tc.reason)
				}
			}
		})
	}
}

func TestContractAccepted(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"well-formed anchored Deployment", configIn("") +
			anchoredDeployment(`{image: "example.com/web:prod", imagePullPolicy: Always}`, "        <<: *defaults\n")},
		{"merge key overridden by an explicit key", configIn("") + anchoredDeployment(`{image: "example.com/web:prod", `+
			`imagePullPolicy: IfNotPresent}`, "        <<: *defaults\n        imagePullPolicy: Always\n")},
		{"containers through an alias", configIn("") + "---\nx: &cs [{name: api, image: \"example.com/web:prod\", " +
			"imagePullPolicy: Always}]\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    " +
			"spec:\n      containers: *cs\n"},
		{"set-env variable with an empty value", configIn("") +
			webDeployment(floatingContainer+"        env:\n        - name: WORKER_DIGEST\n          value: \"\"\n")},
		{"a/web and b/web, the config in a", configIn("a") + withNamespace(webDeployment(floatingContainer), "a") +
			withNamespace(webDeployment(floatingContainer), "b")},
		// set-image writes repository@digest itself: what a node has cached never runs.
		{"set-image by tag with IfNotPresent", configIn("", setImageWeb...) +
			webDeployment("        image: example.com/web:prod\n        imagePullPolicy: IfNotPresent\n")},
		{"set-image by tag, pull policy absent", configIn("", setImageWeb...) +
			webDeployment("        image: example.com/web:prod\n")},
		{"set-image by another tag with Never", configIn("", setImageWeb...) +
			webDeployment("        image: example.com/web:1.2\n        imagePullPolicy: Never\n")},
		{"set-image by digest", configIn("", setImageWeb...) +
			webDeployment("        image: example.com/web@"+pinnedDigest+"\n        imagePullPolicy: IfNotPresent\n")},
		{"set-image by the repository spelled otherwise", configIn("", append([]string{"repository: example.com/web\n",
			"repository: docker.io/library/web\n"}, setImageWeb...)...) +
			webDeployment("        image: index.docker.io/library/web@"+pinnedDigest+"\n")},
	} {
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

// Only objects the post-renderer would inject (by kind and name) are its own: a chart object
// that merely carries its managed-by label stays in the release.
func TestForeignObjectsWithTheLabelStay(t *testing.T) {
	foreign := "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart-settings\n  labels: " +
		"{app.kubernetes.io/managed-by: image-refresh}\ndata: {a: b}\n"
	out, err := Render([]byte(configIn("")+webDeployment(floatingContainer)+foreign), Options{})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if !strings.Contains(string(out), foreign) {
		t.Errorf("the chart's labelled ConfigMap was dropped:\n%s", out)
	}
	again, err := Render(out, Options{})
	if err != nil || string(again) != string(out) {
		t.Errorf("a second run changed the output (err %v)", err)
	}
}

// The post-renderer identifies objects (kind, name, namespace, labels) as Kubernetes reads them:
// through merge keys, and the last of duplicate keys.
func TestObjectsIdentifiedAsKubernetesReadsThem(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"metadata through a merge key", configIn("") + strings.Replace(webDeployment(floatingContainer),
			"metadata:\n  name: web\n", "x: &meta {name: web}\nmetadata:\n  <<: *meta\n", 1)},
		{"the last of duplicate names", configIn("") + strings.Replace(webDeployment(floatingContainer),
			"metadata:\n  name: web\n", "metadata:\n  name: other\n  name: web\n", 1)},
		{"the config label through a merge key", strings.Replace(configIn(""), "  labels:\n    "+
			"image-refresh.io/config: \"true\"\n", "  labels:\n    <<: {image-refresh.io/config: \"true\"}\n", 1) +
			webDeployment(floatingContainer)},
	} {
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
