package contract

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// deployment decodes an inline Deployment with Decode, as every caller does.
func deployment(t *testing.T, y string) *appsv1.Deployment {
	t.Helper()
	var dep appsv1.Deployment
	if err := Decode([]byte(y), &dep); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return &dep
}

// container is the only container of a Deployment: "- name: api" and body (whose lines are
// written with 6 spaces of indentation, as the list item's).
func container(t *testing.T, body string) *corev1.Container {
	t.Helper()
	var b strings.Builder
	for line := range strings.Lines(body) {
		b.WriteString("  " + line)
	}
	dep := deployment(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    "+
		"spec:\n      containers:\n      - name: api\n"+b.String())
	return &dep.Spec.Template.Spec.Containers[0]
}

func wantRule(t *testing.T, v *Violation, want Rule, contains string) {
	t.Helper()
	switch {
	case want == "" && v != nil:
		t.Fatalf("got %s: %s; want no violation", v.Rule, v.Message)
	case want != "" && v == nil:
		t.Fatalf("got no violation; want %s", want)
	case want != "" && v.Rule != want:
		t.Fatalf("got %s: %s; want %s", v.Rule, v.Message, want)
	case want != "" && !strings.Contains(v.Message, contains):
		t.Fatalf("message %q does not contain %q", v.Message, contains)
	}
}

func TestDecodeAsKubernetes(t *testing.T) {
	for _, tc := range []struct {
		name, doc, wantImage, wantPolicy string
		wantEnv                          []string
	}{
		{name: "plain", doc: `
      image: example.com/web:prod
      imagePullPolicy: Always
`, wantImage: "example.com/web:prod", wantPolicy: "Always"},
		{name: "merge key", doc: `
      <<: *defaults
`, wantImage: "example.com/web:prod", wantPolicy: "IfNotPresent", wantEnv: []string{"X=sha256:r"}},
		{name: "a merge key after an explicit key overrides it (goyaml.v2)", doc: `
      imagePullPolicy: Always
      <<: *defaults
`, wantImage: "example.com/web:prod", wantPolicy: "IfNotPresent", wantEnv: []string{"X=sha256:r"}},
		{name: "duplicate keys: the last wins", doc: `
      image: example.com/web:prod
      imagePullPolicy: Always
      imagePullPolicy: IfNotPresent
`, wantImage: "example.com/web:prod", wantPolicy: "IfNotPresent"},
		{name: "alias", doc: `
      image: example.com/web:prod
      env: *envs
`, wantImage: "example.com/web:prod", wantEnv: []string{"X=sha256:r"}},
		{name: "field names are case-sensitive", doc: `
      Image: example.com/other:1
      image: example.com/web:prod
`, wantImage: "example.com/web:prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := `x-defaults: &defaults {image: "example.com/web:prod", imagePullPolicy: IfNotPresent, env: [{name: X, value: ` +
				`"sha256:r"}]}
x-envs: &envs [{name: X, value: "sha256:r"}]
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
      - name: api` + strings.ReplaceAll(tc.doc, "\n      ", "\n        ")
			c := &deployment(t, y).Spec.Template.Spec.Containers[0]
			if c.Image != tc.wantImage || string(c.ImagePullPolicy) != tc.wantPolicy {
				t.Errorf("image %q policy %q; want %q %q", c.Image, c.ImagePullPolicy, tc.wantImage, tc.wantPolicy)
			}
			var env []string
			for _, e := range c.Env {
				env = append(env, e.Name+"="+e.Value)
			}
			if strings.Join(env, ",") != strings.Join(tc.wantEnv, ",") {
				t.Errorf("env %v; want %v", env, tc.wantEnv)
			}
		})
	}
}

func TestDecodeCapsAliasExpansion(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nbig: &b [" +
		strings.Repeat(`"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",`, 50) + "z]\nitems:\n")
	for range 200 {
		b.WriteString("- *b\n")
	}
	var into map[string]any
	err := Decode([]byte(b.String()), &into)
	if err == nil || !strings.Contains(err.Error(), "more than 10 times its size") {
		t.Fatalf("Decode: %v; want the expansion refused", err)
	}
}

func TestNamespacePrecedence(t *testing.T) {
	for _, tc := range []struct {
		name                             string
		metaNS, targetNS, cmNS, fallback string
		want                             string
	}{
		{"config namespace first", "a", "a", "b", "c", "a"},
		{"a target's own namespace before the config's", "a", "t", "b", "c", "t"},
		{"target namespace", "", "t", "b", "c", "t"},
		{"then the ConfigMap's", "", "", "b", "c", "b"},
		{"then the fallback", "", "", "", "c", "c"},
		{"none: the release namespace", "", "", "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.RefreshConfig{Metadata: config.ObjectMeta{Namespace: tc.metaNS}}
			img := config.Image{Target: config.Target{Namespace: tc.targetNS}}
			if got := Namespace(cfg, img, tc.cmNS, tc.fallback); got != tc.want {
				t.Errorf("Namespace = %q; want %q", got, tc.want)
			}
			// The Role goes where the config lives: its namespace, else the ConfigMap's, else
			// the fallback — never a target's own namespace.
			wantRole := tc.want
			if tc.targetNS != tc.metaNS {
				wantRole = Namespace(cfg, config.Image{}, tc.cmNS, tc.fallback)
			}
			if got := RoleNamespace(cfg, tc.cmNS, tc.fallback); got != wantRole {
				t.Errorf("RoleNamespace = %q; want %q", got, wantRole)
			}
		})
	}
}

func TestCheckRoleCovers(t *testing.T) {
	for _, tc := range []struct {
		name, roleNS, targetNS string
		want                   Rule
	}{
		{"same namespace", "tracebloc", "tracebloc", ""},
		{"both the release namespace", "", "", ""},
		{"target elsewhere: a Role of its own there", "tracebloc", "other", ""},
		{"explicit target, Role in the release namespace", "", "other", RuleRBACNamespace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := CheckRoleCovers(tc.roleNS, Target{Key: config.TargetKey{Kind: "Deployment", Namespace: tc.targetNS,
				Name: "web"}})
			wantRule(t, v, tc.want, "set metadata.namespace of the config")
		})
	}
}

func TestCheckSharedEnv(t *testing.T) {
	img := func(name, ns string) config.Image {
		return config.Image{Name: name, Action: config.ActionSetEnv, Env: "X", Target: config.Target{Kind: "Deployment",
			Name: "web", Namespace: ns, Container: "api"}}
	}
	for _, tc := range []struct {
		name     string
		images   []config.Image
		fallback string
		want     []int
	}{
		{"different namespaces", []config.Image{img("a", "x"), img("b", "y")}, "", nil},
		{"defaulting lands both on one Deployment", []config.Image{img("a", ""), img("b", "x")}, "x", []int{1}},
		{"both without namespace", []config.Image{img("a", ""), img("b", "")}, "", []int{1}},
		{"unresolved namespace may be any", []config.Image{img("a", ""), img("b", "x")}, "", []int{1}},
		{"same explicit target", []config.Image{img("a", "x"), img("b", "x"), img("c", "x")}, "", []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.RefreshConfig{Spec: config.Spec{Images: tc.images}}
			got := CheckSharedEnv(Targets(cfg, "", tc.fallback))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v; want violations for %v", got, tc.want)
			}
			for _, i := range tc.want {
				wantRule(t, got[i], RuleEnvShared, "already sets it on container \"api\"")
			}
		})
	}
}

func TestCheckSharedImage(t *testing.T) {
	img := func(name, container string, action config.Action) config.Image {
		return config.Image{Name: name, Action: action, Target: config.Target{Kind: "Deployment", Name: "web", Namespace: "x",
			Container: container}}
	}
	for _, tc := range []struct {
		name   string
		images []config.Image
		want   []int
	}{
		{"two containers", []config.Image{img("a", "api", config.ActionSetImage), img("b", "pods-monitor",
			config.ActionSetImage)}, nil},
		{"one container", []config.Image{img("a", "api", config.ActionSetImage), img("b", "api", config.ActionSetImage)},
			[]int{1}},
		{"set-image beside rollout-restart", []config.Image{img("a", "api", config.ActionRolloutRestart), img("b", "api",
			config.ActionSetImage)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.RefreshConfig{Spec: config.Spec{Images: tc.images}}
			got := CheckSharedEnv(Targets(cfg, "", ""))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v; want violations for %v", got, tc.want)
			}
			for _, i := range tc.want {
				wantRule(t, got[i], RuleImageShared, "already sets the image of container \"api\"")
			}
		})
	}
}

func TestLiveImage(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	img := config.Image{Name: "jobs-manager", Repository: "docker.io/tracebloc/jobs-manager", Tag: "prod",
		Action: config.ActionSetImage}
	for _, tc := range []struct {
		name, image, want string
		rule              Rule
	}{
		{"by tag", "tracebloc/jobs-manager:prod", "", ""},
		{"another tag", "docker.io/tracebloc/jobs-manager:1.2", "", ""},
		{"pinned, spelled otherwise", "index.docker.io/tracebloc/jobs-manager@" + digest, digest, ""},
		{"tag and digest", "tracebloc/jobs-manager:prod@" + digest, digest, ""},
		{"another repository", "ghcr.io/tracebloc/jobs-manager@" + digest, "", RuleImageReference},
		{"not a reference", "Not An Image", "", RuleImageReference},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, v := LiveImage(img, &corev1.Container{Name: "api", Image: tc.image})
			wantRule(t, v, tc.rule, "runs")
			if got != tc.want {
				t.Errorf("LiveImage = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestCheckTargetState(t *testing.T) {
	for _, tc := range []struct {
		name, meta, spec string
		want             Rule
	}{
		{"running", "", "", ""},
		{"paused", "", "  paused: true\n", RuleTargetState},
		{"deleting", "  deletionTimestamp: \"2026-01-01T00:00:00Z\"\n", "", RuleTargetState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dep := deployment(t,
				"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"+tc.meta+"spec:\n  replicas: 1\n"+tc.spec)
			wantRule(t, CheckTargetState(dep), tc.want, "nothing would roll out")
		})
	}
}

func TestContainer(t *testing.T) {
	dep := deployment(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    "+
		"spec:\n      containers:\n      - {name: api, image: x}\n")
	if c, v := Container(dep, config.Image{Target: config.Target{Container: "api"}}); v != nil || c.Image != "x" {
		t.Fatalf("Container(api) = %v, %v", c, v)
	}
	_, v := Container(dep, config.Image{Target: config.Target{Container: "side"}})
	wantRule(t, v, RuleTargetMissing, `container "side" not found (it has "api")`)
}

func TestCheckRestart(t *testing.T) {
	img := config.Image{Name: "web", Repository: "docker.io/tracebloc/web", Tag: "prod",
		Action: config.ActionRolloutRestart}
	for _, tc := range []struct {
		name, body string
		want       Rule
		contains   string
	}{
		{"tag, Always", "      image: tracebloc/web:prod\n      imagePullPolicy: Always\n", "", ""},
		{"normalised reference", "      image: index.docker.io/tracebloc/web:prod\n      imagePullPolicy: Always\n", "", ""},
		{"digest", "      image: tracebloc/web@sha256:" + strings.Repeat("a", 64) + "\n      imagePullPolicy: Always\n",
			RuleRestartPinned, "digest-pinned"},
		{"tag and digest", "      image: tracebloc/web:prod@sha256:" + strings.Repeat("a", 64) +
			"\n      imagePullPolicy: Always\n", RuleRestartPinned, "digest-pinned"},
		{"other repository", "      image: tracebloc/other:prod\n      imagePullPolicy: Always\n", RuleRestartReference,
			"not docker.io/tracebloc/web:prod"},
		{"other tag", "      image: tracebloc/web:dev\n      imagePullPolicy: Always\n", RuleRestartReference,
			"runs tracebloc/web:dev"},
		{"not a reference", "      image: \"UPPER/Case:x\"\n      imagePullPolicy: Always\n", RuleRestartReference,
			"not an image reference"},
		{"IfNotPresent", "      image: tracebloc/web:prod\n      imagePullPolicy: IfNotPresent\n", RuleRestartPullPolicy,
			"imagePullPolicy IfNotPresent"},
		{"unset policy", "      image: tracebloc/web:prod\n", RuleRestartPullPolicy, "defaults to IfNotPresent"},
		{"duplicate policy key: the last wins", "      image: tracebloc/web:prod\n      imagePullPolicy: Always\n      " +
			"imagePullPolicy: IfNotPresent\n", RuleRestartPullPolicy, "IfNotPresent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRule(t, CheckRestart(img, container(t, tc.body)), tc.want, tc.contains)
		})
	}
	latest := config.Image{Name: "web", Repository: "tracebloc/web", Tag: "latest"}
	wantRule(t, CheckRestart(latest, container(t, "      image: tracebloc/web\n")), "", "")
}

func TestLiveEnv(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		rule             Rule
	}{
		{"absent", "      image: x\n", "", ""},
		{"value", "      env: [{name: X, value: \"sha256:r\"}]\n", "sha256:r", ""},
		{"bare", "      env: [{name: X}]\n", "", ""},
		{"valueFrom", "      env: [{name: X, valueFrom: {configMapKeyRef: {name: c, key: k}}}]\n", "", RuleEnvValueFrom},
		{"twice: refused, never the first patched while pods read the last",
			"      env: [{name: X, value: \"sha256:r\"}, {name: X, value: stale}]\n", "", RuleEnvDuplicate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, v := LiveEnv(container(t, tc.body), "X")
			wantRule(t, v, tc.rule, "X")
			if got != tc.want {
				t.Errorf("LiveEnv = %q; want %q", got, tc.want)
			}
		})
	}
}

func TestCheckRenderedEnv(t *testing.T) {
	fromStream := func(kind, name, key string) string {
		if kind == "ConfigMap" && name == "has-x" && (EnvData{Data: map[string]any{"X": "v"}}).Defines(key) {
			return `ConfigMap "has-x"`
		}
		if kind == "Secret" && name == "s" && (EnvData{StringData: map[string]any{"X": "v"}}).Defines(key) {
			return `Secret "s"`
		}
		return ""
	}
	for _, tc := range []struct {
		name, body string
		want       Rule
		contains   string
	}{
		{"absent", "      image: x\n", "", ""},
		{"bare entry accepted", "      env: [{name: X}]\n", "", ""},
		{"empty value is the same as bare", "      env: [{name: X, value: \"\"}]\n", "", ""},
		{"value", "      env: [{name: X, value: \"sha256:old\"}]\n", RuleEnvRendered, `with value "sha256:old"`},
		{"valueFrom", "      env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n", RuleEnvRendered,
			"from valueFrom"},
		{"twice", "      env: [{name: X}, {name: X}]\n", RuleEnvDuplicate, "2 times"},
		{"envFrom of a rendered ConfigMap", "      envFrom: [{configMapRef: {name: has-x}}]\n", RuleEnvRendered,
			`from ConfigMap "has-x"`},
		{"envFrom without the key", "      envFrom: [{configMapRef: {name: other}}]\n", "", ""},
		{"envFrom with prefix", "      envFrom: [{prefix: P_, configMapRef: {name: has-x}}]\n", "", ""},
		{"envFrom of a rendered Secret's stringData", "      envFrom: [{secretRef: {name: s}}]\n", RuleEnvRendered,
			`from Secret "s"`},
		{"an explicit entry takes precedence over envFrom",
			"      env: [{name: X}]\n      envFrom: [{configMapRef: {name: has-x}}]\n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRule(t, CheckRenderedEnv(container(t, tc.body), "X", fromStream), tc.want, tc.contains)
		})
	}
}

func TestIsKind(t *testing.T) {
	for _, tc := range []struct {
		apiVersion, kind, want string
		is                     bool
	}{
		{"apps/v1", "Deployment", "Deployment", true},
		{"example.com/v1", "Deployment", "Deployment", false},
		{"v1", "ConfigMap", "ConfigMap", true},
		{"example.com/v1", "ConfigMap", "ConfigMap", false},
		{"batch/v1", "CronJob", "CronJob", true},
		{"rbac.authorization.k8s.io/v1", "Role", "Role", true},
		{"apps/v1", "StatefulSet", "Deployment", false},
		{"example.com/v1", "Widget", "Widget", true},
	} {
		if got := IsKind(tc.apiVersion, tc.kind, tc.want); got != tc.is {
			t.Errorf("IsKind(%q, %q, %q) = %v; want %v", tc.apiVersion, tc.kind, tc.want, got, tc.is)
		}
	}
}

func TestCheckConfigNotHook(t *testing.T) {
	wantRule(t, CheckConfigNotHook(""), "", "")
	wantRule(t, CheckConfigNotHook("pre-install"), RuleConfigHook, "a Helm hook (helm.sh/hook: pre-install)")
}

// TestDecodeBillionLaughs: nested aliases are refused by the YAML decoder's own alias budget
// before they expand (goyaml.v2's excessive-aliasing check), in well under a second.
func TestDecodeBillionLaughs(t *testing.T) {
	y := "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		y += n + ": &" + n + " [" + strings.TrimSuffix(strings.Repeat("*"+prev+",", 9), ",") + "]\n"
		prev = n
	}
	var into map[string]any
	if err := Decode([]byte(y), &into); err == nil {
		t.Fatal("Decode accepted a billion laughs")
	}
}
