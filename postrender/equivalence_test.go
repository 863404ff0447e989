package postrender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/tracebloc/image-refresh/internal/testutil/golden"
)

// referenceRender is the parse-everything post-renderer the streaming Render must agree with:
// the whole stream goes through the YAML decoder in one piece (no splitting of our own), every
// document is kept as a parsed node, and the result is the kept documents plus the injected
// ones, as parsed nodes. It reads objects out of documents and lists the way Render does
// (documentObjects; TestListsFlattenAsHelmApplies holds that to Helm's own flattening).
func referenceRender(in []byte, opts Options) ([]*yaml.RNode, error) {
	if len(in) == 0 {
		return nil, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(in))
	var docs []*yaml.Node
	var objects []object
	for {
		doc := &yaml.Node{}
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, refuse(ReasonMalformedStream, "malformed YAML: %v", err)
		}
		if isEmptyDocument(doc) {
			continue
		}
		objs, err := documentObjects(doc)
		if err != nil {
			return nil, refuse(ReasonMalformedStream, "%v", err)
		}
		docs = append(docs, doc)
		for _, obj := range objs {
			obj.document = len(docs)
			objects = append(objects, obj)
		}
	}
	e, err := newEdit(objects, opts, func(o object, into any) error {
		raw, err := encodeDocument(docs[o.document-1])
		if err != nil {
			return err
		}
		return decodeObject(raw, o, into)
	})
	if err != nil {
		return nil, err
	}
	dropped := make([]bool, len(docs))
	for i, obj := range objects {
		dropped[obj.document-1] = dropped[obj.document-1] || e.drop[i]
	}
	var out []*yaml.RNode
	for i, doc := range docs {
		if !dropped[i] {
			out = append(out, yaml.NewRNode(doc))
		}
	}
	if len(e.inject) > 0 && in[len(in)-1] != '\n' && !sameDocuments(in, append(bytes.Clone(in), '\n')) {
		return nil, refuse(ReasonMalformedStream, "a final line break changes the last document")
	}
	injected, err := parseAll(e.inject)
	if err != nil {
		return nil, fmt.Errorf("parsing the injected documents: %w", err)
	}
	return append(out, injected...), nil
}

// parseAll decodes a whole stream at once, leaving out empty documents.
func parseAll(data []byte) ([]*yaml.RNode, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*yaml.RNode
	for {
		doc := &yaml.Node{}
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if !isEmptyDocument(doc) {
			out = append(out, yaml.NewRNode(doc))
		}
	}
}

// sameDocuments reports whether two streams parse to the same documents.
func sameDocuments(a, b []byte) bool {
	na, errA := parseAll(a)
	nb, errB := parseAll(b)
	if errA != nil || errB != nil {
		return false
	}
	sa, errA := encodeAll(na)
	sb, errB := encodeAll(nb)
	return errA == nil && errB == nil && sa == sb
}

// encodeAll encodes documents one by one, comments included, so two streams with the same
// documents compare equal whatever their layout.
func encodeAll(nodes []*yaml.RNode) (string, error) {
	var b strings.Builder
	for _, n := range nodes {
		s, err := n.String()
		if err != nil {
			return "", fmt.Errorf("encoding a document: %w", err)
		}
		b.WriteString("---\n" + s)
	}
	return b.String(), nil
}

// canonical is encodeAll for tests.
func canonical(t testing.TB, nodes []*yaml.RNode) string {
	t.Helper()
	s, err := encodeAll(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertEquivalent checks Render against referenceRender on one input.
func assertEquivalent(t testing.TB, in []byte, opts Options) {
	t.Helper()
	got, gotErr := Render(in, opts)
	want, wantErr := referenceRender(in, opts)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("streaming error %v, reference error %v\ninput:\n%q", gotErr, wantErr, in)
	}
	if gotErr != nil {
		if got != nil {
			t.Fatalf("output with an error")
		}
		if g, w := reasonsOf(gotErr), reasonsOf(wantErr); g != w {
			t.Fatalf("streaming refused for %s, reference for %s\nstreaming: %v\nreference: %v\ninput:\n%q", g, w, gotErr,
				wantErr, in)
		}
		return
	}
	if len(in) > 0 && len(got) == 0 {
		t.Fatalf("empty output for non-empty input %q", in)
	}
	if usesCRLF(in) && bytes.Count(got, []byte("\n")) != bytes.Count(got, []byte("\r\n")) {
		t.Fatalf("input breaks every line with CRLF, output mixes in LF:\n%q\ninput:\n%q", got, in)
	}
	if !bytes.Contains(in, []byte("\r")) && bytes.Contains(got, []byte("\r")) {
		t.Fatalf("input has no CR, output has:\n%q\ninput:\n%q", got, in)
	}
	gotNodes, err := parseAll(got)
	if err != nil {
		t.Fatalf("streaming output does not parse: %v\n%s", err, got)
	}
	if g, w := canonical(t, gotNodes), canonical(t, want); g != w {
		t.Fatalf("streaming output differs from the reference:\n%s\ninput:\n%q", golden.LineDiff(w, g), in)
	}
}

// usesCRLF reports whether every line of in that ends ends with CRLF.
func usesCRLF(in []byte) bool {
	lines := bytes.SplitAfter(in, []byte("\n"))
	for _, line := range lines[:len(lines)-1] {
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			return false
		}
	}
	return len(lines) > 1
}

func reasonsOf(err error) string {
	var rs []string
	for _, r := range Refusals(err) {
		rs = append(rs, string(r.Reason))
	}
	return strings.Join(rs, ",")
}

// TestStreamingMatchesReference compares the streaming Render with the parse-everything
// reference on generated Helm 3 and Helm 4 style streams.
func TestStreamingMatchesReference(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		in, opts := generateRelease(r)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			assertEquivalent(t, in, opts)
			// Its own output, whatever happened, must be handled the same way too.
			if out, err := Render(in, opts); err == nil {
				assertEquivalent(t, out, opts)
			}
		})
	}
}

// FuzzRender feeds arbitrary streams to Render and the reference. Seeds: generated releases,
// the golden inputs and hand-picked corner cases.
func FuzzRender(f *testing.F) {
	for seed := range uint64(20) {
		in, _ := generateRelease(rand.New(rand.NewPCG(seed, 2)))
		f.Add(in)
	}
	goldens, _ := filepath.Glob(filepath.Join(goldenDir, "*", "input.yaml"))
	for _, path := range goldens {
		if data, err := os.ReadFile(path); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"", "---", "---\n", "a: 1\n---", "--- |\n  x\n", "a: |\n  ---\n---\nb: 1\n", "a: 1\r---\rb: 2\r",
		"%YAML 1.1\n---\na: 1\n", "a: 1\n...\n", "- x\n", "a: 'x\n---\ny'\n", "\ufeffa: 1\n", "a: |+\n  x",
		floatingConfig + webDeployment(floatingContainer),
		asList("v1", "List", floatingConfig, webDeployment(floatingContainer)),
		floatingConfig + asList("apps/v1", "DeploymentList", strings.Replace(webDeployment(floatingContainer),
			"kind: Deployment\n", "", 1)),
		"kind: List\nitems: [1, {kind: ConfigMap}, [a]]\n", "--- &x\nkind: List\nitems: [*x, *x]\n",
		"kind: ConfigMap\nitems: null\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		assertEquivalent(t, in, Options{})
	})
}

// listDocument renders documents (bodies without markers) as the items of one list document.
func listDocument(apiVersion, kind string, bodies ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n  name: list\nitems:\n", apiVersion, kind)
	for _, body := range bodies {
		for i, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
			if i == 0 {
				b.WriteString("- " + line + "\n")
			} else {
				b.WriteString("  " + line + "\n")
			}
		}
	}
	return b.String()
}

// generateRelease builds a random release stream around a refresh config, in the shapes Helm 3
// and Helm 4 produce and some they do not: comments, "# Source:" lines, Helm 4 filename
// annotations, hooks, Lists (holding the config, the target or other objects), CRLF, empty and
// comment-only documents, "---" inside literals, markers with comments, a missing final
// newline, and targets and configs that are sometimes refused.
func generateRelease(r *rand.Rand) ([]byte, Options) {
	helm4 := r.IntN(2) == 0
	var docs []string
	add := func(file, body string) {
		if helm4 {
			body = strings.Replace(body, "metadata:\n",
				"metadata:\n  annotations:\n    postrenderer.helm.sh/postrender-filename: '"+file+"'\n", 1)
		} else {
			body = "# Source: " + file + "\n" + body
		}
		docs = append(docs, body)
	}
	restartDigest, envDigest := "", ""
	if r.IntN(4) == 0 {
		restartDigest = pinnedDigest
	}
	if r.IntN(4) == 0 {
		envDigest = pinnedDigest
	}
	var opts Options
	switch r.IntN(4) {
	case 0: // no config: pass-through
	case 1:
		cfg, err := config.Parse([]byte(refreshBody(restartDigest, envDigest)))
		if err != nil {
			panic(err)
		}
		opts.Config = cfg
	default:
		cm := strings.SplitN(refreshConfigMap(refreshBody(restartDigest, envDigest)), "\n", 3)[2]
		if r.IntN(8) == 0 {
			// A hook is refused as the config.
			cm = strings.Replace(cm, "  labels:\n", "  annotations:\n    helm.sh/hook: post-install\n  labels:\n", 1)
		}
		switch r.IntN(4) {
		case 0:
			cm = listDocument("v1", "List", cm)
		case 1:
			cm = listDocument("v1", "ConfigMapList", strings.TrimPrefix(cm, "apiVersion: v1\nkind: ConfigMap\n"))
		}
		add("app/templates/refresh.yaml", cm)
	}
	for i := range r.IntN(12) {
		switch r.IntN(7) {
		case 6:
			// A list item is never the post-renderer's own object, whatever its labels: under an
			// injected name it is refused.
			account := fmt.Sprintf("listed-%d", i)
			if r.IntN(4) == 0 {
				account = "app-refresh"
			}
			add("app/templates/list.yaml", listDocument("v1", "List",
				fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: listed-%d\n", i),
				fmt.Sprintf("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: %s\n  labels: "+
					"{app.kubernetes.io/managed-by: %s}\n", account, ManagedByValue)))
		case 0:
			add("app/templates/scripts.yaml", fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scripts-%d\n"+
				"data:\n  run.sh: |\n    ---\n    --- not a marker ---\n    echo %d\n  keep: |+\n    kept\n\n", i, i))
		case 1:
			add("app/templates/hook.yaml", fmt.Sprintf("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate-%d\n  "+
				"annotations:\n    \"helm.sh/hook\": pre-install\nspec: {template: {spec: {restartPolicy: Never, containers: "+
				"[{name: m, image: x}]}}}\n", i))
		case 2:
			add("app/templates/svc.yaml", fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%d # trailing "+
				"comment\nspec:\n  ports: [{port: 80}]\n", i))
		case 3:
			add("app/templates/other.yaml", fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: other-%d\n"+
				"spec:\n  template:\n    spec:\n      containers:\n      - name: api\n        image: example.com/other:1\n", i))
		case 4:
			docs = append(docs, "# only a comment\n", "")
		case 5:
			add("app/templates/quoted.yaml", fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s-%d\n"+
				"stringData:\n  a: \"line one\n    --- still the same string\"\n", i))
		}
	}
	container := floatingContainer
	switch r.IntN(6) {
	case 0:
		container = "        image: example.com/web:prod\n"
	case 1:
		container = floatingContainer + "        env:\n        - name: WORKER_DIGEST\n          value: x\n"
	}
	if r.IntN(8) != 0 {
		pos := r.IntN(len(docs) + 1)
		web := strings.SplitN(webDeployment(container), "\n", 3)[2]
		switch r.IntN(6) {
		case 0:
			web = listDocument("v1", "List", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n", web)
		case 1:
			web = listDocument("apps/v1", "DeploymentList", strings.TrimPrefix(web, "apiVersion: apps/v1\nkind: Deployment\n"))
		}
		docs = append(docs[:pos], append([]string{""}, docs[pos:]...)...)
		if helm4 {
			docs[pos] = strings.Replace(web, "metadata:\n",
				"metadata:\n  annotations:\n    postrenderer.helm.sh/postrender-filename: 'app/templates/web.yaml'\n", 1)
		} else {
			docs[pos] = "# Source: app/templates/web.yaml\n" + web
		}
	}
	var b strings.Builder
	for i, d := range docs {
		switch {
		case i == 0 && r.IntN(2) == 0:
			// A bare first document, as Helm 4 writes it.
		case r.IntN(5) == 0:
			b.WriteString("--- # next document\n")
		default:
			b.WriteString("---\n")
		}
		b.WriteString(d)
	}
	s := b.String()
	if r.IntN(4) == 0 {
		s = strings.ReplaceAll(s, "\n", "\r\n")
	}
	if r.IntN(5) == 0 {
		s = strings.TrimRight(s, "\r\n")
	}
	return []byte(s), opts
}
