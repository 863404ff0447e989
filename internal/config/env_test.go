package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestJobEnv(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		want      []EnvVar // accepted as is
		err       []string // every fragment must appear in the error
	}{
		{name: "unset", env: ""},
		{name: "empty", env: "[]"},
		{
			name: "every form Go reads",
			env: `[{name: HTTPS_PROXY, value: 'http://proxy.corp:3128'}, {name: HTTP_PROXY, value: ` +
				`'http://user:pw@proxy.corp:3128/'},
  {name: NO_PROXY, value: 'kubernetes.default.svc,.svc, ` +
				`*.cluster.local,10.96.0.0/12,10.0.0.1,[fd00::1]:443,localhost:8080,*,'},
  {name: https_proxy, value: 'http://proxy.corp:3128'}]`,
			want: []EnvVar{{"HTTPS_PROXY", "http://proxy.corp:3128"}, {"HTTP_PROXY", "http://user:pw@proxy.corp:3128/"},
				{"NO_PROXY", "kubernetes.default.svc,.svc, *.cluster.local,10.96.0.0/12,10.0.0.1,[fd00::1]:443,localhost:8080,*,"},
				{"https_proxy", "http://proxy.corp:3128"}},
		},
		{
			name: "another variable among them",
			env:  `[{name: HTTPS_PROXY, value: 'http://proxy.corp:3128'}, {name: all_proxy, value: x}]`,
			err: []string{"spec.job.env[1] (all_proxy).name: only HTTP_PROXY, HTTPS_PROXY, NO_PROXY, http_proxy, " +
				"https_proxy, no_proxy may be set"},
		},
		{
			name: "accepted in order",
			env: `[{name: no_proxy, value: 'kubernetes.default.svc,10.96.0.0/12'}, {name: HTTPS_PROXY, value: ` +
				`'socks5h://proxy.corp:1080'}, {name: HTTP_PROXY, value: 'https://proxy.corp'}]`,
			want: []EnvVar{{"no_proxy", "kubernetes.default.svc,10.96.0.0/12"}, {"HTTPS_PROXY", "socks5h://proxy.corp:1080"},
				{"HTTP_PROXY", "https://proxy.corp"}},
		},
		{name: "another variable", env: `[{name: DOCKER_CONFIG, value: /tmp}]`,
			err: []string{"spec.job.env[0] (DOCKER_CONFIG).name: only HTTP_PROXY"}},
		{name: "mixed case", env: `[{name: Http_Proxy, value: 'http://p:1'}]`,
			err: []string{"spec.job.env[0] (Http_Proxy).name: only"}},
		{name: "valueFrom", env: `[{name: HTTP_PROXY, valueFrom: {secretKeyRef: {name: s, key: k}}}]`,
			err: []string{"field valueFrom not found"}},
		{
			name: "duplicate",
			env:  `[{name: HTTP_PROXY, value: 'http://p:1'}, {name: HTTP_PROXY, value: 'http://p:1'}]`,
			err:  []string{"spec.job.env[1] (HTTP_PROXY).name: duplicate of spec.job.env[0]"},
		},
		{
			name: "both forms differ",
			env:  `[{name: http_proxy, value: 'http://a:1'}, {name: HTTP_PROXY, value: 'http://b:1'}]`,
			err: []string{`spec.job.env[1] (HTTP_PROXY).value "http://b:1": differs from spec.job.env[0] (http_proxy) ` +
				`"http://a:1"; Go reads only HTTP_PROXY`},
		},
		{
			name: "both forms agree",
			env:  `[{name: no_proxy, value: '.svc'}, {name: NO_PROXY, value: '.svc'}]`,
			want: []EnvVar{{"no_proxy", ".svc"}, {"NO_PROXY", ".svc"}},
		},
		{name: "no scheme", env: `[{name: HTTPS_PROXY, value: 'proxy.corp:3128'}]`,
			err: []string{`spec.job.env[0] (HTTPS_PROXY).value "proxy.corp:3128": scheme must be http, https, socks5, socks5h`}},
		{name: "unsupported scheme", env: `[{name: HTTP_PROXY, value: 'ftp://p:21'}]`,
			err: []string{`spec.job.env[0] (HTTP_PROXY).value "ftp://p:21": scheme must be`}},
		{name: "no host", env: `[{name: HTTP_PROXY, value: 'http://:3128'}]`, err: []string{"must name a host"}},
		{name: "empty proxy", env: `[{name: https_proxy, value: ''}]`,
			err: []string{`spec.job.env[0] (https_proxy).value "": scheme must be`}},
		{name: "path", env: `[{name: HTTP_PROXY, value: 'http://p:1/proxy.pac'}]`,
			err: []string{"must not have a path, query or fragment"}},
		{name: "bad port", env: `[{name: HTTP_PROXY, value: 'http://p:99999'}]`,
			err: []string{`port "99999" must be 1-65535`}},
		{name: "not a URL", env: `[{name: HTTP_PROXY, value: 'http://p:1 2'}]`, err: []string{"must be a URL"}},
		{name: "empty no_proxy", env: `[{name: NO_PROXY, value: ' , '}]`,
			err: []string{`spec.job.env[0] (NO_PROXY).value " , ": must list at least one host`}},
		{name: "no_proxy entry", env: `[{name: NO_PROXY, value: '.svc,bad_host'}]`,
			err: []string{`spec.job.env[0] (NO_PROXY).value ".svc,bad_host": entry "bad_host": not a host, domain, IP or CIDR`}},
		{name: "no_proxy port only", env: `[{name: NO_PROXY, value: ':443'}]`, err: []string{`entry ":443": not a host`}},
		{name: "no_proxy bad port", env: `[{name: NO_PROXY, value: 'a.svc:0'}]`,
			err: []string{`entry "a.svc:0": port "0" must be 1-65535`}},
		{name: "no_proxy URL", env: `[{name: NO_PROXY, value: 'http://a.svc'}]`, err: []string{`entry "http://a.svc"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := withImages(restartImage)
			if tc.env != "" {
				doc += "  job:\n    env: " + strings.ReplaceAll(tc.env, "\n", "\n    ") + "\n"
			}
			cfg, err := Parse([]byte(doc))
			if tc.err != nil {
				if err == nil {
					t.Fatalf("accepted, want an error containing %q", tc.err)
				}
				for _, frag := range tc.err {
					if !strings.Contains(err.Error(), frag) {
						t.Errorf("error %v\nwant one containing %q", err, frag)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Spec.Job.Env, tc.want) {
				t.Errorf("env = %q, want %q", cfg.Spec.Job.Env, tc.want)
			}
		})
	}
}

// TestJobEnvRoundTrip: the env survives the ConfigMap the post-renderer writes, in order.
