package postrender

import (
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
)

const keysDir = "../testdata/postrender/keys"

// verifiedConfig is floatingConfig with spec.verification naming ConfigMap app-keys.
var verifiedConfig = refreshConfigMap(verifiedBody(""))

func verifiedBody(envDigest string) string {
	return strings.Replace(refreshBody("", envDigest), "spec:\n", "spec:\n  verification: {keysConfigMap: app-keys}\n", 1)
}

// pem reads a public key of testdata/postrender/keys.
func pem(t *testing.T, name string) string {
	t.Helper()
	return string(readFile(t, filepath.Join(keysDir, name)))
}

// dataEntry renders one data entry of a ConfigMap holding a PEM file as a block scalar.
func dataEntry(key, pemText string) string {
	var b strings.Builder
	b.WriteString("  " + key + ": |\n")
	for line := range strings.Lines(pemText) {
		b.WriteString("    " + line)
	}
	return b.String()
}

// keysConfigMap renders ConfigMap app-keys with the given body (data:, binaryData: sections).
func keysConfigMap(body string) string {
	return "---\n# Source: app/templates/keys.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-keys\n" + body
}

func TestKeysRefusals(t *testing.T) {
	good, weak, p224 := pem(t, "ecdsa-p256.pub"), pem(t, "rsa-1024.pub"), pem(t, "ecdsa-p224.pub")
	release := verifiedConfig + webDeployment(floatingContainer)
	for _, tc := range []struct {
		name   string
		in     string
		opts   Options
		reason Reason
		want   []string
	}{{
		name:   "keys ConfigMap not rendered",
		in:     release,
		reason: ReasonKeysMissing,
		want: []string{`refresh config "app-refresh" verifies signatures with the keys of ConfigMap "app-keys" ` +
			`(spec.verification.keysConfigMap)`,
			"which the release does not render in the release namespace (it renders ConfigMap app-refresh)",
			"render that ConfigMap in the chart",
			"pass --allow-external-keys (helm: --post-renderer-args --allow-external-keys)"},
	}, {
		name: "keys ConfigMap in another namespace than the config's",
		in: configIn("prod", "spec:\n", "spec:\n  verification: {keysConfigMap: app-keys}\n") +
			webDeployment(floatingContainer) + strings.Replace(keysConfigMap("data:\n"+dataEntry("a.pub", good)),
			"  name: app-keys\n", "  name: app-keys\n  namespace: staging\n", 1),
		reason: ReasonKeysMissing,
		want:   []string{"which the release does not render in namespace prod", "ConfigMap staging/app-keys"},
	}, {
		name: "keys ConfigMap is a Helm hook",
		in: release + strings.Replace(keysConfigMap("data:\n"+dataEntry("a.pub", good)), "  name: app-keys\n",
			"  name: app-keys\n  annotations: {helm.sh/hook: pre-install}\n", 1),
		reason: ReasonKeysMissing,
		want: []string{"ConfigMap app-keys (document 3, app/templates/keys.yaml) is a Helm hook (helm.sh/hook: " +
			"pre-install), not a resource of the release"},
	}, {
		name: "a Secret of that name is not the keys ConfigMap",
		in: release + strings.Replace(keysConfigMap("stringData:\n"+dataEntry("a.pub", good)), "kind: ConfigMap",
			"kind: Secret", 1),
		reason: ReasonKeysMissing,
		want:   []string{`ConfigMap "app-keys"`},
	}, {
		name:   "RSA key below 2048 bits",
		in:     release + keysConfigMap("data:\n"+dataEntry("release.pub", good)+dataEntry("weak.pub", weak)),
		reason: ReasonKeysInvalid,
		want: []string{`ConfigMap app-keys (document 3, app/templates/keys.yaml) holds the keys of refresh config ` +
			`"app-refresh" (spec.verification.keysConfigMap), but`,
			"weak.pub", "PKIX PUBLIC KEY", "fix or remove it"},
	}, {
		name: "every bad key is named",
		in: release + keysConfigMap("data:\n"+dataEntry("weak.pub", weak)+dataEntry("p224.pub",
			p224)+"  junk.pub: not a key\n"),
		reason: ReasonKeysInvalid,
		want:   []string{"weak.pub", "p224.pub", "junk.pub"},
	}, {
		name:   "a rendered keys ConfigMap is checked with --allow-external-keys too",
		in:     release + keysConfigMap("data:\n"+dataEntry("weak.pub", weak)),
		opts:   Options{AllowExternalKeys: true},
		reason: ReasonKeysInvalid,
		want:   []string{"weak.pub"},
	}, {
		name:   "no .pub entry",
		in:     release + keysConfigMap("data:\n"+dataEntry("release.pem", good)),
		reason: ReasonKeysInvalid,
		want:   []string{"ConfigMap app-keys (document 3, app/templates/keys.yaml) holds the keys"},
	}, {
		name: "a bad key in binaryData",
		in: release + keysConfigMap("data:\n"+dataEntry("release.pub",
			good)+"binaryData:\n  weak.pub: "+base64.StdEncoding.EncodeToString([]byte(weak))+"\n"),
		reason: ReasonKeysInvalid,
		want:   []string{"weak.pub"},
	}, {
		name: "one key in data and binaryData",
		in: release + keysConfigMap("data:\n"+dataEntry("release.pub",
			good)+"binaryData:\n  release.pub: "+base64.StdEncoding.EncodeToString([]byte(good))+"\n"),
		reason: ReasonKeysInvalid,
		want:   []string{`lists "release.pub" in both data and binaryData, which the API server refuses`},
	}, {
		name:   "duplicate key: the last, a bad one, wins as on the API server",
		in:     release + keysConfigMap("data:\n"+dataEntry("release.pub", good)+dataEntry("release.pub", weak)),
		reason: ReasonKeysInvalid,
		want:   []string{"release.pub"},
	}, {
		name: "a merge key carries a bad key",
		in: release + keysConfigMap("x-keys: &keys\n"+dataEntry("weak.pub",
			weak)+"data:\n  <<: *keys\n"+dataEntry("release.pub", good)),
		reason: ReasonKeysInvalid,
		want:   []string{"weak.pub"},
	}, {
		name:   "a keys ConfigMap in a List is checked",
		in:     release + asList("v1", "List", keysConfigMap("data:\n"+dataEntry("weak.pub", weak))),
		reason: ReasonKeysInvalid,
		want:   []string{"ConfigMap app-keys (document 3 at items[0], app/templates/list.yaml)", "weak.pub"},
	}, {
		name:   "keys ConfigMap missing with --config",
		in:     webDeployment(floatingContainer),
		opts:   Options{Config: mustParse(t, verifiedBody(""))},
		reason: ReasonKeysMissing,
		want:   []string{`ConfigMap "app-keys"`, "it renders no ConfigMap"},
	}} {
		t.Run(tc.name, func(t *testing.T) { assertRefused(t, tc.in, tc.opts, tc.reason, tc.want) })
	}
}

// keysMount is the injected mount of the keys ConfigMap app-keys.
const keysMount = "            - name: verification-keys\n              mountPath: " +
	"/etc/image-refresh-keys\n              readOnly: true\n"

func TestKeysAccepted(t *testing.T) {
	good, ed := pem(t, "ecdsa-p256.pub"), pem(t, "ed25519.pub")
	release := verifiedConfig + webDeployment(floatingContainer)
	for _, tc := range []struct {
		name string
		in   string
		opts Options
		// mount says whether the keys ConfigMap is mounted: false when nothing is injected.
		mount bool
	}{
		{name: "keys in data and binaryData, other entries ignored", mount: true,
			in: release + keysConfigMap("data:\n  README: not a key\n"+dataEntry("release.pub",
				good)+"binaryData:\n  ci.pub: "+base64.StdEncoding.EncodeToString([]byte(ed))+"\n")},
		{name: "duplicate key: the last, a good one, wins", mount: true,
			in: release + keysConfigMap("data:\n  release.pub: junk\n"+dataEntry("release.pub", good))},
		{name: "keys ConfigMap declared external", mount: true, in: release, opts: Options{AllowExternalKeys: true}},
		{name: "keys ConfigMap without a namespace is in the release's", mount: true,
			in: configIn("prod", "spec:\n", "spec:\n  verification: {keysConfigMap: app-keys}\n") +
				webDeployment(floatingContainer) + keysConfigMap("data:\n"+dataEntry("a.pub", good))},
		{name: "keys ConfigMap as a kind-less item of a ConfigMapList", mount: true,
			in: release + asList("v1", "ConfigMapList", strings.Replace(keysConfigMap("data:\n"+dataEntry("a.pub", good)),
				"apiVersion: v1\nkind: ConfigMap\n", "", 1))},
		{name: "every image pinned: nothing injected, no keys needed",
			in: refreshConfigMap(strings.Replace(refreshBody(pinnedDigest, pinnedDigest), "spec:\n",
				"spec:\n  verification: {keysConfigMap: app-keys}\n", 1)) + webDeployment(floatingContainer)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render([]byte(tc.in), tc.opts)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got := strings.Contains(string(out), keysMount) && strings.Contains(string(out),
				"          - name: verification-keys\n            configMap:\n              name: app-keys\n"); got != tc.mount {
				t.Errorf("keys ConfigMap mounted = %v, want %v:\n%s", got, tc.mount, out)
			}
		})
	}
}

// TestNoVerificationNoKeysMount: without spec.verification nothing is mounted at the keys path.
func TestNoVerificationNoKeysMount(t *testing.T) {
	out, err := Render([]byte(floatingConfig+webDeployment(floatingContainer)), Options{AllowExternalKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), config.KeysMountPath) || strings.Contains(string(out), keysVolume) {
		t.Errorf("keys mounted without spec.verification:\n%s", out)
	}
}
