package chartcheck

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// verificationStream is charts/client rendered with ci/verification.yaml (keys the chart renders)
// and images.ingestor.verify=false, post-rendered.
const verificationStream = "../testdata/chartcheck/streams/verification.yaml"

// TestVerificationKeys: with spec.verification the CronJob mounts the keys ConfigMap whole and
// read-only at the keys path, and the ConfigMap is in the stream with valid keys or declared external.
func TestVerificationKeys(t *testing.T) {
	valid, err := os.ReadFile(verificationStream)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := os.ReadFile("../testdata/postrender/keys/rsa-1024.pub")
	if err != nil {
		t.Fatal(err)
	}
	const (
		cronJob = `CronJob "stg-image-refresh" (document 9): `
		config  = `ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): `
		keysCM  = `ConfigMap "stg-image-refresh-keys" (document 3, client/templates/image-refresh-keys.yaml): `
		mount   = "            - name: verification-keys\n              mountPath: /etc/image-refresh-keys\n" +
			"              readOnly: true\n"
		volume    = "            configMap:\n              name: stg-image-refresh-keys\n"
		keysMeta  = "  name: stg-image-refresh-keys\n  namespace: tracebloc\n"
		wantMount = `expected container "refresher" to mount ConfigMap "stg-image-refresh-keys" ` +
			`(spec.verification.keysConfigMap) at /etc/image-refresh-keys`
		missing = `verification-keys: ` + config + `expected ConfigMap "stg-image-refresh-keys" ` +
			`(spec.verification.keysConfigMap) in namespace "tracebloc", rendered by the chart or declared external ` +
			`(--allow-external-keys); found `
	)
	tests := []struct {
		name              string
		edits             map[string]string
		allowExternalKeys bool
		// want are the findings, each a prefix (a key's error is the signature package's);
		// mentions is text the findings must hold, the bad key's name.
		want     []string
		mentions string
	}{
		{name: "as the post-renderer renders it"},
		{
			name:  "mounted writable",
			edits: map[string]string{mount: strings.TrimSuffix(mount, "              readOnly: true\n")},
			want: []string{
				`verification-keys: ` + cronJob + `expected container "refresher" to mount volume "verification-keys" readOnly; ` +
					`found a writable mount`,
			},
		},
		{name: "not mounted", edits: map[string]string{mount: ""},
			want: []string{`verification-keys: ` + cronJob + wantMount + `; found no mount there`}},
		{
			name:  "another ConfigMap mounted there",
			edits: map[string]string{volume: "            configMap:\n              name: other-keys\n"},
			want: []string{
				`verification-keys: ` + cronJob + wantMount + `; found volume "verification-keys": ConfigMap "other-keys"`,
			},
		},
		{
			name:  "some keys projected",
			edits: map[string]string{volume: volume + "              items: [{key: release.pub, path: release.pub}]\n"},
			want: []string{
				`verification-keys: ` + cronJob + `expected volume "verification-keys" to project every key of ConfigMap ` +
					`"stg-image-refresh-keys" (no items): a key added later must reach the refresher; found items ` +
					`[release.pub→release.pub]`,
			},
		},
		{name: "optional", edits: map[string]string{volume: volume + "              optional: true\n"},
			want: []string{
				`verification-keys: ` + cronJob + `expected volume "verification-keys" not optional: without its keys the ` +
					`refresher cannot verify a signature; found optional: true`,
			}},
		{
			name:  "keys unreadable by the refresher",
			edits: map[string]string{volume: volume + "              defaultMode: 0600\n"},
			want: []string{
				`verification-keys: ` + cronJob + `expected volume "verification-keys"'s keys readable by the refresher's UID ` +
					`65532 (file mode with read for others, or for the group with a pod fsGroup); found defaultMode 0600`,
			},
		},
		{
			name: "a file mounted into the keys directory",
			edits: map[string]string{
				mount: mount + "            - name: config\n              mountPath: /etc/image-refresh-keys/extra.pub\n" +
					"              subPath: refresh.yaml\n",
			},
			want: []string{
				`verification-keys: ` + cronJob + wantMount + `, and nothing under or above it; found volume "config" at ` +
					`mountPath "/etc/image-refresh-keys/extra.pub" subPath "refresh.yaml"`,
			},
		},
		{
			name:  "keys ConfigMap not in the stream",
			edits: map[string]string{keysMeta: "  name: unrelated\n  namespace: tracebloc\n"},
			want:  []string{missing + "no such ConfigMap in the stream"},
		},
		{
			name:  "keys ConfigMap in another namespace",
			edits: map[string]string{keysMeta: "  name: stg-image-refresh-keys\n  namespace: other\n"},
			want:  []string{missing + "no such ConfigMap in the stream"},
		},
		{
			name:              "keys ConfigMap declared external",
			edits:             map[string]string{keysMeta: "  name: unrelated\n  namespace: tracebloc\n"},
			allowExternalKeys: true,
		},
		{
			name:  "keys ConfigMap is a Helm hook",
			edits: map[string]string{keysMeta: keysMeta + "  annotations: {helm.sh/hook: pre-install}\n"},
			want: []string{
				missing + `ConfigMap "stg-image-refresh-keys" (document 3, client/templates/image-refresh-keys.yaml) is a Helm ` +
					`hook (helm.sh/hook: pre-install), not a resource of the release`,
			},
		},
		{name: "a key that is too weak, also when declared external", allowExternalKeys: true,
			edits: map[string]string{"data:\n  ci.pub:": "data:\n  weak.pub: " + quoted(string(weak)) + "\n  ci.pub:"},
			want: []string{
				`verification-keys: ` + keysCM + `expected *.pub entries that are PEM public keys (cosign.pub: ECDSA ` +
					`P-256/P-384, Ed25519, RSA ≥ 2048); found `,
			},
			mentions: "weak.pub"},
		{
			name:  "a key in data and binaryData",
			edits: map[string]string{"data:\n  ci.pub:": "binaryData: {ci.pub: eA==}\ndata:\n  ci.pub:"},
			want: []string{
				`verification-keys: ` + keysCM + `expected *.pub entries that are PEM public keys (cosign.pub: ECDSA ` +
					`P-256/P-384, Ed25519, RSA ≥ 2048); found lists "ci.pub" in both data and binaryData, which the API server ` +
					`refuses; keep one`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edited := string(valid)
			for old, new := range tt.edits {
				if n := strings.Count(edited, old); n != 1 {
					t.Fatalf("the edit's old text %q occurs %d times", old, n)
				}
				edited = strings.Replace(edited, old, new, 1)
			}
			stream, err := parseStream([]byte(edited))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range checkScenario(stream, false, nil, nil, tt.allowExternalKeys) {
				for _, f := range c.Findings {
					got = append(got, c.Name+": "+f.String())
				}
			}
			if !prefixesMatch(got, tt.want) || !strings.Contains(strings.Join(got, "\n"), tt.mentions) {
				t.Errorf("findings:\n  %s\nwant (prefixes):\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// prefixesMatch: one finding per want, in order, each starting with it.
func prefixesMatch(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			return false
		}
	}
	return true
}

// TestVerificationKeysSkipped: without spec.verification the keys check is skipped.
func TestVerificationKeysSkipped(t *testing.T) {
	data, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := parseStream(data)
	if err != nil {
		t.Fatal(err)
	}
	results := checkScenario(stream, false, nil, nil, false)
	i := slices.IndexFunc(results, func(c CheckResult) bool { return c.Name == keysCheck })
	if i < 0 {
		t.Fatalf("no %s check", keysCheck)
	}
	if c := results[i]; c.Status != StatusSkip || c.Reason != "the refresh config has no spec.verification" {
		t.Errorf("%s: %s %q, want skipped for no spec.verification", keysCheck, c.Status, c.Reason)
	}
}
