package chartcheck

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/postrender"
)

const (
	clientChart  = "../charts/client"
	clientSuite  = "../charts/client/chartcheck.yaml"
	testdataDir  = "../testdata/chartcheck"
	brokenSuite  = testdataDir + "/broken-suite.yaml"
	goldenDir    = testdataDir + "/golden"
	validStream  = testdataDir + "/streams/valid.yaml"
	ingestorPin  = "sha256:dca267c008dd8ae938ce3697004692c080095675c46630d19c4c6b3f7dc06a37"
	podsMonitorR = "localhost:5000/tracebloc/pods-monitor"
)

// countLoads replaces the chart loader with one that counts its calls for the test's duration.
func countLoads(t *testing.T) *int {
	t.Helper()
	loads := 0
	original := chartLoader
	chartLoader = func(path string) (*chart.Chart, error) {
		loads++
		return original(path)
	}
	t.Cleanup(func() { chartLoader = original })
	return &loads
}

func scenarioNames(r *Report) []string {
	var names []string
	for _, s := range r.Scenarios {
		names = append(names, s.Name)
	}
	return names
}

func checkStatus(s *ScenarioResult, name string) Status {
	for _, c := range s.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

// TestClientSuite runs charts/client/chartcheck.yaml: every scenario must pass, and the suite
// must keep covering what the chart promises.
func TestClientSuite(t *testing.T) {
	loads := countLoads(t)
	report, err := (&Check{SuitePath: clientSuite}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range report.findings() {
		t.Error(f)
	}
	if *loads != 1 {
		t.Errorf("the chart was loaded %d times for %d scenarios; want once per run", *loads, len(report.Scenarios))
	}
	names := scenarioNames(report)
	for _, want := range []string{
		"defaults", "jobs-manager-pinned", "pods-monitor-pinned", "ingestor-pinned",
		"jobs-manager-and-pods-monitor-pinned", "all-pinned", "image-refresh-disabled",
		"reuse-values-from-chart-without-image-refresh", "image-refresh-values-nulled",
		"custom-schedule", "custom-release", "malformed-digest-rejected", "malformed-tag-rejected",
		"admission-guard-off", "set-image",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("suite has no scenario %q", want)
		}
	}
	// The contract itself ran where it matters, not only the expectations.
	for _, s := range report.Scenarios {
		switch s.Name {
		case "defaults", "jobs-manager-and-pods-monitor-pinned", "reuse-values-from-chart-without-image-refresh", "set-image":
			for _, c := range []string{
				postRenderCheck, refreshConfigCheck, cronJobConfigCheck, podSecurityCheck, rbacCheck, guardCheck, setEnvCheck,
				rolloutRestartCheck, setImageCheck,
			} {
				if got := checkStatus(&s, c); got != StatusPass {
					t.Errorf("%s: check %s is %q, want pass", s.Name, c, got)
				}
			}
		case "all-pinned", "image-refresh-disabled":
			if got := checkStatus(&s, cronJobCheck); got != StatusPass {
				t.Errorf("%s: check %s is %q, want pass", s.Name, cronJobCheck, got)
			}
		}
		if s.Name == "admission-guard-off" {
			if got := checkStatus(&s, guardCheck); got != StatusWarn {
				t.Errorf("%s: check %s is %q, want warn", s.Name, guardCheck, got)
			}
		}
		if s.Name == "image-refresh-disabled" {
			if c := expectEnvCheckPrefix + "stg-jobs-manager/api/INGESTOR_IMAGE_DIGEST"; checkStatus(&s, c) != StatusPass {
				t.Errorf("%s: check %s is %q, want pass", s.Name, c, checkStatus(&s, c))
			}
		}
	}
}

// TestBrokenStreams: every broken stream fails with exactly these findings.
func TestBrokenStreams(t *testing.T) {
	const (
		config     = `ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml)`
		deployment = `Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml)`
		invalid    = config + ": expected a valid refresh config; found an invalid one (see refresh-config)"
	)
	want := map[string][]string{
		"valid":     nil,
		"guard-off": nil, // a warning, no finding
		"ingestor-rollout-restart": {
			`rollout-restart: ` + deployment + `: image ingestor: expected container "api" to run ` +
				`ghcr.io/tracebloc/ingestor:prod with imagePullPolicy Always, so a restart pulls the moved tag; found container ` +
				`"api" runs docker.io/tracebloc/jobs-manager:prod, not ghcr.io/tracebloc/ingestor:prod: a rollout restart would ` +
				`not start the digest ghcr.io/tracebloc/ingestor:prod points at; run ghcr.io/tracebloc/ingestor:prod there, or ` +
				`set the image's repository and tag in the config to what the container runs`,
			`expect.image/ingestor: ` + config + `: image ingestor: expected action "set-env"; found action "rollout-restart"`,
			`expect.image/ingestor: ` + config + `: image ingestor: expected env "INGESTOR_IMAGE_DIGEST"; found env ""`,
		},
		"ingestor-docker-io": {
			`expect.image/ingestor: ` + config + `: image ingestor: expected registry ghcr.io; found registry index.docker.io ` +
				`(repository "docker.io/tracebloc/ingestor")`,
		},
		"annotation-key-wrong": {
			`expect.image/ingestor: ` + config + `: image ingestor: expected annotation ` +
				`"tracebloc.io/last-refreshed-ingestor-digest"; found annotation "tracebloc.io/last-refreshed-ingestor"`,
		},
		"annotation-key-invalid": {
			`refresh-config: ` + config + `: expected a valid RefreshConfig; found invalid refresh config ` +
				`"stg-image-refresh": spec.images[2] (ingestor).annotation "tracebloc.io/last refreshed ingestor digest": name ` +
				`part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric ` +
				`character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is ` +
				`'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
			`expect.image/ingestor: ` + invalid,
			`expect.image/jobs-manager: ` + invalid,
			`expect.image/pods-monitor: ` + invalid,
		},
		"cronjob-all-pinned": {
			`cronjob-presence: CronJob "stg-image-refresh" (document 8): expected no image-refresh CronJob: every image of ` +
				config + ` is pinned; found a CronJob running the refresher (label app.kubernetes.io/managed-by=image-refresh)`,
			`rbac: ServiceAccount "stg-image-refresh" (document 5): expected nothing injected: every image is pinned; found ` +
				`an image-refresh ServiceAccount`,
			`rbac: Role "stg-image-refresh" (document 6): expected nothing injected: every image is pinned; found an ` +
				`image-refresh Role`,
			`rbac: RoleBinding "stg-image-refresh" (document 7): expected nothing injected: every image is pinned; found an ` +
				`image-refresh RoleBinding`,
			`expect.cronJob: CronJob "stg-image-refresh" (document 8): expected no image-refresh CronJob; found one (label ` +
				`app.kubernetes.io/managed-by=image-refresh)`,
		},
		"cronjob-all-pinned-renamed": {
			`cronjob-presence: CronJob "stg-refresh-legacy" (document 5): expected no image-refresh CronJob: every image of ` +
				config + ` is pinned; found a CronJob running the refresher (label app.kubernetes.io/managed-by=image-refresh)`,
			`expect.cronJob: CronJob "stg-refresh-legacy" (document 5): expected no image-refresh CronJob; found one (label ` +
				`app.kubernetes.io/managed-by=image-refresh)`,
		},
		"rbac-without-config": {
			`rbac: ServiceAccount "stg-image-refresh" (document 4): expected nothing injected: no refresh config in the ` +
				`stream; found an image-refresh ServiceAccount`,
			`rbac: Role "stg-image-refresh" (document 5): expected nothing injected: no refresh config in the stream; found ` +
				`an image-refresh Role`,
			`rbac: RoleBinding "stg-image-refresh" (document 6): expected nothing injected: no refresh config in the stream; ` +
				`found an image-refresh RoleBinding`,
		},
		"role-namespace-wide": {
			`rbac: Role "stg-image-refresh" (document 6): expected resourceNames [stg-jobs-manager]; found rules[0]: no ` +
				`resourceNames, a namespace-wide grant on every Deployment`,
		},
		"expect-config-absent": {
			`expect.config: ` + config + `: expected no ConfigMap labelled image-refresh.io/config=true; found one`,
		},
		"expect-cronjob-absent": {
			`expect.cronJob: CronJob "stg-image-refresh" (document 8): expected no image-refresh CronJob; found one (label ` +
				`app.kubernetes.io/managed-by=image-refresh)`,
		},
		"expect-schedule": {
			`expect.schedule: ` + config + `: expected schedule "0 * * * *"; found "7,22,37,52 * * * *"`,
		},
		"expect-pod-security": {
			`expect.podSecurity: ` + deployment + `: expected a pod template allowed by Pod Security "restricted"; found ` +
				`privileged (container "api" must not set securityContext.privileged=true)`,
			`expect.podSecurity: ` + deployment + `: expected a pod template allowed by Pod Security "restricted"; found ` +
				`allowPrivilegeEscalation != false (container "api" must set securityContext.allowPrivilegeEscalation=false)`,
			`expect.podSecurity: ` + deployment + `: expected a pod template allowed by Pod Security "restricted"; found ` +
				`unrestricted capabilities (container "api" must set securityContext.capabilities.drop=["ALL"])`,
		},
		"expect-pinned": {
			`expect.image/jobs-manager: ` + config + `: image jobs-manager: expected pinned; found floating`,
		},
		"expect-target": {
			`expect.image/jobs-manager: ` + config + `: image jobs-manager: expected target "other"; found target ` +
				`"stg-jobs-manager"`,
		},
		"expect-container": {
			`expect.image/jobs-manager: ` + config + `: image jobs-manager: expected container "other"; found container "api"`,
		},
		"expect-repository": {
			`expect.image/jobs-manager: ` + config + `: image jobs-manager: expected repository ` +
				`"docker.io/other/jobs-manager"; found repository "docker.io/tracebloc/jobs-manager"`,
		},
		"expect-tag": {
			`expect.image/jobs-manager: ` + config + `: image jobs-manager: expected tag "latest"; found tag "prod"`,
		},
		"expect-verification-unset": {
			`expect.verification: ` + config + `: expected spec.verification: a new digest of every floating image needs a ` +
				`trusted signature; found no spec.verification`,
		},
		"expect-verification-exempt": {
			`expect.verification: ` + config + `: image ingestor: expected the image's new digests verified ` +
				`(spec.verification); found verify: false: exempt from the signature gate`,
		},
		"expect-digest": {
			`expect.image/ingestor: ` + config + `: image ingestor: expected digest ` +
				`"sha256:0000000000000000000000000000000000000000000000000000000000000000"; found digest ""`,
		},
		"env-chart-owned": {
			`set-env: ` + deployment + `: image ingestor: expected env INGESTOR_IMAGE_DIGEST on container "api" left to ` +
				`image-refresh while ingestor floats (absent, or named without a value); found container "api" renders env ` +
				`INGESTOR_IMAGE_DIGEST with value "` + ingestorPin + `": every helm upgrade would reset the digest the refresher ` +
				`set (a silent downgrade); leave INGESTOR_IMAGE_DIGEST out of the chart while the image floats (render it only ` +
				`when its digest is pinned)`,
			`expect.image/ingestor: ` + deployment + `: image ingestor: expected no env INGESTOR_IMAGE_DIGEST on container ` +
				`"api"; found value "` + ingestorPin + `"`,
		},
	}
	report, err := (&Check{SuitePath: brokenSuite}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if report.RenderFailed() {
		t.Fatalf("render failed: %v", report.findings())
	}
	if got := scenarioNames(report); len(got) != len(want) {
		t.Fatalf("scenarios %q; want %d", got, len(want))
	}
	for _, s := range report.Scenarios {
		t.Run(s.Name, func(t *testing.T) {
			wantFindings, ok := want[s.Name]
			if !ok {
				t.Fatalf("no expectation for scenario %q", s.Name)
			}
			var got []string
			for _, c := range s.Checks {
				for _, f := range c.Findings {
					got = append(got, c.Name+": "+f.String())
				}
			}
			if !slices.Equal(got, wantFindings) {
				t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantFindings, "\n  "))
			}
			if s.failed() != (len(wantFindings) > 0) {
				t.Errorf("Failed() = %v with %d findings", s.failed(), len(wantFindings))
			}
			switch s.Name {
			case "valid":
				if got := checkStatus(&s, guardCheck); got != StatusPass {
					t.Errorf("check %s is %q, want pass", guardCheck, got)
				}
			case "guard-off":
				if got := checkStatus(&s, guardCheck); got != StatusWarn {
					t.Errorf("check %s is %q, want warn", guardCheck, got)
				}
			}
		})
	}
}

// TestPostRendererRefusalIsACheckFailure: a chart the post-renderer refuses is reported as failed
// checks (exit 1), with chartcheck's own findings beside the refusals.
func TestPostRendererRefusalIsACheckFailure(t *testing.T) {
	report, err := (&Check{ChartPath: testdataDir + "/charts/owned-env"}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := report.Scenarios[0]
	var got []string
	for _, c := range s.Checks {
		for _, f := range c.Findings {
			got = append(got, c.Name+": "+f.String())
		}
	}
	const deployment = `Deployment "release-name-jobs-manager" (document 2, owned-env/templates/all.yaml)`
	wantPrefixes := []string{
		"post-render: stream: expected the post-renderer to accept the release; found refused (restart-pull-policy): ",
		"post-render: stream: expected the post-renderer to accept the release; found refused (env-rendered): ",
		`set-env: ` + deployment + `: image ingestor: expected env INGESTOR_IMAGE_DIGEST on container "api" left to ` +
			`image-refresh while ingestor floats (absent, or named without a value); found container "api" renders env ` +
			`INGESTOR_IMAGE_DIGEST with value "` + ingestorPin + `": every helm upgrade would reset the digest the refresher ` +
			`set (a silent downgrade); leave INGESTOR_IMAGE_DIGEST out of the chart while the image floats (render it only ` +
			`when its digest is pinned)`,
		`rollout-restart: ` + deployment + `: image jobs-manager: expected container "api" to run ` +
			`docker.io/tracebloc/jobs-manager:prod with imagePullPolicy Always, so a restart pulls the moved tag; found ` +
			`container "api" runs docker.io/tracebloc/jobs-manager:prod with imagePullPolicy IfNotPresent: a rollout restart ` +
			`would start the cached image instead of pulling the digest the tag now points at; set imagePullPolicy: Always on ` +
			`that container while jobs-manager floats`,
	}
	if len(got) != len(wantPrefixes) {
		t.Fatalf("findings:\n  %s\nwant %d", strings.Join(got, "\n  "), len(wantPrefixes))
	}
	for i, want := range wantPrefixes {
		if !strings.HasPrefix(got[i], want) {
			t.Errorf("finding %d:\n  %s\nwant prefix:\n  %s", i, got[i], want)
		}
	}
	for _, c := range []string{cronJobCheck, cronJobConfigCheck, scheduleCheck, podSecurityCheck, rbacCheck} {
		if st := checkStatus(&s, c); st != StatusSkip {
			t.Errorf("check %s is %q, want skip (nothing was injected)", c, st)
		}
	}
}

// TestStreamEdits breaks the valid stream one inline edit at a time.
func TestStreamEdits(t *testing.T) {
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	const (
		cronJob    = `CronJob "stg-image-refresh" (document 8)`
		role       = `Role "stg-image-refresh" (document 6)`
		deployment = `Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml)`
		config     = `ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml)`
		policy     = `ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc" (document 9)`
	)
	tests := []struct {
		name     string
		old, new string
		// also are further edits, old text → new.
		also map[string]string
		// appended is added to the end of the stream; old may then be empty.
		appended string
		want     []string
	}{
		{
			name: "config mounted writable",
			old:  "              mountPath: /etc/image-refresh\n              readOnly: true\n",
			new:  "              mountPath: /etc/image-refresh\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" to mount volume "config" readOnly; found a ` +
					`writable mount`,
			},
		},
		{
			name: "config from another ConfigMap",
			old:  "            configMap:\n              name: stg-image-refresh\n",
			new:  "            configMap:\n              name: other\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" to mount ConfigMap "stg-image-refresh" at ` +
					`/etc/image-refresh; found volume "config": ConfigMap "other"`,
			},
		},
		{
			name: "refresher reads another file",
			old:  "            - /etc/image-refresh/refresh.yaml\n",
			new:  "            - /etc/image-refresh/other.yaml\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" args ["--config" ` +
					`"/etc/image-refresh/refresh.yaml"], as the post-renderer renders it; found container "refresher" args ` +
					`["--config" "/etc/image-refresh/other.yaml"]`,
			},
		},
		{
			name: "CronJob suspended",
			old:  "  schedule: 7,22,37,52 * * * *\n",
			new:  "  schedule: 7,22,37,52 * * * *\n  suspend: true\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected suspend false: a suspended CronJob never refreshes; found suspend true`,
			},
		},
		{
			name: "concurrent runs allowed, deadlines dropped",
			old:  "  concurrencyPolicy: Forbid\n  startingDeadlineSeconds: 300\n",
			new:  "  concurrencyPolicy: Allow\n",
			also: map[string]string{"      activeDeadlineSeconds: 600\n": ""},
			want: []string{
				`cronjob-config: ` + cronJob + `: expected concurrencyPolicy Forbid: two runs would patch the same Deployments; ` +
					`found concurrencyPolicy Allow`,
				`cronjob-config: ` + cronJob + `: expected startingDeadlineSeconds 300 (the config's spec.job); found ` +
					`startingDeadlineSeconds unset`,
				`cronjob-config: ` + cronJob + `: expected activeDeadlineSeconds 600 (the config's spec.job); found ` +
					`activeDeadlineSeconds unset`,
			},
		},
		{
			name: "no token in the refresher pod",
			old:  "          automountServiceAccountToken: true\n",
			new:  "          automountServiceAccountToken: false\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected automountServiceAccountToken true: the refresher authenticates with ` +
					`its ServiceAccount's token; found automountServiceAccountToken false`,
			},
		},
		{
			name: "no token from the refresher ServiceAccount",
			old:  "          automountServiceAccountToken: true\n",
			new:  "",
			also: map[string]string{
				"kind: ServiceAccount\nmetadata:\n  name: stg-image-refresh\n": "kind: ServiceAccount\n" +
					"automountServiceAccountToken: false\nmetadata:\n  name: stg-image-refresh\n",
			},
			want: []string{
				`cronjob-config: ` + cronJob + `: expected automountServiceAccountToken true: the refresher authenticates with ` +
					`its ServiceAccount's token; found automountServiceAccountToken false, from ServiceAccount "stg-image-refresh" ` +
					`(document 5)`,
			},
		},
		{
			name: "CronJob runs another image",
			old:  "            image: ghcr.io/tracebloc/image-refresh:v0.1.0\n",
			new:  "            image: docker.io/evil/refresher:latest\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" image ghcr.io/tracebloc/image-refresh:v0.1.0 ` +
					`(the config's spec.job); found container "refresher" image docker.io/evil/refresher:latest`,
			},
		},
		{
			name: "CronJob resources and pull secrets differ from spec.job",
			old:  "              limits:\n                cpu: 200m\n                memory: 64Mi\n",
			new:  "              limits:\n                cpu: \"0.2\"\n                memory: 1Gi\n",
			also: map[string]string{
				"          restartPolicy: Never\n": "          restartPolicy: Never\n" +
					"          imagePullSecrets: [{name: regcred}]\n",
			},
			want: []string{
				`cronjob-config: ` + cronJob + `: expected imagePullSecrets [] (the config's spec.job); found imagePullSecrets ` +
					`["regcred"]`,
				`cronjob-config: ` + cronJob + `: expected container "refresher" limits cpu=200m memory=64Mi (the config's ` +
					`spec.job); found container "refresher" limits cpu=200m memory=1Gi`,
			},
		},
		{
			name: "CronJob overrides the entrypoint",
			old:  "            args:\n            - --config\n",
			new:  "            command: [/bin/sh, -c]\n            args:\n            - --config\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" to run the image's entrypoint, the refresher; ` +
					`found command ["/bin/sh" "-c"]`,
			},
		},
		{
			name: "registry credentials of spec.job not mounted",
			old:  "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n",
			new: "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n" +
				"      job: {registryCredentialsSecret: regcred}\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" env ` +
					`["DOCKER_CONFIG=/etc/image-refresh-docker"], as the post-renderer renders it; found container "refresher" env []`,
				`cronjob-config: ` + cronJob + `: expected container "refresher" to mount Secret "regcred" at ` +
					`/etc/image-refresh-docker (the config's spec.job.registryCredentialsSecret); found no such mount`,
			},
		},
		{
			name: "a second container mounts another ConfigMap at the config path",
			old:  "          volumes:\n          - name: config\n",
			new: "          - name: decoy\n            image: busybox:1\n" +
				"            args: [--config, /etc/image-refresh/refresh.yaml]\n" +
				"            securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: " +
				"true, capabilities: {drop: [ALL]}}\n            volumeMounts: [{name: evil, mountPath: /etc/image-refresh, " +
				"readOnly: true}]\n          volumes:\n          - name: evil\n            configMap: {name: other-config}\n" +
				"          - name: config\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected one container, the refresher, and no init containers: any container ` +
					`could use the refresher's token; found containers ["refresher" "decoy"], init containers []`,
			},
		},
		{
			name: "another ConfigMap's refresh.yaml mounted over the config's",
			old:  "              mountPath: /etc/image-refresh\n              readOnly: true\n",
			new: "              mountPath: /etc/image-refresh\n              readOnly: true\n            - name: evil\n" +
				"              mountPath: /etc/image-refresh/refresh.yaml\n              subPath: refresh.yaml\n",
			also: map[string]string{
				"          volumes:\n          - name: config\n": "          volumes:\n          - name: evil\n" +
					"            configMap: {name: other-config}\n          - name: config\n",
			},
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" to mount the config volume at ` +
					`/etc/image-refresh, and nothing under or above it; found volume "evil" at mountPath ` +
					`"/etc/image-refresh/refresh.yaml" subPath "refresh.yaml"`,
			},
		},
		{
			name: "a volume mounted above the config directory",
			old:  "              mountPath: /etc/image-refresh\n              readOnly: true\n",
			new: "              mountPath: /etc/image-refresh\n              readOnly: true\n            - name: etc\n" +
				"              mountPath: /etc/\n",
			also: map[string]string{
				"          volumes:\n          - name: config\n": "          volumes:\n          - name: etc\n" +
					"            emptyDir: {}\n          - name: config\n",
			},
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" to mount the config volume at ` +
					`/etc/image-refresh, and nothing under or above it; found volume "etc" at mountPath "/etc/" subPath ""`,
			},
		},
		{
			name: "a later --config overrides the config file",
			old:  "            - /etc/image-refresh/refresh.yaml\n",
			new:  "            - /etc/image-refresh/refresh.yaml\n            - --config=/tmp/other.yaml\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" args ["--config" ` +
					`"/etc/image-refresh/refresh.yaml"], as the post-renderer renders it; found container "refresher" args ` +
					`["--config" "/etc/image-refresh/refresh.yaml" "--config=/tmp/other.yaml"]`,
			},
		},
		{
			name: "schedule differs from the config",
			old:  "  schedule: 7,22,37,52 * * * *\n",
			new:  "  schedule: 0 * * * *\n",
			want: []string{
				`cronjob-schedule: ` + cronJob + `: expected the config's schedule "7,22,37,52 * * * *"; found "0 * * * *"`,
			},
		},
		{
			name: "schedule does not parse",
			old:  "  schedule: 7,22,37,52 * * * *\n",
			new:  "  schedule: every minute\n",
			want: []string{
				`cronjob-schedule: ` + cronJob + `: expected a cron schedule the API server accepts; found "every minute": ` +
					`expected exactly 5 fields, found 2: [every minute]`,
			},
		},
		{
			name: "CronJob schedule with a time zone",
			old:  "  schedule: 7,22,37,52 * * * *\n",
			new:  "  schedule: TZ=UTC 7,22,37,52 * * * *\n",
			want: []string{
				`cronjob-schedule: ` + cronJob + `: expected a cron schedule the API server accepts; found "TZ=UTC 7,22,37,52 * ` +
					`* * *": TZ= and CRON_TZ= are not allowed in a CronJob schedule (the API server refuses them)`,
			},
		},
		{
			name: "config and CronJob schedules with a time zone",
			old:  "      schedule: \"7,22,37,52 * * * *\"\n",
			new:  "      schedule: \"TZ=UTC 7 * * * *\"\n",
			also: map[string]string{"  schedule: 7,22,37,52 * * * *\n": "  schedule: TZ=UTC 7 * * * *\n"},
			want: []string{
				`refresh-config: ` + config + `: expected a valid RefreshConfig; found invalid refresh config ` +
					`"stg-image-refresh": spec.schedule "TZ=UTC 7 * * * *": TZ= and CRON_TZ= are not allowed in a CronJob schedule ` +
					`(the API server refuses them)`,
			},
		},
		{
			name: "audit annotation Helm owns",
			old:  "        annotation: tracebloc.io/last-refreshed-jobs-manager-digest\n",
			new:  "        annotation: meta.helm.sh/release-name\n",
			want: []string{
				`refresh-config: ` + config + `: expected a valid RefreshConfig; found invalid refresh config ` +
					`"stg-image-refresh": spec.images[0] (jobs-manager).annotation "meta.helm.sh/release-name": prefix ` +
					`"meta.helm.sh" is reserved for helm.sh; use a domain of your own, e.g. ` +
					`tracebloc.io/last-refreshed-<image>-digest`,
			},
		},
		{
			name: "audit annotation the Deployment controller owns",
			old:  "        annotation: tracebloc.io/last-refreshed-jobs-manager-digest\n",
			new:  "        annotation: deployment.kubernetes.io/revision\n",
			want: []string{
				`refresh-config: ` + config + `: expected a valid RefreshConfig; found invalid refresh config ` +
					`"stg-image-refresh": spec.images[0] (jobs-manager).annotation "deployment.kubernetes.io/revision": prefix ` +
					`"deployment.kubernetes.io" is reserved for kubernetes.io; use a domain of your own, e.g. ` +
					`tracebloc.io/last-refreshed-<image>-digest`,
			},
		},
		{
			name: "refresher may escalate",
			old:  "              allowPrivilegeEscalation: false\n              readOnlyRootFilesystem: true\n",
			new:  "              allowPrivilegeEscalation: true\n              readOnlyRootFilesystem: false\n",
			want: []string{
				`pod-security: ` + cronJob + `: expected a pod template allowed by Pod Security "restricted"; found ` +
					`allowPrivilegeEscalation != false (container "refresher" must set ` +
					`securityContext.allowPrivilegeEscalation=false)`,
				`pod-security: ` + cronJob + `: expected readOnlyRootFilesystem: true on every container; found a writable root ` +
					`filesystem in containers "refresher"`,
			},
		},
		{
			name: "Role may delete",
			old:  "  verbs:\n  - get\n  - patch\n",
			new:  "  verbs:\n  - get\n  - patch\n  - delete\n",
			want: []string{`rbac: ` + role + `: expected verbs get and patch only; found rules[0]: verb "delete"`},
		},
		{
			name: "Role grants another Deployment",
			old:  "  resourceNames:\n  - stg-jobs-manager\n",
			new:  "  resourceNames:\n  - stg-jobs-manager\n  - stg-other\n",
			want: []string{
				`rbac: ` + role + `: expected resourceNames [stg-jobs-manager]; found rules[0]: resourceName "stg-other", which ` +
					`is no floating image's target`,
			},
		},
		{
			name: "Role grants Secrets",
			old:  "  verbs:\n  - get\n  - patch\n",
			new:  "  verbs:\n  - get\n  - patch\n- apiGroups: [\"\"]\n  resources: [secrets]\n  verbs: [get]\n",
			want: []string{
				`rbac: ` + role + `: expected only get and patch on deployments.apps with resourceNames [stg-jobs-manager], and ` +
					`create,get,patch on events.events.k8s.io; found rules[1]: apiGroups [""] resources ["secrets"] verbs ["get"]`,
			},
		},
		{
			name: "CronJob runs as another ServiceAccount",
			old:  "          serviceAccountName: stg-image-refresh\n",
			new:  "          serviceAccountName: default\n",
			want: []string{`rbac: ` + cronJob + `: expected serviceAccountName "stg-image-refresh"; found "default"`},
		},
		{
			name: "refresher ServiceAccount also cluster-bound",
			old:  "apiVersion: batch/v1\nkind: CronJob\n",
			new: "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: too-much}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n" +
				"subjects: [{kind: ServiceAccount, name: stg-image-refresh, namespace: tracebloc}]\n---\napiVersion: batch/v1\n" +
				"kind: CronJob\n",
			want: []string{
				`rbac: ClusterRoleBinding "too-much" (document 8): expected ServiceAccount tracebloc/stg-image-refresh to be ` +
					`bound only by RoleBinding "stg-image-refresh"; found an extra grant of ClusterRole "cluster-admin" through ` +
					`subject ServiceAccount tracebloc/stg-image-refresh`,
			},
		},
		{
			name: "jobs-manager pinned in the Deployment only",
			old:  "        image: \"docker.io/tracebloc/jobs-manager:prod\"\n        imagePullPolicy: Always\n",
			new: "        image: " +
				"\"docker.io/tracebloc/jobs-manager@sha256:8a71aa1763956c8e65f60ee4bc7d89af97a532ce87d335817330395340cd40be\"\n" +
				"        imagePullPolicy: Always\n",
			want: []string{
				`rollout-restart: ` + deployment + `: image jobs-manager: expected container "api" to run ` +
					`docker.io/tracebloc/jobs-manager:prod with imagePullPolicy Always, so a restart pulls the moved tag; found ` +
					`container "api" runs the digest-pinned image ` +
					`docker.io/tracebloc/jobs-manager@sha256:8a71aa1763956c8e65f60ee4bc7d89af97a532ce87d335817330395340cd40be: a ` +
					`rollout restart would start that digest again, not the one docker.io/tracebloc/jobs-manager:prod points at; ` +
					`run the image by tag (docker.io/tracebloc/jobs-manager:prod) with imagePullPolicy: Always while jobs-manager ` +
					`floats, or pin the digest in the config too`,
			},
		},
		{
			name: "pods-monitor pull policy left to the default",
			old:  "        image: \"docker.io/tracebloc/pods-monitor:prod\"\n        imagePullPolicy: Always\n",
			new:  "        image: \"docker.io/tracebloc/pods-monitor:prod\"\n",
			want: []string{
				`rollout-restart: ` + deployment + `: image pods-monitor: expected container "pods-monitor" to run ` +
					`docker.io/tracebloc/pods-monitor:prod with imagePullPolicy Always, so a restart pulls the moved tag; found ` +
					`container "pods-monitor" runs docker.io/tracebloc/pods-monitor:prod with no imagePullPolicy, which Kubernetes ` +
					`defaults to IfNotPresent for "docker.io/tracebloc/pods-monitor:prod": a rollout restart would start the cached ` +
					`image instead of pulling the digest the tag now points at; set imagePullPolicy: Always on that container while ` +
					`pods-monitor floats`,
			},
		},
		{
			name: "target container renamed",
			old:  "      - name: pods-monitor\n        image: \"docker.io/tracebloc/pods-monitor:prod\"\n",
			new:  "      - name: monitor\n        image: \"docker.io/tracebloc/pods-monitor:prod\"\n",
			want: []string{
				`targets: ` + deployment + `: image pods-monitor: expected container "pods-monitor"; found container ` +
					`"pods-monitor" not found (it has "api", "monitor")`,
			},
		},
		{
			name: "chart renders the audit annotation",
			old:  "kind: Deployment\nmetadata:\n  name: stg-jobs-manager\n",
			new: "kind: Deployment\nmetadata:\n  name: stg-jobs-manager\n  annotations:\n" +
				"    tracebloc.io/last-refreshed-ingestor-digest: \"\"\n",
			want: []string{
				`annotations: ` + deployment + `: image ingestor: expected annotation ` +
					`tracebloc.io/last-refreshed-ingestor-digest left to image-refresh; found the chart renders it with value ""`,
			},
		},
		{
			name: "env var through envFrom a chart ConfigMap",
			old:  "        env:\n        - name: INGESTOR_IMAGE_REPOSITORY\n",
			new: "        envFrom:\n        - configMapRef: {name: ingestor}\n          prefix: INGESTOR_\n        env:\n" +
				"        - name: INGESTOR_IMAGE_REPOSITORY\n",
			appended: "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ingestor, namespace: tracebloc}\n" +
				"data: {IMAGE_DIGEST: sha256:0}\n",
			want: []string{
				`set-env: ` + deployment + `: image ingestor: expected env INGESTOR_IMAGE_DIGEST on container "api" left to ` +
					`image-refresh while ingestor floats (absent, or named without a value); found container "api" takes env ` +
					`INGESTOR_IMAGE_DIGEST from ConfigMap "ingestor" (document 11) (envFrom): every helm upgrade would reset the ` +
					`digest the refresher set (a silent downgrade); leave IMAGE_DIGEST out of it while the image floats`,
			},
		},
		{
			name: "refresher ServiceAccount cluster-bound inside a List",
			appended: "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n" +
				"  kind: ClusterRoleBinding\n  metadata: {name: sneaky}\n" +
				"  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n  subjects:\n" +
				"  - {kind: ServiceAccount, name: stg-image-refresh, namespace: tracebloc}\n",
			want: []string{
				`rbac: ClusterRoleBinding "sneaky" (document 11 items[0]): expected ServiceAccount tracebloc/stg-image-refresh ` +
					`to be bound only by RoleBinding "stg-image-refresh"; found an extra grant of ClusterRole "cluster-admin" ` +
					`through subject ServiceAccount tracebloc/stg-image-refresh`,
			},
		},
		{
			name: "refresher ServiceAccount cluster-bound by its user name",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: sneaky}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects:\n" +
				"- {kind: User, name: \"system:serviceaccount:tracebloc:stg-image-refresh\", apiGroup: " +
				"rbac.authorization.k8s.io}\n",
			want: []string{
				`rbac: ClusterRoleBinding "sneaky" (document 11): expected ServiceAccount tracebloc/stg-image-refresh to be ` +
					`bound only by RoleBinding "stg-image-refresh"; found an extra grant of ClusterRole "cluster-admin" through ` +
					`subject User "system:serviceaccount:tracebloc:stg-image-refresh"`,
			},
		},
		{
			name: "refresher ServiceAccount cluster-bound through its namespace's group",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: sneaky}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects:\n" +
				"- {kind: Group, name: \"system:serviceaccounts:tracebloc\", apiGroup: rbac.authorization.k8s.io}\n",
			want: []string{
				`rbac: ClusterRoleBinding "sneaky" (document 11): expected ServiceAccount tracebloc/stg-image-refresh to be ` +
					`bound only by RoleBinding "stg-image-refresh"; found an extra grant of ClusterRole "cluster-admin" through ` +
					`subject Group "system:serviceaccounts:tracebloc"`,
			},
		},
		{
			name: "read-only grants to every authenticated user and every ServiceAccount",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: discovery}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:discovery}\nsubjects:\n" +
				"- {kind: Group, name: \"system:authenticated\", apiGroup: rbac.authorization.k8s.io}\n---\n" +
				"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: all-view}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects:\n" +
				"- {kind: Group, name: \"system:serviceaccounts\", apiGroup: rbac.authorization.k8s.io}\n",
		},
		{
			name: "every ServiceAccount bound to a ClusterRole of the stream that writes",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\nrules:\n" +
				"- {apiGroups: [\"\"], resources: [pods], verbs: [get, list, delete]}\n---\n" +
				"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: all-read}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}\nsubjects:\n" +
				"- {kind: Group, name: \"system:serviceaccounts\", apiGroup: rbac.authorization.k8s.io}\n",
			want: []string{
				`rbac: ClusterRoleBinding "all-read" (document 12): expected ServiceAccount tracebloc/stg-image-refresh to be ` +
					`bound only by RoleBinding "stg-image-refresh"; found an extra grant of ClusterRole "reader" through subject ` +
					`Group "system:serviceaccounts"`,
			},
		},
		{
			name: "refresher ServiceAccount bound to edit through every authenticated user",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n" +
				"metadata: {name: readers, namespace: tracebloc}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: " +
				"ClusterRole, name: edit}\nsubjects:\n- {kind: Group, name: \"system:authenticated\", apiGroup: " +
				"rbac.authorization.k8s.io}\n",
			want: []string{
				`rbac: RoleBinding "readers" (document 11): expected ServiceAccount tracebloc/stg-image-refresh to be bound only ` +
					`by RoleBinding "stg-image-refresh"; found an extra grant of ClusterRole "edit" through subject Group ` +
					`"system:authenticated"`,
			},
		},
		{
			name: "another ServiceAccount's group is no grant to the refresher",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: elsewhere}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects:\n" +
				"- {kind: Group, name: \"system:serviceaccounts:other\", apiGroup: rbac.authorization.k8s.io}\n" +
				"- {kind: User, name: \"system:serviceaccount:tracebloc:stg-jobs-manager\", apiGroup: rbac.authorization.k8s.io}\n",
			want: nil,
		},
		{
			name: "refresher Role also bound to the default ServiceAccount",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n" +
				"metadata: {name: extra, namespace: tracebloc}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: " +
				"stg-image-refresh}\nsubjects:\n- {kind: ServiceAccount, name: default, namespace: tracebloc}\n",
			want: []string{
				`rbac: RoleBinding "extra" (document 11): expected Role "stg-image-refresh" bound only by RoleBinding ` +
					`"stg-image-refresh", to ServiceAccount tracebloc/stg-image-refresh; found another binding of it, to ` +
					`ServiceAccount tracebloc/default`,
			},
		},
		{
			name: "refresher RoleBinding with a second subject",
			old:  "subjects:\n- kind: ServiceAccount\n  name: stg-image-refresh\n  namespace: tracebloc\n",
			new: "subjects:\n- kind: ServiceAccount\n  name: stg-image-refresh\n  namespace: tracebloc\n" +
				"- kind: ServiceAccount\n  name: stg-jobs-manager\n",
			want: []string{
				`rbac: RoleBinding "stg-image-refresh" (document 7): expected one subject, ServiceAccount ` +
					`tracebloc/stg-image-refresh; found subjects[1]: ServiceAccount tracebloc/stg-jobs-manager`,
			},
		},
		{
			name: "another workload runs as the refresher ServiceAccount",
			appended: "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: helper, namespace: tracebloc}\nspec:\n" +
				"  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n" +
				"      serviceAccountName: stg-image-refresh\n      containers: [{name: h, image: busybox:1}]\n",
			want: []string{
				`rbac: Deployment "helper" (document 11): expected ServiceAccount tracebloc/stg-image-refresh used by CronJob ` +
					`"stg-image-refresh" alone; found Deployment serviceAccountName runs as it`,
			},
		},
		{
			name: "a token Secret for the refresher ServiceAccount",
			appended: "---\napiVersion: v1\nkind: Secret\ntype: kubernetes.io/service-account-token\nmetadata:\n" +
				"  name: token\n  namespace: tracebloc\n  annotations: {kubernetes.io/service-account.name: stg-image-refresh}\n",
			want: []string{
				`rbac: Secret "token" (document 11): expected ServiceAccount tracebloc/stg-image-refresh used by CronJob ` +
					`"stg-image-refresh" alone; found a token Secret for it`,
			},
		},
		{
			name: "Role allows creating core Events; the refresher creates events.k8s.io ones",
			old:  "  verbs:\n  - get\n  - patch\n",
			new:  "  verbs:\n  - get\n  - patch\n- apiGroups: [\"\"]\n  resources: [events]\n  verbs: [create]\n",
			want: []string{
				`rbac: ` + role + `: expected only get and patch on deployments.apps with resourceNames [stg-jobs-manager], and ` +
					`create,get,patch on events.events.k8s.io; found rules[1]: apiGroups [""] resources ["events"] verbs ["create"]`,
			},
		},
		{
			name: "Role without the rule on events",
			old:  "- apiGroups:\n  - events.k8s.io\n  resources:\n  - events\n  verbs:\n  - create\n  - get\n  - patch\n",
			new:  "",
			want: []string{
				`rbac: ` + role + `: expected get and patch on deployments.apps with resourceNames [stg-jobs-manager], and ` +
					`create,get,patch on events.events.k8s.io; found no rule of exactly create,get,patch on events.events.k8s.io: ` +
					`the refresher's Events (and their series) would be refused`,
			},
		},
		{
			name: "Role may also read, change or delete Events",
			old:  "  - events\n  verbs:\n  - create\n  - get\n  - patch\n",
			new:  "  - events\n  verbs:\n  - create\n  - get\n  - patch\n  - delete\n",
			want: []string{
				`rbac: ` + role + `: expected only get and patch on deployments.apps with resourceNames [stg-jobs-manager], and ` +
					`create,get,patch on events.events.k8s.io; found rules[1]: apiGroups ["events.k8s.io"] resources ["events"] ` +
					`verbs ["create" "get" "patch" "delete"]`,
				`rbac: ` + role + `: expected get and patch on deployments.apps with resourceNames [stg-jobs-manager], and ` +
					`create,get,patch on events.events.k8s.io; found no rule of exactly create,get,patch on events.events.k8s.io: ` +
					`the refresher's Events (and their series) would be refused`,
			},
		},
		{
			name: "Role grants events under every API group",
			old:  "  - events.k8s.io\n  resources:\n  - events\n",
			new:  "  - \"*\"\n  resources:\n  - events\n",
			want: []string{
				`rbac: ` + role + `: expected only get and patch on deployments.apps with resourceNames [stg-jobs-manager], and ` +
					`create,get,patch on events.events.k8s.io; found rules[1]: apiGroups ["*"] resources ["events"] verbs ["create" ` +
					`"get" "patch"]`,
				`rbac: ` + role + `: expected get and patch on deployments.apps with resourceNames [stg-jobs-manager], and ` +
					`create,get,patch on events.events.k8s.io; found no rule of exactly create,get,patch on events.events.k8s.io: ` +
					`the refresher's Events (and their series) would be refused`,
			},
		},
		{
			name: "events rule twice",
			old:  "  - events\n  verbs:\n  - create\n  - get\n  - patch\n",
			new: "  - events\n  verbs:\n  - create\n  - get\n  - patch\n" +
				"- {apiGroups: [events.k8s.io], resources: [events], verbs: [create, get, patch]}\n",
			want: []string{
				`rbac: ` + role + `: expected one rule for events; found rules[2]: apiGroups ["events.k8s.io"] resources ` +
					`["events"] verbs ["create" "get" "patch"], again`,
			},
		},
		{
			name: "Role rendered twice",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n" +
				"metadata: {name: stg-image-refresh, namespace: tracebloc}\nrules:\n" +
				"- {apiGroups: [\"*\"], resources: [\"*\"], verbs: [\"*\"]}\n",
			want: []string{
				`unique-objects: Role "stg-image-refresh" (document 11): expected one Role "stg-image-refresh" in the namespace; ` +
					`found a duplicate of ` + role,
			},
		},
		{
			name: "refresher args, env and envFrom beyond the post-renderer's",
			old:  "            - /etc/image-refresh/refresh.yaml\n",
			new: "            - /etc/image-refresh/refresh.yaml\n            - --dry-run\n" +
				"            env: [{name: HTTPS_PROXY, value: \"http://proxy:3128\"}]\n" +
				"            envFrom: [{configMapRef: {name: proxy}}]\n",
			want: []string{
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected container "refresher" args ["--config" ` +
					`"/etc/image-refresh/refresh.yaml"], as the post-renderer renders it; found container "refresher" args ` +
					`["--config" "/etc/image-refresh/refresh.yaml" "--dry-run"]`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected container "refresher" without HTTPS_PROXY: ` +
					`set proxy variables in the config's spec.job.env, which the post-renderer renders; found env ` +
					`HTTPS_PROXY=http://proxy:3128, not in spec.job.env`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected container "refresher" envFrom sources 0, as ` +
					`the post-renderer renders it; found container "refresher" envFrom sources 1`,
			},
		},
		{
			name: "a Job that never starts a pod",
			old:  "      backoffLimit: 1\n",
			new:  "      backoffLimit: 1\n      suspend: true\n      parallelism: 0\n      completions: 0\n",
			want: []string{
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected jobTemplate suspend false, as the ` +
					`post-renderer renders it; found jobTemplate suspend true`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected jobTemplate parallelism unset or 1: one pod ` +
					`runs the refresher once; found parallelism 0`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected jobTemplate completions unset or 1: one pod ` +
					`runs the refresher once; found completions 0`,
			},
		},
		{
			name: "pod fields that keep the refresher from reaching the API server",
			old:  "          restartPolicy: Never\n",
			new: "          restartPolicy: Always\n          hostNetwork: true\n          activeDeadlineSeconds: 1\n" +
				"          dnsPolicy: None\n          dnsConfig: {nameservers: [192.0.2.1]}\n" +
				"          hostAliases: [{ip: 192.0.2.1, hostnames: [kubernetes.default.svc]}]\n",
			want: []string{
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected pod activeDeadlineSeconds unset, as the ` +
					`post-renderer renders it; found pod activeDeadlineSeconds 1`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected pod hostAliases 0, as the post-renderer ` +
					`renders it; found pod hostAliases 1`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected pod dnsConfig set false, as the ` +
					`post-renderer renders it; found pod dnsConfig set true`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected pod hostNetwork false, as the post-renderer ` +
					`renders it; found pod hostNetwork true`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected pod dnsPolicy ClusterFirst, as the ` +
					`post-renderer renders it; found pod dnsPolicy None`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected pod restartPolicy Never or OnFailure: a ` +
					`Job's pod must end; found restartPolicy "Always"`,
				`pod-security: CronJob "stg-image-refresh" (document 8): expected a pod template allowed by Pod Security ` +
					`"restricted"; found host namespaces (hostNetwork=true)`,
			},
		},
		{
			name: "target Deployment paused",
			old:  "  replicas: 1\n",
			new:  "  paused: true\n  replicas: 1\n",
			want: []string{
				`targets: Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml): image jobs-manager: ` +
					`expected a Deployment that rolls out; found the Deployment is paused (spec.paused: true): nothing would roll ` +
					`out; resume it (kubectl rollout resume) or pin the image`,
				`targets: Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml): image pods-monitor: ` +
					`expected a Deployment that rolls out; found the Deployment is paused (spec.paused: true): nothing would roll ` +
					`out; resume it (kubectl rollout resume) or pin the image`,
				`targets: Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml): image ingestor: expected ` +
					`a Deployment that rolls out; found the Deployment is paused (spec.paused: true): nothing would roll out; ` +
					`resume it (kubectl rollout resume) or pin the image`,
			},
		},
		{
			name: "verbs split across rules per Deployment",
			old: "- apiGroups:\n  - apps\n  resources:\n  - deployments\n  resourceNames:\n  - stg-jobs-manager\n  verbs:\n" +
				"  - get\n  - patch\n",
			new: "- {apiGroups: [apps], resources: [deployments], resourceNames: [stg-jobs-manager, other], verbs: [get]}\n" +
				"- {apiGroups: [apps], resources: [deployments], resourceNames: [other], verbs: [patch]}\n",
			want: []string{
				`rbac: Role "stg-image-refresh" (document 6): expected resourceNames [stg-jobs-manager]; found rules[0]: ` +
					`resourceName "other", which is no floating image's target`,
				`rbac: Role "stg-image-refresh" (document 6): expected resourceNames [stg-jobs-manager]; found rules[1]: ` +
					`resourceName "other", which is no floating image's target`,
				`rbac: Role "stg-image-refresh" (document 6): expected get and patch on deployments.apps with resourceNames ` +
					`[stg-jobs-manager], and create,get,patch on events.events.k8s.io; found no patch on Deployment ` +
					`"stg-jobs-manager"`,
			},
		},
		{
			name: "get and patch in separate rules",
			old: "- apiGroups:\n  - apps\n  resources:\n  - deployments\n  resourceNames:\n  - stg-jobs-manager\n  verbs:\n" +
				"  - get\n  - patch\n",
			new: "- {apiGroups: [apps], resources: [deployments], resourceNames: [stg-jobs-manager], verbs: [get]}\n" +
				"- {apiGroups: [apps], resources: [deployments], resourceNames: [stg-jobs-manager], verbs: [patch]}\n",
		},
		{
			name: "a Deployment of another API group does not stand in for the target",
			old:  "# Source: client/templates/deployment.yaml\n",
			new: "apiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: stg-jobs-manager, namespace: tracebloc}\n" +
				"spec: {}\n---\n# Source: client/templates/deployment.yaml\n",
		},
		{
			name: "target Deployment without a namespace is not the config's",
			old:  "kind: Deployment\nmetadata:\n  name: stg-jobs-manager\n  namespace: tracebloc\n",
			new:  "kind: Deployment\nmetadata:\n  name: stg-jobs-manager\n",
			want: []string{
				`targets: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): image ` +
					`jobs-manager: expected target Deployment tracebloc/stg-jobs-manager in the stream; found no such object`,
				`targets: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): image ` +
					`pods-monitor: expected target Deployment tracebloc/stg-jobs-manager in the stream; found no such object`,
				`targets: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): image ` +
					`ingestor: expected target Deployment tracebloc/stg-jobs-manager in the stream; found no such object`,
			},
		},
		{
			name: "a chart's own CronJob with a --config flag and a binary named refresher",
			appended: "---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: backup, namespace: tracebloc}\nspec:\n" +
				"  schedule: \"0 3 * * *\"\n  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: " +
				"backup, image: busybox:1, command: [/bin/refresher], args: [--config, /etc/backup/backup.yaml], volumeMounts: " +
				"[{name: b, mountPath: /etc/backup}]}], volumes: [{name: b, configMap: {name: backup}}]}}}}\n",
		},
		{
			name: "refresher CronJob of another API group",
			old:  "apiVersion: batch/v1\nkind: CronJob\n",
			new:  "apiVersion: example.com/v1\nkind: CronJob\n",
			want: []string{
				`cronjob-presence: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): ` +
					`expected CronJob "stg-image-refresh": images jobs-manager, pods-monitor, ingestor float; found no such CronJob ` +
					`in the stream`,
			},
		},
		{
			name: "refresher CronJob renamed",
			old:  "kind: CronJob\nmetadata:\n  name: stg-image-refresh\n",
			new:  "kind: CronJob\nmetadata:\n  name: renamed\n",
			want: []string{
				`cronjob-presence: CronJob "renamed" (document 8): expected one image-refresh CronJob, named "stg-image-refresh" ` +
					`after the config; found another CronJob running the refresher (label app.kubernetes.io/managed-by=image-refresh)`,
				`cronjob-presence: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): ` +
					`expected CronJob "stg-image-refresh": images jobs-manager, pods-monitor, ingestor float; found no such CronJob ` +
					`in the stream`,
			},
		},
		{
			name: "refresher CronJob rendered twice",
			appended: "---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: stg-image-refresh\n" +
				"  namespace: tracebloc\n  labels: {app.kubernetes.io/managed-by: image-refresh}\nspec:\n" +
				"  schedule: \"0 * * * *\"\n  jobTemplate: {spec: {template: {spec: {containers: [{name: x, image: " +
				"busybox:1}]}}}}\n",
			want: []string{
				`unique-objects: CronJob "stg-image-refresh" (document 11): expected one CronJob "stg-image-refresh" in the ` +
					`namespace; found a duplicate of CronJob "stg-image-refresh" (document 8)`,
				`cronjob-presence: CronJob "stg-image-refresh" (document 11): expected one CronJob "stg-image-refresh"; found a ` +
					`duplicate`,
			},
		},
		{
			name: "refresher pod with an init container",
			old:  "          containers:\n",
			new:  "          initContainers: [{name: init, image: busybox:1}]\n          containers:\n",
			want: []string{
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected one container, the refresher, and no init ` +
					`containers: any container could use the refresher's token; found containers ["refresher"], init containers ` +
					`["init"]`,
				`pod-security: CronJob "stg-image-refresh" (document 8): expected a pod template allowed by Pod Security ` +
					`"restricted"; found allowPrivilegeEscalation != false (container "init" must set ` +
					`securityContext.allowPrivilegeEscalation=false)`,
				`pod-security: CronJob "stg-image-refresh" (document 8): expected a pod template allowed by Pod Security ` +
					`"restricted"; found unrestricted capabilities (container "init" must set ` +
					`securityContext.capabilities.drop=["ALL"])`,
				`pod-security: CronJob "stg-image-refresh" (document 8): expected readOnlyRootFilesystem: true on every ` +
					`container; found a writable root filesystem in containers "init"`,
			},
		},
		{
			name: "pull policy, requests, backoff and history limits differ from spec.job",
			old:  "            imagePullPolicy: IfNotPresent\n",
			new:  "            imagePullPolicy: Always\n",
			also: map[string]string{
				"      backoffLimit: 1\n": "      backoffLimit: 6\n",
				"  successfulJobsHistoryLimit: 1\n  failedJobsHistoryLimit: 3\n": "  successfulJobsHistoryLimit: 3\n" +
					"  failedJobsHistoryLimit: 1\n",
				"              requests:\n                cpu: 10m\n": "              requests:\n" +
					"                cpu: 20m\n",
			},
			want: []string{
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected successfulJobsHistoryLimit 1 (the config's ` +
					`spec.job); found successfulJobsHistoryLimit 3`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected failedJobsHistoryLimit 3 (the config's ` +
					`spec.job); found failedJobsHistoryLimit 1`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected backoffLimit 1 (the config's spec.job); ` +
					`found backoffLimit 6`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected container "refresher" imagePullPolicy ` +
					`IfNotPresent (the config's spec.job); found container "refresher" imagePullPolicy Always`,
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected container "refresher" requests cpu=10m ` +
					`memory=32Mi (the config's spec.job); found container "refresher" requests cpu=20m memory=32Mi`,
			},
		},
		{
			name: "config volume projects another key",
			old:  "              - key: refresh.yaml\n",
			new:  "              - key: other.yaml\n",
			want: []string{
				`cronjob-config: CronJob "stg-image-refresh" (document 8): expected volume "config" to project key ` +
					`"refresh.yaml" as "refresh.yaml"; found items [other.yaml→refresh.yaml]`,
			},
		},
		{
			name: "RoleBinding binds a ClusterRole",
			old:  "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n",
			new:  "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n",
			want: []string{
				`rbac: RoleBinding "stg-image-refresh" (document 7): expected roleRef Role "stg-image-refresh"; found roleRef ` +
					`ClusterRole "stg-image-refresh" (apiGroup "rbac.authorization.k8s.io")`,
			},
		},
		{
			name: "refresher ServiceAccount missing",
			old:  "kind: ServiceAccount\nmetadata:\n  name: stg-image-refresh\n",
			new:  "kind: ServiceAccount\nmetadata:\n  name: other\n",
			want: []string{
				`rbac: CronJob "stg-image-refresh" (document 8): expected ServiceAccount "stg-image-refresh"; found no such ` +
					`ServiceAccount in the stream`,
			},
		},
		{
			name: "refresher Role missing",
			old:  "kind: Role\nmetadata:\n  name: stg-image-refresh\n",
			new:  "kind: Role\nmetadata:\n  name: other\n",
			want: []string{
				`rbac: CronJob "stg-image-refresh" (document 8): expected Role "stg-image-refresh"; found no such Role in the ` +
					`stream`,
			},
		},
		{
			name: "refresher RoleBinding without subjects",
			old:  "subjects:\n- kind: ServiceAccount\n  name: stg-image-refresh\n  namespace: tracebloc\n",
			new:  "subjects: []\n",
			want: []string{
				`rbac: RoleBinding "stg-image-refresh" (document 7): expected one subject, ServiceAccount ` +
					`tracebloc/stg-image-refresh; found no subjects`,
			},
		},
		{
			name: "Role grants non-resource URLs",
			old:  "  verbs:\n  - get\n  - patch\n",
			new:  "  verbs:\n  - get\n  - patch\n  nonResourceURLs: [/metrics]\n",
			want: []string{
				`rbac: Role "stg-image-refresh" (document 6): expected only get and patch on deployments.apps with resourceNames ` +
					`[stg-jobs-manager], and create,get,patch on events.events.k8s.io; found rules[0]: apiGroups ["apps"] resources ` +
					`["deployments"] verbs ["get" "patch"] resourceNames ["stg-jobs-manager"] nonResourceURLs ["/metrics"]`,
				`rbac: Role "stg-image-refresh" (document 6): expected get and patch on deployments.apps with resourceNames ` +
					`[stg-jobs-manager], and create,get,patch on events.events.k8s.io; found no get or patch on Deployment ` +
					`"stg-jobs-manager"`,
			},
		},
		{
			name: "refresher ServiceAccount cluster-bound through every ServiceAccount's group",
			appended: "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: sneaky}\n" +
				"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: admin}\nsubjects:\n" +
				"- {kind: Group, name: \"system:serviceaccounts\", apiGroup: rbac.authorization.k8s.io}\n",
			want: []string{
				`rbac: ClusterRoleBinding "sneaky" (document 11): expected ServiceAccount tracebloc/stg-image-refresh to be ` +
					`bound only by RoleBinding "stg-image-refresh"; found an extra grant of ClusterRole "admin" through subject ` +
					`Group "system:serviceaccounts"`,
			},
		},
		{
			name: "schedule that never fires",
			old:  "schedule: \"7,22,37,52 * * * *\"",
			new:  "schedule: \"0 0 30 2 *\"",
			also: map[string]string{"  schedule: 7,22,37,52 * * * *\n": "  schedule: 0 0 30 2 *\n"},
			want: []string{
				`cronjob-schedule: ` + cronJob + `: expected a schedule that fires; found "0 0 30 2 *", which matches no date`,
			},
		},
		{
			name: "config without a namespace is its ConfigMap's",
			old:  "      namespace: tracebloc\n",
			new:  "",
		},
		{
			name: "config names another namespace than its ConfigMap's",
			old:  "      namespace: tracebloc\n",
			new:  "      namespace: other\n",
			want: []string{
				`refresh-config: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): ` +
					`expected the ConfigMap in the config's namespace "other" (the CronJob mounts it from there); found namespace ` +
					`"tracebloc"`,
			},
		},
		{
			name: "env var through envFrom a chart Secret's stringData",
			old:  "        env:\n        - name: INGESTOR_IMAGE_REPOSITORY\n",
			new: "        envFrom:\n        - secretRef: {name: ingestor}\n        env:\n" +
				"        - name: INGESTOR_IMAGE_REPOSITORY\n",
			appended: "---\napiVersion: v1\nkind: Secret\nmetadata: {name: ingestor, namespace: tracebloc}\n" +
				"stringData: {INGESTOR_IMAGE_DIGEST: sha256:0}\n",
			want: []string{
				`set-env: Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml): image ingestor: expected ` +
					`env INGESTOR_IMAGE_DIGEST on container "api" left to image-refresh while ingestor floats (absent, or named ` +
					`without a value); found container "api" takes env INGESTOR_IMAGE_DIGEST from Secret "ingestor" (document 11) ` +
					`(envFrom): every helm upgrade would reset the digest the refresher set (a silent downgrade); leave ` +
					`INGESTOR_IMAGE_DIGEST out of it while the image floats`,
			},
		},
		{
			name: "two refresh configs",
			old:  "apiVersion: batch/v1\nkind: CronJob\n",
			new: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: second, labels: {image-refresh.io/config: \"true\"}}\n" +
				"data: {refresh.yaml: \"\"}\n---\napiVersion: batch/v1\nkind: CronJob\n",
			want: []string{
				`refresh-config: ConfigMap "second" (document 8): expected at most one ConfigMap labelled ` +
					`image-refresh.io/config=true; found 2: ` + config + `, ConfigMap "second" (document 8)`,
			},
		},
		// The cases where chartcheck, postrender and the refresher once disagreed.
		{
			name: "config ConfigMap rendered as a Helm hook",
			old:  "    image-refresh.io/config: \"true\"\ndata:\n",
			new: "    image-refresh.io/config: \"true\"\n  annotations:\n    helm.sh/hook: pre-install\n" +
				"    helm.sh/hook-delete-policy: hook-succeeded\ndata:\n",
			want: []string{
				`refresh-config: ` + config + `: expected the refresh config ConfigMap as a resource of the release; found it is ` +
					`a Helm hook (helm.sh/hook: pre-install), which is not a resource of the release and may be deleted after the ` +
					`hook runs, so the CronJob could not mount it; render the refresh config ConfigMap without the helm.sh/hook ` +
					`annotation`,
			},
		},
		{
			name: "ServiceAccount token path shadowed by a volume",
			old:  "            volumeMounts:\n            - name: config\n",
			new: "            volumeMounts:\n            - name: config\n              mountPath: /etc/image-refresh\n" +
				"              readOnly: true\n            - name: tokens\n" +
				"              mountPath: /var/run/secrets/kubernetes.io\n            - name: config\n",
			also: map[string]string{
				"              mountPath: /etc/image-refresh\n              readOnly: true\n" +
					"          volumes:\n": "              mountPath: /var/run/secrets/kubernetes.io/serviceaccount/token\n" +
					"              subPath: x\n          volumes:\n",
			},
			want: []string{
				`cronjob-config: ` + cronJob + `: expected container "refresher" to leave ` +
					`/var/run/secrets/kubernetes.io/serviceaccount to the kubelet's ServiceAccount token; found volume "tokens" ` +
					`mounted at "/var/run/secrets/kubernetes.io", which shadows the token`,
				`cronjob-config: ` + cronJob + `: expected container "refresher" to leave ` +
					`/var/run/secrets/kubernetes.io/serviceaccount to the kubelet's ServiceAccount token; found volume "config" ` +
					`mounted at "/var/run/secrets/kubernetes.io/serviceaccount/token", which shadows the token`,
			},
		},
		{
			name: "config volume defaultMode unreadable by the refresher's UID",
			old:  "              name: stg-image-refresh\n              items:\n",
			new:  "              name: stg-image-refresh\n              defaultMode: 0400\n              items:\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected volume "config"'s refresh.yaml readable by the refresher's UID 65532 ` +
					`(file mode with read for others, or for the group with a pod fsGroup); found mode 0400`,
			},
		},
		{
			name: "config item mode readable by the group only, without fsGroup",
			old:  "                path: refresh.yaml\n",
			new:  "                path: refresh.yaml\n                mode: 0440\n",
			want: []string{
				`cronjob-config: ` + cronJob + `: expected volume "config"'s refresh.yaml readable by the refresher's UID 65532 ` +
					`(file mode with read for others, or for the group with a pod fsGroup); found mode 0440`,
			},
		},
		{
			name: "a merge key carries the set-env variable with a value",
			old:  "        env:\n        - name: INGESTOR_IMAGE_REPOSITORY\n",
			new: "        env:\n        - <<: {name: INGESTOR_IMAGE_DIGEST, value: \"sha256:old\"}\n" +
				"        - name: INGESTOR_IMAGE_REPOSITORY\n",
			want: []string{
				`set-env: ` + deployment + `: image ingestor: expected env INGESTOR_IMAGE_DIGEST on container "api" left to ` +
					`image-refresh while ingestor floats (absent, or named without a value); found container "api" renders env ` +
					`INGESTOR_IMAGE_DIGEST with value "sha256:old": every helm upgrade would reset the digest the refresher set (a ` +
					`silent downgrade); leave INGESTOR_IMAGE_DIGEST out of the chart while the image floats (render it only when ` +
					`its digest is pinned)`,
			},
		},
		{
			name: "duplicate imagePullPolicy keys: the last, IfNotPresent, wins",
			old:  "        image: \"docker.io/tracebloc/jobs-manager:prod\"\n        imagePullPolicy: Always\n",
			new: "        image: \"docker.io/tracebloc/jobs-manager:prod\"\n        imagePullPolicy: Always\n" +
				"        imagePullPolicy: IfNotPresent\n",
			want: []string{
				`rollout-restart: ` + deployment + `: image jobs-manager: expected container "api" to run ` +
					`docker.io/tracebloc/jobs-manager:prod with imagePullPolicy Always, so a restart pulls the moved tag; found ` +
					`container "api" runs docker.io/tracebloc/jobs-manager:prod with imagePullPolicy IfNotPresent: a rollout ` +
					`restart would start the cached image instead of pulling the digest the tag now points at; set imagePullPolicy: ` +
					`Always on that container while jobs-manager floats`,
			},
		},
		{
			name: "a bare set-env entry is left to the refresher",
			old:  "        env:\n        - name: INGESTOR_IMAGE_REPOSITORY\n",
			new:  "        env:\n        - name: INGESTOR_IMAGE_DIGEST\n        - name: INGESTOR_IMAGE_REPOSITORY\n",
		},
		{
			name: "the set-env variable listed twice",
			old:  "        env:\n        - name: INGESTOR_IMAGE_REPOSITORY\n",
			new: "        env:\n        - name: INGESTOR_IMAGE_DIGEST\n        - name: INGESTOR_IMAGE_DIGEST\n" +
				"        - name: INGESTOR_IMAGE_REPOSITORY\n",
			want: []string{
				`set-env: ` + deployment + `: image ingestor: expected env INGESTOR_IMAGE_DIGEST on container "api" left to ` +
					`image-refresh while ingestor floats (absent, or named without a value); found container "api" lists env ` +
					`INGESTOR_IMAGE_DIGEST 2 times (env[0] and env[1]): the kubelet uses the last, a patch by name cannot say which ` +
					`it changes; keep exactly one entry`,
			},
		},
		{
			name: "a Deployment kind of another API group is not the target",
			old:  "apiVersion: apps/v1\nkind: Deployment\n",
			new:  "apiVersion: example.com/v1\nkind: Deployment\n",
			want: []string{
				`targets: ` + config + `: image jobs-manager: expected target Deployment tracebloc/stg-jobs-manager in the ` +
					`stream; found no such object`,
				`targets: ` + config + `: image pods-monitor: expected target Deployment tracebloc/stg-jobs-manager in the ` +
					`stream; found no such object`,
				`targets: ` + config + `: image ingestor: expected target Deployment tracebloc/stg-jobs-manager in the stream; ` +
					`found no such object`,
			},
		},
		{
			name: "two set-env images write one variable of one resolved target",
			old:  "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n",
			new: "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n" +
				"      - {name: ingestor-b, repository: ghcr.io/tracebloc/ingestor, tag: prod, action: set-env, env: " +
				"INGESTOR_IMAGE_DIGEST, target: {name: stg-jobs-manager, container: api}, annotation: tracebloc.io/b}\n",
			// The guard in the stream is the one-ingestor config's: it lacks ingestor-b's annotations.
			want: []string{
				`admission-guard: ` + policy + `: expected validation 'image-refresh guard: annotation tracebloc.io/b may only ` +
					`be set to a sha256 digest'; found no such validation`,
				`admission-guard: ` + policy + `: expected validation 'image-refresh guard: annotation ` +
					`image-refresh.io/status-ingestor-b may only be set, to at most 4096 bytes'; found no such validation`,
				`admission-guard: ` + policy + `: expected variable 'allowedAnnotations' with expression ` +
					`…oc.io/last-refreshed-ingestor-digest', 'tracebloc.io/b', 'image-refresh.io/status-jobs-manager', 'im…; ` +
					`found expression …oc.io/last-refreshed-ingestor-digest', 'image-refresh.io/status-jobs-manager', ` +
					`'image-refresh.io/sta…`,
				`targets: ` + config + `: image ingestor-b: expected one set-env image per variable of a container; found ` +
					`spec.images[3] (ingestor-b).env "INGESTOR_IMAGE_DIGEST": spec.images[2] (ingestor) already sets it on ` +
					`container "api" of Deployment tracebloc/stg-jobs-manager; one patch would carry two values and every run would ` +
					`flip it: give one of them another variable or target`,
			},
		},
		{
			name: "kind-less items of a ConfigMapList take the list's kind",
			appended: "---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- metadata: {name: extra, namespace: tracebloc}\n" +
				"  data: {a: b}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edited := bytes.Clone(valid)
			edits := maps.Clone(tt.also)
			if tt.old != "" {
				edits = map[string]string{tt.old: tt.new}
				maps.Copy(edits, tt.also)
			}
			for old, new := range edits {
				if n := bytes.Count(valid, []byte(old)); n != 1 {
					t.Fatalf("the edit's old text %q occurs %d times in %s", old, n, validStream)
				}
				edited = bytes.Replace(edited, []byte(old), []byte(new), 1)
			}
			edited = append(edited, tt.appended...)
			stream, err := parseStream(edited)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range checkScenario(stream, false, nil, nil, false) {
				for _, f := range c.Findings {
					got = append(got, c.Name+": "+f.String())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestRefresherEvidence: a CronJob counts as the refresher's by any trace of it, whatever its name.
func TestRefresherEvidence(t *testing.T) {
	cfg, err := config.Parse(
		[]byte(
			"apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\nmetadata: {name: r}\nspec:\n" +
				"  images: [{name: a, repository: docker.io/x/a, action: rollout-restart, target: {name: a, container: a}, " +
				"annotation: x.io/a}]\n  job: {image: registry.example.com/mirror/image-refresh:v2}\n",
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, container, labels, volumes, want string
	}{
		{name: "unrelated", container: "{name: backup, image: busybox:1, args: [--conf, /etc/backup]}"},
		{
			name:      "managed-by label",
			labels:    "{app.kubernetes.io/managed-by: image-refresh}",
			container: "{name: x, image: busybox:1}",
			want:      "label app.kubernetes.io/managed-by=image-refresh",
		},
		{
			name:      "default refresher image",
			container: "{name: x, image: ghcr.io/tracebloc/image-refresh:v9}",
			want:      `container "x" runs the refresher image ghcr.io/tracebloc/image-refresh:v9`,
		},
		{
			name: "spec.job.image",
			container: "{name: x, image: " +
				"\"registry.example.com/mirror/image-refresh@" +
				"sha256:8a71aa1763956c8e65f60ee4bc7d89af97a532ce87d335817330395340cd40be\"}",
			want: `container "x" runs the refresher image ` +
				`registry.example.com/mirror/image-refresh@sha256:8a71aa1763956c8e65f60ee4bc7d89af97a532ce87d335817330395340cd40be`,
		},
		{
			name:      "a binary named refresher is no evidence",
			container: "{name: x, image: busybox:1, command: [/usr/local/bin/refresher]}",
		},
		{
			name: "a --config flag is no evidence",
			container: "{name: backup, image: busybox:1, args: [--config, /etc/backup/backup.yaml], volumeMounts: [{name: c, " +
				"mountPath: /etc/backup}]}",
		},
		{
			name:      "config ConfigMap mounted elsewhere",
			container: "{name: x, image: busybox:1, volumeMounts: [{name: c, mountPath: /srv}]}",
			volumes:   "[{name: c, configMap: {name: r-config}}]",
			want:      `container "x" mounts the config ConfigMap "r-config"`,
		},
		{
			name:      "another ConfigMap mounted elsewhere",
			container: "{name: x, image: busybox:1, volumeMounts: [{name: c, mountPath: /srv}]}",
			volumes:   "[{name: c, configMap: {name: backup}}]",
		},
		{
			name: "refresh.yaml by subPath",
			container: "{name: x, image: busybox:1, volumeMounts: [{name: c, mountPath: /etc/image-refresh/refresh.yaml, " +
				"subPath: refresh.yaml}]}",
			want: `container "x" mounts /etc/image-refresh/refresh.yaml`,
		},
		{
			name:      "sibling directory",
			container: "{name: x, image: busybox:1, volumeMounts: [{name: c, mountPath: /etc/image-refresh-docker}]}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels := defaultString(tt.labels, "{}")
			doc := "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: renamed, labels: " + labels +
				"}\nspec:\n  schedule: \"0 * * * *\"\n" +
				"  jobTemplate: {spec: {template: {spec: {containers: [" + tt.container +
				"], volumes: " + defaultString(tt.volumes, "[]") + "}}}}\n"
			stream, err := parseStream([]byte(doc))
			if err != nil {
				t.Fatal(err)
			}
			c := &checkedRelease{stream: stream, cfg: cfg, configDoc: &document{Kind: "ConfigMap", Name: "r-config"}}
			found, findings := c.refresherCronJobs()
			if len(findings) > 0 {
				t.Fatal(findings)
			}
			got := ""
			if len(found) == 1 {
				got = found[0].evidence
			}
			if got != tt.want {
				t.Errorf("evidence %q; want %q", got, tt.want)
			}
		})
	}
}

func TestParseStream(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string // document.String() of each document
		wantErr string
	}{
		{
			name: "helm sources and blank documents",
			in: "---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n" +
				"---\n# only a comment\n---\n\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n",
			want: []string{`ConfigMap "a" (document 1, c/templates/a.yaml)`, `Service "b" (document 2)`},
		},
		{
			name: "helm 4 filename annotation",
			in: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n" +
				"  annotations: {postrenderer.helm.sh/postrender-filename: c/templates/a.yaml}\n",
			want: []string{`ConfigMap "a" (document 1, c/templates/a.yaml)`},
		},
		{
			name: "separator inside a literal block",
			in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  x: |\n    ---\n    y\n---\napiVersion: v1\n" +
				"kind: Secret\nmetadata: {name: s}\n",
			want: []string{`ConfigMap "a" (document 1)`, `Secret "s" (document 2)`},
		},
		{
			name: "List items, nested Lists included, are the objects",
			in: "# Source: c/templates/l.yaml\napiVersion: v1\nkind: List\nitems:\n" +
				"- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- apiVersion: v1\n  kind: RoleBindingList\n  items:\n" +
				"  - {apiVersion: rbac.authorization.k8s.io/v1, kind: RoleBinding, metadata: {name: b}}\n---\napiVersion: v1\n" +
				"kind: List\nitems: []\n---\napiVersion: v1\nkind: Service\nmetadata: {name: c}\n",
			want: []string{
				`ConfigMap "a" (document 1 items[0], c/templates/l.yaml)`,
				`RoleBinding "b" (document 1 items[1].items[0], c/templates/l.yaml)`,
				`Service "c" (document 3)`,
			},
		},
		{
			// cli-runtime decodes any document with an items field as a list: items: null applies nothing.
			name: "items: null is an empty List",
			in: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nitems: null\n---\napiVersion: v1\n" +
				"kind: Service\nmetadata: {name: c}\n",
			want: []string{`Service "c" (document 2)`},
		},
		{
			name:    "items that are no list",
			in:      "apiVersion: v1\nkind: List\nitems: {a: b}\n",
			wantErr: "document 1: items is not a list, which Helm refuses",
		},
		{
			name: "List item without kind",
			in: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n" +
				"- {metadata: {name: b}}\n",
			wantErr: "document 1 items[1]: no kind",
		},
		{
			name: "document without kind",
			in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# Source: c/templates/b.yaml\n" +
				"metadata: {name: b}\n",
			wantErr: "document 2 (c/templates/b.yaml): no kind",
		},
		{
			name:    "not a mapping",
			in:      "- a\n- b\n",
			wantErr: "document 1: not a Kubernetes object",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseStream([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range s.Docs {
				got = append(got, d.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("documents %q; want %q", got, tt.want)
			}
		})
	}
}

// TestEnvExpectation: expect.env reads the rendered Deployment, with or without a refresh config.
func TestEnvExpectation(t *testing.T) {
	data, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := parseStream(data)
	if err != nil {
		t.Fatal(err)
	}
	const deployment = `Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml)`
	tests := []struct {
		deployment, name, value string
		want                    []string
	}{
		{"stg-jobs-manager", "INGESTOR_IMAGE_TAG", "prod", nil},
		{"stg-jobs-manager", "INGESTOR_IMAGE_DIGEST", "absent", nil},
		{
			"stg-jobs-manager",
			"INGESTOR_IMAGE_DIGEST",
			"",
			[]string{deployment + `: expected env INGESTOR_IMAGE_DIGEST="" on container "api"; found no such env`},
		},
		{
			"stg-jobs-manager",
			"INGESTOR_IMAGE_TAG",
			"absent",
			[]string{deployment + `: expected no env INGESTOR_IMAGE_TAG on container "api"; found value "prod"`},
		},
		{
			"stg-other",
			"INGESTOR_IMAGE_TAG",
			"prod",
			[]string{`stream: expected Deployment "stg-other"; found no such object`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			expect := &expectations{
				Env: []envExpectation{{Deployment: tt.deployment, Container: "api", Name: tt.name, Value: &tt.value}},
			}
			var got []string
			for _, c := range checkScenario(stream, false, nil, expect, false) {
				for _, f := range c.Findings {
					got = append(got, f.String())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings %q; want %q", got, tt.want)
			}
		})
	}
}

func TestSuiteValidation(t *testing.T) {
	tests := []struct {
		name, suite, wantErr string
	}{
		{"unknown field", "scenarios: [{name: a, expect: {cronjob: present}}]", "field cronjob not found"},
		{"no scenarios", "chart: .", "scenarios: at least one is required"},
		{"duplicate name", "scenarios: [{name: a}, {name: a}]", "scenarios[1] (a).name: duplicate"},
		{
			"bad presence",
			"scenarios: [{name: a, expect: {cronJob: maybe}}]",
			`scenarios[0] (a).expect.cronJob "maybe": must be "present" or "absent"`,
		},
		{
			"bad action",
			"scenarios: [{name: a, expect: {images: {x: {action: restart}}}}]",
			`scenarios[0] (a).expect.images.x.action "restart": must be "rollout-restart", "set-env" or "set-image"`,
		},
		{"manifests with values", "scenarios: [{name: a, manifests: m.yaml, set: {x: 1}}]", "manifests excludes values"},
		{
			"env without value",
			"scenarios: [{name: a, expect: {env: [{deployment: d, container: c, name: N}]}}]",
			`scenarios[0] (a).expect.env[0]: deployment, container, name and value (or "absent") are required`,
		},
		{
			"bad verification",
			"scenarios: [{name: a, expect: {verification: optional}}]",
			`scenarios[0] (a).expect.verification "optional": only "required" is supported`,
		},
		{
			"stdin read twice",
			"scenarios: [{name: a, manifests: \"-\"}, {name: b, manifests: \"-\"}]",
			`scenarios[1] (b).manifests "-": scenarios[0] (a) already reads stdin`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "suite.yaml")
			if err := os.WriteFile(path, []byte(tt.suite), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadSuite(path)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v; want %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		check   Check
		wantErr string
	}{
		{"nothing", Check{}, "nothing to check"},
		{"manifests and chart", Check{ManifestsPath: validStream, ChartPath: clientChart}, "excludes CHART and --suite"},
		{
			"manifests and values",
			Check{ManifestsPath: validStream, Values: values.Options{Values: []string{"a=b"}}},
			"values flags do not apply",
		},
		{
			"suite and values",
			Check{SuitePath: clientSuite, Values: values.Options{ValueFiles: []string{"x.yaml"}}},
			"drop -f/--set",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.check.Run(context.Background())
			var usage *usageError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &usage) {
				t.Fatalf("error %v; want a usage error with %q", err, tt.wantErr)
			}
		})
	}
}

// TestRenderDoesNotMutateTheLoadedChart: Helm resolves dependencies in place; rendering a chart
// with its subchart disabled must not remove the subchart from later renders.
func TestRenderDoesNotMutateTheLoadedChart(t *testing.T) {
	ch, err := loadChart(testdataDir + "/charts/with-dependency")
	if err != nil {
		t.Fatal(err)
	}
	render := func(subEnabled bool) string {
		t.Helper()
		r, err := ch.Render(
			context.Background(),
			renderOptions{Values: map[string]any{"sub": map[string]any{"enabled": subEnabled}}},
			nil,
		)
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Manifest)
	}
	if got := render(false); strings.Contains(got, "name: from-subchart") {
		t.Fatalf("disabled subchart rendered:\n%s", got)
	}
	if got := render(true); !strings.Contains(got, "name: from-subchart") {
		t.Fatalf("enabled subchart missing after a render with it disabled:\n%s", got)
	}
}

// TestImageDefaultsMatchValues: the chart's fallback image defaults (for --reuse-values from
// values without images) render exactly what values.yaml renders. (Without imageRefresh the
// config only loses keys the contract defaults; the suite's reuse-values scenario covers that.)
func TestImageDefaultsMatchValues(t *testing.T) {
	ch, err := loadChart(clientChart)
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := ch.Render(context.Background(), renderOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ReadValuesFile(clientChart + "/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	delete(vals, "images")
	reused, err := ch.Render(context.Background(), renderOptions{ReuseValues: vals.AsMap()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(defaults.Manifest, reused.Manifest) {
		t.Errorf(
			"rendering without images and imageRefresh differs from values.yaml's defaults:\n%s\nwant:\n%s",
			reused.Manifest,
			defaults.Manifest,
		)
	}
}

func TestDefaultKubeVersionIsTheE2EVersion(t *testing.T) {
	v, err := tools.Versions()
	if err != nil {
		t.Fatal(err)
	}
	if got := v["KUBERNETES_VERSION"]; got != DefaultKubeVersion {
		t.Errorf("e2e runs Kubernetes %s; DefaultKubeVersion is %s", got, DefaultKubeVersion)
	}
}

func TestKubeVersionReachesTheChart(t *testing.T) {
	_, err := (&Check{ChartPath: clientChart, Release: Release{KubeVersion: "v1.20.0"}}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(),
		"chart requires kubeVersion: >=1.29.0-0 which is incompatible with Kubernetes v1.20.0") {
		t.Fatalf("error %v; want the chart's kubeVersion refusal", err)
	}
}

func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Assert(t, filepath.Join(goldenDir, name), got)
}

func TestGoldenReports(t *testing.T) {
	report, err := (&Check{SuitePath: brokenSuite}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		format Format
		file   string
	}{{FormatText, "broken-suite.txt"}, {FormatJSON, "broken-suite.json"}, {FormatJUnit, "broken-suite.xml"}} {
		t.Run(string(f.format), func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteReport(&buf, report, f.format); err != nil {
				t.Fatal(err)
			}
			assertGolden(t, f.file, buf.Bytes())
		})
	}
}

func TestGoldenPlan(t *testing.T) {
	plan := &Plan{
		ChartPath: clientChart,
		Release:   Release{Name: "stg", Namespace: "tracebloc"},
		Values: values.Options{Values: []string{
			"images.ingestor.digest=" + ingestorPin,
			"images.podsMonitor.repository=" + podsMonitorR,
		}},
	}
	report, err := plan.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		format Format
		file   string
	}{{FormatText, "plan.txt"}, {FormatJSON, "plan.json"}} {
		t.Run(string(f.format), func(t *testing.T) {
			var buf bytes.Buffer
			if err := WritePlan(&buf, report, f.format); err != nil {
				t.Fatal(err)
			}
			assertGolden(t, f.file, buf.Bytes())
		})
	}
}

func TestPlanWithoutConfig(t *testing.T) {
	report, err := (&Plan{
		ChartPath: clientChart,
		Values:    values.Options{Values: []string{"imageRefresh.enabled=false"}},
	}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlan(&buf, report, FormatText); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "no refresh config in the stream: nothing is polled\n"; got != want {
		t.Errorf("plan %q; want %q", got, want)
	}
}

// BenchmarkSuite runs charts/client/chartcheck.yaml as chartcheck does: the chart loaded once.
// The load and the first scenario run outside the timer, so ms/scenario is the steady cost of
// each further scenario.
func BenchmarkSuite(b *testing.B) { benchmarkSuite(b, false) }

// BenchmarkSuiteChartPerScenario is the baseline: the chart loaded again for every scenario.
func BenchmarkSuiteChartPerScenario(b *testing.B) { benchmarkSuite(b, true) }

func benchmarkSuite(b *testing.B, loadPerScenario bool) {
	suite, err := loadSuite(clientSuite)
	if err != nil {
		b.Fatal(err)
	}
	check := &Check{SuitePath: clientSuite}
	ctx := context.Background()
	load := func() *loadedChart {
		ch, err := loadChart(suite.chartPath(""))
		if err != nil {
			b.Fatal(err)
		}
		return ch
	}
	run := func(ch *loadedChart, sc *scenario) {
		if r := check.runScenario(ctx, suite, ch, sc, postrender.Args{}); r.RenderError != "" || r.failed() {
			b.Fatalf("scenario %s failed: %v", sc.Name, (&Report{Scenarios: []ScenarioResult{r}}).findings())
		}
	}
	for b.Loop() {
		b.StopTimer()
		ch := load()
		run(ch, &suite.Scenarios[0])
		b.StartTimer()
		for i := 1; i < len(suite.Scenarios); i++ {
			if loadPerScenario {
				ch = load()
			}
			run(ch, &suite.Scenarios[i])
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(time.Millisecond)/float64(b.N*(len(suite.Scenarios)-1)), "ms/scenario")
}

// TestDefaultNamespace: objects without a namespace land in the release namespace, as Helm's
// kube client puts them; cluster-scoped ones stay without.
func TestDefaultNamespace(t *testing.T) {
	stream, err := parseStream(
		[]byte(
			"apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: x}\n---\n" +
				"apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: x, namespace: team-a}\n---\n" +
				"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n",
		),
	)
	if err != nil {
		t.Fatal(err)
	}
	stream.DefaultNamespace("team-b")
	var got []string
	for _, d := range stream.Docs {
		got = append(got, d.Kind+"/"+d.Namespace)
	}
	if want := []string{"Role/team-b", "Role/team-a", "ClusterRole/"}; !slices.Equal(got, want) {
		t.Errorf("namespaces %q; want %q", got, want)
	}
	if findings := (&checkedRelease{stream: stream}).checkUniqueObjects(); len(findings) > 0 {
		t.Errorf("Role x in team-a and in team-b reported as duplicates: %v", findings)
	}
}

// TestReleaseNamespace: a chart whose Deployment has no namespace keeps the contract in the
// release namespace, and only there; so does a rendered stream checked with -n.
func TestReleaseNamespace(t *testing.T) {
	chartDir := filepath.Join(t.TempDir(), "client")
	if err := os.CopyFS(chartDir, os.DirFS(clientChart)); err != nil {
		t.Fatal(err)
	}
	deployment := filepath.Join(chartDir, "templates", "deployment.yaml")
	tpl, err := os.ReadFile(deployment)
	if err != nil {
		t.Fatal(err)
	}
	const namespaced = "  namespace: {{ .Release.Namespace }}\n"
	if bytes.Count(tpl, []byte(namespaced)) != 1 {
		t.Fatalf("%s: no single %q to drop", deployment, namespaced)
	}
	if err := os.WriteFile(deployment, bytes.Replace(tpl, []byte(namespaced), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	report, err := (&Check{ChartPath: chartDir, Release: Release{Namespace: "prod"}}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if report.Failed() {
		t.Errorf("chart in namespace prod: %v", report.findings())
	}

	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	const deploymentMeta = "kind: Deployment\nmetadata:\n  name: stg-jobs-manager\n"
	stream := filepath.Join(t.TempDir(), "stream.yaml")
	if err := os.WriteFile(
		stream,
		bytes.Replace(valid, []byte(deploymentMeta+"  namespace: tracebloc\n"), []byte(deploymentMeta), 1),
		0o644,
	); err != nil {
		t.Fatal(err)
	}
	for namespace, wantFailed := range map[string]bool{"tracebloc": false, "other": true, "": true} {
		report, err := (&Check{ManifestsPath: stream, Release: Release{Namespace: namespace}}).Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if report.Failed() != wantFailed {
			t.Errorf("--manifests -n %q: failed %t, want %t: %v", namespace, report.Failed(), wantFailed, report.findings())
		}
	}
}

// TestForeignLabelledObjectsAreTheCharts: the post-renderer replaces only objects it would
// inject (by kind and name); a chart object that merely carries its managed-by label is the
// chart's, and chartcheck agrees: appending one changes no finding.
func TestForeignLabelledObjectsAreTheCharts(t *testing.T) {
	findings := func(data []byte) []string {
		stream, err := parseStream(data)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range checkScenario(stream, false, nil, nil, false) {
			for _, f := range c.Findings {
				out = append(out, c.Name+": "+f.String())
			}
		}
		return out
	}
	base, err := os.ReadFile(testdataDir + "/streams/cronjob-all-pinned.yaml")
	if err != nil {
		t.Fatal(err)
	}
	foreign := "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chart-settings\n  namespace: tracebloc\n" +
		"  labels: {app.kubernetes.io/managed-by: image-refresh}\ndata: {a: b}\n"
	if got, want := findings(append(bytes.Clone(base), foreign...)), findings(base); !slices.Equal(got, want) {
		t.Errorf(
			"findings with a foreign labelled ConfigMap:\n  %s\nwant:\n  %s",
			strings.Join(got, "\n  "),
			strings.Join(want, "\n  "),
		)
	}
}
