package postrender

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/tracebloc/image-refresh/internal/testutil/golden"
)

// TestProxyGolden renders testdata/postrender/golden/proxy: spec.job.env from --config, after
// DOCKER_CONFIG, in config order.
func TestProxyGolden(t *testing.T) {
	dir := filepath.Join(goldenDir, "proxy")
	in := readFile(t, filepath.Join(dir, "input.yaml"))
	opts := goldenOptions(t, dir)
	out, err := Render(in, opts)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	golden.Assert(t, filepath.Join(dir, "output.yaml"), out)
	again, err := Render(out, opts)
	if err != nil {
		t.Fatalf("Render on its own output: %v", err)
	}
	if !bytes.Equal(again, out) {
		t.Errorf("not idempotent: a second run changed the output:\n%s", again)
	}
}

// TestProxyEnv: the refresher container's env is the post-renderer's own, then spec.job.env.
func TestProxyEnv(t *testing.T) {
	for _, tc := range []struct {
		name, job string
		want      []string
	}{
		{name: "no job", want: nil},
		{name: "empty env", job: "{env: []}", want: nil},
		{
			name: "proxies in config order",
			job:  "{env: [{name: no_proxy, value: '.svc,10.96.0.0/12'}, {name: HTTPS_PROXY, value: 'http://proxy:3128'}]}",
			want: []string{"no_proxy=.svc,10.96.0.0/12", "HTTPS_PROXY=http://proxy:3128"},
		},
		{
			name: "after DOCKER_CONFIG",
			job: "{registryCredentialsSecret: creds, env: [{name: HTTP_PROXY, value: 'socks5://proxy:1080'}, {name: " +
				"NO_PROXY, value: '*'}]}",
			want: []string{"DOCKER_CONFIG=/etc/image-refresh-docker", "HTTP_PROXY=socks5://proxy:1080", "NO_PROXY=*"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := refreshBody("", "")
			if tc.job != "" {
				body += "  job: " + tc.job + "\n"
			}
			out, err := Render([]byte(refreshConfigMap(body)+webDeployment(floatingContainer)), Options{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got := refresherEnv(t, out); !slices.Equal(got, tc.want) {
				t.Errorf("env = %q, want %q", got, tc.want)
			}
		})
	}
}

// refresherEnv is the injected CronJob's refresher container env as name=value.
func refresherEnv(t *testing.T, out []byte) []string {
	t.Helper()
	nodes, err := parseAll(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.GetKind() != "CronJob" {
			continue
		}
		var cj batchv1.CronJob
		if err := sigsyaml.Unmarshal([]byte(n.MustString()), &cj); err != nil {
			t.Fatal(err)
		}
		ctr := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
		if ctr.Name != ContainerName {
			t.Fatalf("container %q, want %q", ctr.Name, ContainerName)
		}
		var env []string
		for _, e := range ctr.Env {
			env = append(env, fmt.Sprintf("%s=%s", e.Name, e.Value))
		}
		return env
	}
	t.Fatalf("no CronJob injected:\n%s", out)
	return nil
}
