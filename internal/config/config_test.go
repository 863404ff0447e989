package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const header = `apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: stg-image-refresh, namespace: tracebloc}
`

// withImages wraps flow-style image entries (one per line) in a valid document.
func withImages(images ...string) string {
	var b strings.Builder
	b.WriteString(header + "spec:\n  images:\n")
	for _, img := range images {
		b.WriteString("  - " + img + "\n")
	}
	return b.String()
}

// withJob adds a spec.job block (flow style) to a document with one valid image.
func withJob(job string) string { return withImages(restartImage) + "  job: " + job + "\n" }

const (
	restartImage = `{name: jobs-manager, repository: docker.io/tracebloc/jobs-manager, tag: prod, action: ` +
		`rollout-restart, target: {name: stg-jobs-manager, container: api}, annotation: ` +
		`tracebloc.io/last-refreshed-jobs-manager-digest}`
	setEnvImage = `{name: ingestor, repository: ghcr.io/tracebloc/ingestor, tag: prod, action: set-env, env: ` +
		`INGESTOR_IMAGE_DIGEST, target: {name: stg-jobs-manager, container: api}, annotation: ` +
		`tracebloc.io/last-refreshed-ingestor-digest}`
	digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		// every listed fragment must appear in the error
		want []string
	}{
		{name: "empty", yaml: "  \n", want: []string{"refresh config is empty"}},
		{name: "unknown top-level field", yaml: header + "spec: {images: []}\nstatus: {}\n",
			want: []string{"field status not found"}},
		{
			name: "unknown image field",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, digests: [], action: rollout-restart, target: {name: d, ` +
				`container: c}, annotation: x.io/a}`),
			want: []string{"field digests not found"},
		},
		{name: "unknown target field", yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, ` +
			`target: {name: d, container: c, image: x}, annotation: x.io/a}`), want: []string{"field image not found"}},
		{name: "two documents", yaml: withImages(restartImage) + "---\n" + withImages(restartImage),
			want: []string{"single YAML document"}},
		{name: "not a mapping", yaml: "- a\n- b\n", want: []string{"decoding refresh config"}},
		{
			name: "apiVersion and kind",
			yaml: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nspec:\n  images:\n  - " + restartImage + "\n",
			want: []string{`apiVersion: got "v1", want "image-refresh.io/v1alpha1"`,
				`kind: got "ConfigMap", want "RefreshConfig"`},
		},
		{
			name: "metadata.name missing",
			yaml: "apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\nspec:\n  images:\n  - " + restartImage + "\n",
			want: []string{`metadata.name ""`},
		},
		{
			name: "metadata.name too long for a CronJob",
			yaml: strings.Replace(withImages(restartImage), "stg-image-refresh", strings.Repeat("a", 53), 1),
			want: []string{"metadata.name", "at most 52 characters"},
		},
		{
			name: "metadata.namespace invalid",
			yaml: strings.Replace(withImages(restartImage), "namespace: tracebloc", "namespace: Trace_Bloc", 1),
			want: []string{`metadata.namespace "Trace_Bloc"`},
		},
		{name: "schedule", yaml: header + "spec:\n  schedule: every minute\n  images:\n  - " + restartImage + "\n",
			want: []string{`spec.schedule "every minute"`}},
		{name: "no images", yaml: header + "spec: {images: []}\n",
			want: []string{"spec.images: at least one image is required"}},
		{
			name: "verification without a keys ConfigMap",
			yaml: withImages(restartImage) + "  verification: {}\n",
			want: []string{"spec.verification.keysConfigMap: required"},
		},
		{
			name: "verification keys ConfigMap not a name",
			yaml: withImages(restartImage) + "  verification: {keysConfigMap: Keys_1}\n",
			want: []string{`spec.verification.keysConfigMap "Keys_1"`},
		},
		{
			name: "verification recheck too often",
			yaml: withImages(restartImage) + "  verification: {keysConfigMap: k, recheckAfter: 30s}\n",
			want: []string{"spec.verification.recheckAfter 30s: must be at least 1m0s"},
		},
		{
			name: "verify true without verification",
			yaml: withImages(strings.Replace(restartImage, "action:", "verify: true, action:", 1)),
			want: []string{"spec.images[0] (jobs-manager).verify: true needs spec.verification"},
		},
		{
			name: "unknown verification field",
			yaml: withImages(restartImage) + "  verification: {keysConfigMap: k, rekor: https://rekor.sigstore.dev}\n",
			want: []string{"field rekor not found"},
		},
		{
			name: "image name missing",
			yaml: withImages(`{repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}, ` +
				`annotation: x.io/a}`),
			want: []string{"spec.images[0].name: required"},
		},
		{
			name: "image name invalid",
			yaml: withImages(`{name: Jobs_Manager, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, ` +
				`container: c}, annotation: x.io/a}`),
			want: []string{"spec.images[0] (Jobs_Manager).name"},
		},
		{
			name: "duplicate image names",
			yaml: withImages(restartImage, strings.Replace(restartImage, "last-refreshed-jobs-manager", "other", 1)),
			want: []string{"spec.images[1] (jobs-manager).name: duplicate of spec.images[0]"},
		},
		{
			name: "repository missing",
			yaml: withImages(`{name: a, action: rollout-restart, target: {name: d, container: c}, annotation: x.io/a}`),
			want: []string{"spec.images[0] (a).repository: required"},
		},
		{
			name: "repository unparsable",
			yaml: withImages(`{name: a, repository: "ghcr.io/Tracebloc/UPPER", action: rollout-restart, target: {name: d, ` +
				`container: c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).repository "ghcr.io/Tracebloc/UPPER"`},
		},
		{
			name: "tag unparsable",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, tag: "pr@d", action: rollout-restart, target: {name: d, ` +
				`container: c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).tag "pr@d"`},
		},
		{
			name: "digest not sha256",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, digest: "sha512:abc", action: rollout-restart, target: ` +
				`{name: d, container: c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).digest "sha512:abc"`},
		},
		{
			name: "digest uppercase hex",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, digest: "` + strings.ToUpper(digest) +
				`", action: rollout-restart, target: {name: d, container: c}, annotation: x.io/a}`),
			want: []string{"spec.images[0] (a).digest", "64 lowercase hex"},
		},
		{
			name: "digest too short",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, digest: "` + digest[:70] +
				`", action: rollout-restart, target: {name: d, container: c}, annotation: x.io/a}`),
			want: []string{"spec.images[0] (a).digest"},
		},
		{
			name: "action missing",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, target: {name: d, container: c}, annotation: x.io/a}`),
			want: []string{"spec.images[0] (a).action: required"},
		},
		{
			name: "action unsupported",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: delete-pods, target: {name: d, container: c}, ` +
				`annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).action "delete-pods": unsupported`},
		},
		{
			name: "env with rollout-restart",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, env: A_DIGEST, target: {name: d, ` +
				`container: c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).env "A_DIGEST": only valid with action "set-env"`},
		},
		{
			name: "set-env without env",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: set-env, target: {name: d, container: c}, ` +
				`annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).env: required with action "set-env"`},
		},
		{
			name: "set-env with invalid env name",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: set-env, env: "1=X", target: {name: d, container: ` +
				`c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).env "1=X"`},
		},
		{
			name: "target kind unsupported",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {kind: StatefulSet, name: ` +
				`d, container: c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).target.kind "StatefulSet": unsupported`},
		},
		{
			name: "target name invalid",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: "My_Deploy", ` +
				`container: c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).target.name "My_Deploy"`},
		},
		{
			name: "target container missing",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d}, ` +
				`annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).target.container ""`},
		},
		{
			name: "target namespace not a namespace name",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, namespace: ` +
				`Other.ns, container: c}, annotation: x.io/a}`),
			want: []string{`spec.images[0] (a).target.namespace "Other.ns"`},
		},
		{
			name: "annotation missing",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}}`),
			want: []string{"spec.images[0] (a).annotation: required"},
		},
		{
			name: "annotation not a qualified name",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}, ` +
				`annotation: "tracebloc.io/last refreshed"}`),
			want: []string{`spec.images[0] (a).annotation "tracebloc.io/last refreshed"`},
		},
		{
			name: "annotation owned by Helm",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}, ` +
				`annotation: meta.helm.sh/release-name}`),
			want: []string{`spec.images[0] (a).annotation "meta.helm.sh/release-name": prefix "meta.helm.sh" is reserved ` +
				`for helm.sh`},
		},
		{
			name: "annotation owned by the Deployment controller",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}, ` +
				`annotation: deployment.kubernetes.io/revision}`),
			want: []string{`spec.images[0] (a).annotation "deployment.kubernetes.io/revision": prefix ` +
				`"deployment.kubernetes.io" is reserved for kubernetes.io`},
		},
		{
			name: "annotation in k8s.io",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}, ` +
				`annotation: k8s.io/last-digest}`),
			want: []string{`prefix "k8s.io" is reserved for k8s.io`},
		},
		{name: "schedule with a time zone", yaml: header + "spec:\n  schedule: \"TZ=UTC 7 * * * *\"\n  images:\n  - " +
			restartImage + "\n", want: []string{`spec.schedule "TZ=UTC 7 * * * *": TZ= and CRON_TZ= are not allowed`}},
		{name: "schedule with a cron time zone", yaml: header + "spec:\n  schedule: \"CRON_TZ=Europe/Berlin 7 * * * *\"\n  " +
			"images:\n  - " + restartImage + "\n", want: []string{`TZ= and CRON_TZ= are not allowed`}},
		{
			name: "duplicate annotations",
			yaml: withImages(restartImage, strings.Replace(restartImage, "name: jobs-manager,", "name: pods-monitor,", 1)),
			want: []string{`spec.images[1] (pods-monitor).annotation "tracebloc.io/last-refreshed-jobs-manager-digest": ` +
				`duplicate of spec.images[0]`},
		},
		{name: "negative wait limit", yaml: header + "spec:\n  waitLimit: -1\n  images:\n  - " + restartImage + "\n",
			want: []string{"spec.waitLimit -1: must be at least 1"}},
		{
			name: "image name too long for its status annotation",
			yaml: withImages(strings.Replace(restartImage, "name: jobs-manager,", "name: "+strings.Repeat("a", 57)+",", 1)),
			want: []string{"name: must be at most 56 characters (it names the status annotation " +
				"image-refresh.io/status-<name>)"},
		},
		{
			name: "annotation where statuses are written",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}, ` +
				`annotation: image-refresh.io/status-b}`),
			want: []string{`spec.images[0] (a).annotation "image-refresh.io/status-b": image-refresh.io/status-* is where the ` +
				`refresher writes each image's status`},
		},
		{name: "job image", yaml: withJob(`{image: "ghcr.io/x/Y:"}`), want: []string{`spec.job.image "ghcr.io/x/Y:"`}},
		{name: "job pull policy", yaml: withJob(`{imagePullPolicy: Sometimes}`),
			want: []string{`spec.job.imagePullPolicy "Sometimes"`}},
		{name: "job runs as root", yaml: withJob(`{runAsUser: 0}`),
			want: []string{"spec.job.runAsUser 0: must be a non-root UID"}},
		{name: "job secret names", yaml: withJob(`{imagePullSecrets: [Bad_Secret], registryCredentialsSecret: "also bad"}`),
			want: []string{`spec.job.secret name "Bad_Secret"`, `spec.job.secret name "also bad"`}},
		{name: "job deadlines", yaml: withJob(`{startingDeadlineSeconds: 0, activeDeadlineSeconds: -1}`),
			want: []string{"spec.job.startingDeadlineSeconds 0: must be positive",
				"spec.job.activeDeadlineSeconds -1: must be positive"}},
		{name: "job history limits", yaml: withJob(`{backoffLimit: -1, successfulJobsHistoryLimit: -2, ` +
			`failedJobsHistoryLimit: -3}`), want: []string{"spec.job.backoffLimit -1", "spec.job.successfulJobsHistoryLimit -2",
			"spec.job.failedJobsHistoryLimit -3"}},
		{name: "job resources", yaml: withJob(`{resources: {limits: {memory: lots}}}`),
			want: []string{`spec.job.resources.limits.memory "lots"`}},
		{
			name: "every problem is reported at once",
			yaml: withImages(`{name: a, repository: ghcr.io/x/a, digest: "sha256:x", action: set-env, target: {kind: Job, ` +
				`name: d, container: c}, annotation: "bad key"}`),
			want: []string{"spec.images[0] (a).digest", "spec.images[0] (a).env: required", "spec.images[0] (a).target.kind",
				"spec.images[0] (a).annotation"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.yaml)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config along with the error %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	cfg, err := Parse([]byte(withImages(
		`{name: jobs-manager, repository: docker.io/tracebloc/jobs-manager, action: rollout-restart, target: {name: ` +
			`stg-jobs-manager, container: api}, annotation: tracebloc.io/a}`,
	)))
	if err != nil {
		t.Fatal(err)
	}
	img := cfg.Spec.Images[0]
	for _, c := range []struct{ field, got, want string }{
		{"spec.schedule", cfg.Spec.Schedule, DefaultSchedule},
		{"spec.waitLimit", fmt.Sprint(cfg.Spec.WaitLimit), "0"},
		{"spec.waitTimeout (effective)", cfg.Spec.EffectiveWaitTimeout().String(), DefaultWaitTimeout.String()},
		{"tag", img.Tag, DefaultTag},
		{"target.kind", img.Target.Kind, KindDeployment},
		{"target.namespace", img.Target.Namespace, "tracebloc"},
		{"job.image", cfg.Spec.Job.Image, DefaultJobImage},
		{"job.imagePullPolicy", cfg.Spec.Job.ImagePullPolicy, DefaultPullPolicy},
		{"job.resources.limits.memory", cfg.Spec.Job.Resources.Limits["memory"], "64Mi"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	job := cfg.Spec.Job
	if *job.RunAsUser != DefaultRunAsUser || *job.StartingDeadlineSeconds != 300 || *job.ActiveDeadlineSeconds != 600 ||
		*job.BackoffLimit != 1 || *job.SuccessfulJobsHistoryLimit != 1 || *job.FailedJobsHistoryLimit != 3 {
		t.Errorf("job defaults: %+v", job)
	}
}

func TestParseKeepsExplicitValues(t *testing.T) {
	cfg, err := Parse([]byte(header + `spec:
  schedule: "*/5 * * * *"
  images:
  - {name: a, repository: ghcr.io/x/a, tag: v1, action: rollout-restart, target: {kind: Deployment, name: d, ` +
		`namespace: tracebloc, container: c}, annotation: x.io/a}
  job:
    runAsUser: 1000
    backoffLimit: 0
    resources: {requests: {cpu: 5m}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Spec.Schedule != "*/5 * * * *" || cfg.Spec.Images[0].Tag != "v1" {
		t.Errorf("explicit values replaced: %+v", cfg.Spec)
	}
	job := cfg.Spec.Job
	if *job.RunAsUser != 1000 || *job.BackoffLimit != 0 {
		t.Errorf("explicit job values replaced: runAsUser=%d backoffLimit=%d", *job.RunAsUser, *job.BackoffLimit)
	}
	if job.Resources.Limits != nil || job.Resources.Requests["cpu"] != "5m" {
		t.Errorf("explicit resources replaced: %+v", job.Resources)
	}
}

// A DaemonSet target and a target in another namespace than the config's are kept as written: each namespace gets
// a Role of its own (contract.Grants).
func TestParseKeepsKindAndNamespace(t *testing.T) {
	cfg, err := Parse([]byte(withImages(
		`{name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {kind: DaemonSet, name: agent, namespace: `+
			`node-agents, container: c}, annotation: x.io/a}`,
		`{name: b, repository: ghcr.io/x/b, action: set-image, target: {name: d, container: c}, annotation: x.io/b}`,
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := []TargetKey{{KindDaemonSet, "node-agents", "agent"}, {KindDeployment, "tracebloc", "d"}}
	for i, img := range cfg.Spec.Images {
		if got := img.Target.Key(); got != want[i] {
			t.Errorf("spec.images[%d].target = %+v, want %+v", i, got, want[i])
		}
	}
}

func TestNamespaceOptional(t *testing.T) {
	cfg, err := Parse([]byte(`apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: r}
spec:
  images:
  - {name: a, repository: ghcr.io/x/a, action: rollout-restart, target: {name: d, container: c}, annotation: x.io/a}
  - {name: b, repository: ghcr.io/x/b, action: rollout-restart, target: {name: d, namespace: elsewhere, container: ` +
		`c}, annotation: x.io/b}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Spec.Images[0].Target.Namespace; got != "" {
		t.Errorf("target.namespace without metadata.namespace = %q, want empty (the refresher decides)", got)
	}
	if got := cfg.Spec.Images[1].Target.Namespace; got != "elsewhere" {
		t.Errorf("explicit target.namespace = %q", got)
	}
}

func TestLoadExample(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "..", "testdata", "config", "refresh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range cfg.Spec.Images {
		got = append(got, img.Name+"="+img.Reference()+"/"+string(img.Action))
	}
	want := []string{
		"jobs-manager=docker.io/tracebloc/jobs-manager:prod/rollout-restart",
		"pods-monitor=docker.io/tracebloc/pods-monitor:prod/rollout-restart",
		"ingestor=ghcr.io/tracebloc/ingestor:prod/set-env",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("images = %q, want %q", got, want)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "refresh.yaml")
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "reading refresh config") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(header+"spec: {images: []}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path+": ") {
		t.Errorf("invalid file: error does not name %s: %v", path, err)
	}
}

func TestFloatingAndPinned(t *testing.T) {
	pinned := strings.Replace(restartImage, "tag: prod,", "tag: prod, digest: \""+digest+"\",", 1)
	cfg, err := Parse([]byte(withImages(pinned, setEnvImage)))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Spec.Images[0].Pinned() || cfg.Spec.Images[1].Pinned() {
		t.Errorf("Pinned: %v %v", cfg.Spec.Images[0].Pinned(), cfg.Spec.Images[1].Pinned())
	}
	floating := cfg.Floating()
	if len(floating) != 1 || floating[0].Name != "ingestor" || !cfg.AnyFloating() {
		t.Errorf("Floating = %+v", floating)
	}

	allPinned, err := Parse([]byte(withImages(pinned)))
	if err != nil {
		t.Fatal(err)
	}
	if allPinned.AnyFloating() || len(allPinned.Floating()) != 0 {
		t.Errorf("all pinned: AnyFloating=%v floating=%v", allPinned.AnyFloating(), allPinned.Floating())
	}
}

func TestVerificationRequired(t *testing.T) {
	exempt := strings.Replace(restartImage, "action:", "verify: false, action:", 1)
	pinned := strings.Replace(setEnvImage, "tag: prod,", "tag: prod, digest: \""+digest+"\",", 1)
	for _, tc := range []struct {
		name string
		yaml string
		want []bool // per image
	}{
		{name: "no verification", yaml: withImages(restartImage, setEnvImage), want: []bool{false, false}},
		{name: "every floating image", yaml: withImages(restartImage, setEnvImage) +
			"  verification: {keysConfigMap: keys}\n", want: []bool{true, true}},
		{name: "verify false exempts one", yaml: withImages(exempt, setEnvImage) + "  verification: {keysConfigMap: keys}\n",
			want: []bool{false, true}},
		{name: "verify false without verification", yaml: withImages(exempt), want: []bool{false}},
		{name: "a pinned image is never verified", yaml: withImages(restartImage, pinned) +
			"  verification: {keysConfigMap: keys}\n", want: []bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range tc.want {
				if got := cfg.VerificationRequired(cfg.Spec.Images[i]); got != want {
					t.Errorf("image %d: VerificationRequired = %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for name, doc := range map[string]string{
		"verification": withImages(restartImage, strings.Replace(setEnvImage, "action:", "verify: false, action:", 1)) +
			"  verification: {keysConfigMap: release-keys, recheckAfter: 10m}\n",
		"job env, in its order": withJob(`{env: [{name: NO_PROXY, value: '.svc'}, {name: HTTPS_PROXY, value: ` +
			`'http://p:3128'}]}`),
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			data, err := cfg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(data)
			if err != nil {
				t.Fatalf("re-parsing marshalled config: %v\n%s", err, data)
			}
			if !reflect.DeepEqual(cfg, again) {
				t.Errorf("round trip changed the config:\n%s", data)
			}
		})
	}
}

func TestValidDigest(t *testing.T) {
	for d, want := range map[string]bool{
		digest:                       true,
		"":                           false,
		digest + "0":                 false,
		strings.ToUpper(digest):      false,
		"sha384:" + digest[7:]:       false,
		" " + digest:                 false,
		digest[:len(digest)-1] + "g": false,
	} {
		if got := ValidDigest(d); got != want {
			t.Errorf("ValidDigest(%q) = %v, want %v", d, got, want)
		}
	}
}

func TestEffectivePullPolicy(t *testing.T) {
	for _, tc := range []struct{ policy, image, want string }{
		{"", "docker.io/tracebloc/jobs-manager", "Always"},
		{"", "docker.io/tracebloc/jobs-manager:latest", "Always"},
		{"", "localhost:5000/jobs-manager", "Always"}, // the port is not a tag
		{"", "docker.io/tracebloc/jobs-manager:prod", "IfNotPresent"},
		{"", "docker.io/tracebloc/jobs-manager@" + digest, "IfNotPresent"},
		{"", "docker.io/tracebloc/jobs-manager:latest@" + digest, "IfNotPresent"},
		{"IfNotPresent", "docker.io/tracebloc/jobs-manager:latest", "IfNotPresent"},
		{"Never", "docker.io/tracebloc/jobs-manager", "Never"},
		{"Always", "docker.io/tracebloc/jobs-manager:prod", "Always"},
	} {
		if got := EffectivePullPolicy(tc.policy, tc.image); got != tc.want {
			t.Errorf("EffectivePullPolicy(%q, %q) = %q, want %q", tc.policy, tc.image, got, tc.want)
		}
	}
}

func TestValidateAnnotationKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"tracebloc.io/last-refreshed-ingestor-digest": true,
		"last-refreshed-digest":                       true,
		"notkubernetes.io/digest":                     true, // a different domain that merely ends alike
		"example.com/kubernetes.io":                   true, // reserved words in the name part are fine
		"kubernetes.io/digest":                        false,
		"kubectl.kubernetes.io/restartedAt":           false,
		"app.k8s.io/digest":                           false,
		"helm.sh/resource-policy":                     false,
		"tracebloc.io/bad key":                        false,
	} {
		if err := ValidateAnnotationKey(key); (err == nil) != ok {
			t.Errorf("ValidateAnnotationKey(%q) = %v; want ok=%v", key, err, ok)
		}
	}
}

func TestValidateSchedule(t *testing.T) {
	for schedule, ok := range map[string]bool{
		"7,22,37,52 * * * *":    true,
		"@hourly":               true,
		"*/5 * * * *":           true,
		"TZ=UTC 0 * * * *":      false,
		"CRON_TZ=UTC 0 * * * *": false,
		"0 * * *":               false,
		"61 * * * *":            false,
	} {
		if err := ValidateSchedule(schedule); (err == nil) != ok {
			t.Errorf("ValidateSchedule(%q) = %v; want ok=%v", schedule, err, ok)
		}
	}
}
