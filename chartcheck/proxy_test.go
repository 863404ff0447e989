package chartcheck

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/postrender"
)

// proxyEnv is the spec.job.env proxyStream adds to the valid stream's config.
const proxyEnv = `      job:
        env:
        - {name: HTTPS_PROXY, value: "http://proxy.corp:3128"}
        - {name: NO_PROXY, value: "kubernetes.default.svc,10.96.0.0/12"}
`

// proxyStream is the valid stream with proxyEnv in its config, post-rendered.
func proxyStream(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	const last = "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n"
	out, err := postrender.Render([]byte(strings.Replace(string(data), last, last+proxyEnv, 1)), postrender.Options{})
	if err != nil {
		t.Fatalf("the post-renderer refuses spec.job.env: %v", err)
	}
	return out
}

// TestProxyEnv: cronjob-config accepts exactly the config's spec.job.env on the refresher
// container; a proxy variable missing, changed or not in spec.job.env is named.
func TestProxyEnv(t *testing.T) {
	const (
		cronJob  = `cronjob-config: CronJob "stg-image-refresh" (document 8): `
		rendered = "            env:\n            - name: HTTPS_PROXY\n              value: http://proxy.corp:3128\n" +
			"            - name: NO_PROXY\n              value: kubernetes.default.svc,10.96.0.0/12\n"
		noProxy = "            - name: NO_PROXY\n              value: kubernetes.default.svc,10.96.0.0/12\n"
		https   = "            - name: HTTPS_PROXY\n              value: http://proxy.corp:3128\n"
		args    = "            - /etc/image-refresh/refresh.yaml\n"
	)
	stream := proxyStream(t)
	valid, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		stream []byte
		edits  map[string]string
		want   []string
	}{
		{name: "as the post-renderer renders it", stream: stream},
		{
			name: "a configured proxy missing", stream: stream, edits: map[string]string{https: ""},
			want: []string{
				cronJob + `expected container "refresher" env HTTPS_PROXY=http://proxy.corp:3128 (the config's spec.job.env[0]); ` +
					`found no HTTPS_PROXY`,
			},
		},
		{
			name: "a configured proxy changed", stream: stream,
			edits: map[string]string{noProxy: "            - name: NO_PROXY\n              value: .svc\n"},
			want: []string{
				cronJob + `expected container "refresher" env NO_PROXY=kubernetes.default.svc,10.96.0.0/12 (the config's ` +
					`spec.job.env[1]); found env NO_PROXY=.svc`,
			},
		},
		{
			name: "a configured proxy from valueFrom", stream: stream,
			edits: map[string]string{
				https: "            - name: HTTPS_PROXY\n              valueFrom: {configMapKeyRef: {name: proxy, key: url}}\n",
			},
			want: []string{
				cronJob + `expected container "refresher" env HTTPS_PROXY=http://proxy.corp:3128 (the config's spec.job.env[0]); ` +
					`found env HTTPS_PROXY from valueFrom`,
			},
		},
		{
			name: "a configured proxy twice", stream: stream, edits: map[string]string{https: https + https},
			want: []string{
				cronJob + `expected container "refresher" env HTTPS_PROXY=http://proxy.corp:3128 (the config's spec.job.env[0]); ` +
					`found env HTTPS_PROXY=http://proxy.corp:3128, HTTPS_PROXY=http://proxy.corp:3128`,
			},
		},
		{
			name: "a proxy added by hand beside the configured ones", stream: stream,
			edits: map[string]string{noProxy: noProxy + "            - {name: http_proxy, value: 'http://other:3128'}\n"},
			want: []string{
				cronJob + `expected container "refresher" without http_proxy: set proxy variables in the config's spec.job.env, ` +
					`which the post-renderer renders; found env http_proxy=http://other:3128, not in spec.job.env`,
			},
		},
		{
			name: "a proxy added by hand without spec.job.env", stream: valid,
			edits: map[string]string{
				args: args + "            env: [{name: NO_PROXY, value: '*'}, {name: HTTP_PROXY, value: 'http://p:1'}]\n",
			},
			want: []string{
				cronJob + `expected container "refresher" without HTTP_PROXY: set proxy variables in the config's spec.job.env, ` +
					`which the post-renderer renders; found env HTTP_PROXY=http://p:1, not in spec.job.env`,
				cronJob + `expected container "refresher" without NO_PROXY: set proxy variables in the config's spec.job.env, ` +
					`which the post-renderer renders; found env NO_PROXY=*, not in spec.job.env`,
			},
		},
		{
			name: "the configured proxies in another order", stream: stream, edits: map[string]string{
				rendered: "            env:\n" + noProxy + https,
			},
			want: []string{
				cronJob + `expected container "refresher" env ["HTTPS_PROXY=http://proxy.corp:3128" ` +
					`"NO_PROXY=kubernetes.default.svc,10.96.0.0/12"], as the post-renderer renders it; found container "refresher" ` +
					`env ["NO_PROXY=kubernetes.default.svc,10.96.0.0/12" "HTTPS_PROXY=http://proxy.corp:3128"]`,
			},
		},
		{
			name: "another variable beside the configured proxies", stream: stream, edits: map[string]string{
				noProxy: noProxy + "            - {name: KUBERNETES_SERVICE_HOST, value: 192.0.2.1}\n",
			},
			want: []string{
				cronJob + `expected container "refresher" env ["HTTPS_PROXY=http://proxy.corp:3128" ` +
					`"NO_PROXY=kubernetes.default.svc,10.96.0.0/12"], as the post-renderer renders it; found container "refresher" ` +
					`env ["HTTPS_PROXY=http://proxy.corp:3128" "NO_PROXY=kubernetes.default.svc,10.96.0.0/12" ` +
					`"KUBERNETES_SERVICE_HOST=192.0.2.1"]`,
			},
		},
		{
			name: "a missing proxy and another variable", stream: stream, edits: map[string]string{
				https: "            - {name: KUBERNETES_SERVICE_HOST, value: 192.0.2.1}\n",
			},
			want: []string{
				cronJob + `expected container "refresher" env HTTPS_PROXY=http://proxy.corp:3128 (the config's spec.job.env[0]); ` +
					`found no HTTPS_PROXY`,
				cronJob + `expected container "refresher" env ["HTTPS_PROXY=http://proxy.corp:3128" ` +
					`"NO_PROXY=kubernetes.default.svc,10.96.0.0/12"], as the post-renderer renders it; found container "refresher" ` +
					`env ["KUBERNETES_SERVICE_HOST=192.0.2.1" "NO_PROXY=kubernetes.default.svc,10.96.0.0/12"]`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, results := editStream(t, tc.stream, tc.edits, "")
			wantCheck(t, got, results, cronJobConfigCheck, tc.want)
		})
	}
}

// TestChartProxyValues: charts/client's imageRefresh.proxy renders spec.job.env (only the values
// set, HTTP_PROXY, HTTPS_PROXY, NO_PROXY in that order), and the post-rendered release passes.
func TestChartProxyValues(t *testing.T) {
	manifest, cfg := renderClientConfig(t,
		"imageRefresh.proxy.httpsProxy=http://proxy.corp:3128",
		`imageRefresh.proxy.noProxy=kubernetes.default.svc\,.svc\,10.96.0.0/12`,
	)
	want := []config.EnvVar{
		{Name: "HTTPS_PROXY", Value: "http://proxy.corp:3128"},
		{Name: "NO_PROXY", Value: "kubernetes.default.svc,.svc,10.96.0.0/12"},
	}
	if !reflect.DeepEqual(cfg.Spec.Job.Env, want) {
		t.Errorf("spec.job.env = %q, want %q", cfg.Spec.Job.Env, want)
	}
	out, err := postrender.Render([]byte(manifest), postrender.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if findings, _ := editStream(t, out, nil, "tracebloc"); len(findings) > 0 {
		t.Errorf("findings:\n  %s", strings.Join(findings, "\n  "))
	}
}
