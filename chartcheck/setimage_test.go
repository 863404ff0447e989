package chartcheck

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/postrender"
)

// setImageEdits turn the valid stream's jobs-manager and pods-monitor into set-image images run
// with imagePullPolicy IfNotPresent, as charts/client renders them with images.*.action=set-image.
var setImageEdits = map[string]string{
	"        action: rollout-restart\n" +
		"        target: {kind: Deployment, name: stg-jobs-manager, container: api}\n": "        action: set-image\n" +
		"        target: {kind: Deployment, name: stg-jobs-manager, container: api}\n",
	"        action: rollout-restart\n        target: {kind: Deployment, name: stg-jobs-manager, " +
		"container: pods-monitor}\n": "        action: set-image\n" +
		"        target: {kind: Deployment, name: stg-jobs-manager, container: pods-monitor}\n",
	"        image: \"docker.io/tracebloc/jobs-manager:prod\"\n        imagePullPolicy: Always\n": "        image: " +
		"\"docker.io/tracebloc/jobs-manager:prod\"\n        imagePullPolicy: IfNotPresent\n",
	"        image: \"docker.io/tracebloc/pods-monitor:prod\"\n        imagePullPolicy: Always\n": "        image: " +
		"\"docker.io/tracebloc/pods-monitor:prod\"\n        imagePullPolicy: IfNotPresent\n",
}

// setImageStream is the valid stream with setImageEdits and extra edits, post-rendered (its guard
// is the set-image config's); with the post-renderer's refusal when it refuses.
func setImageStream(t *testing.T, extra map[string]string) ([]byte, error) {
	t.Helper()
	data, err := os.ReadFile(validStream)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for old, new := range setImageEdits {
		if n := strings.Count(s, old); n != 1 {
			t.Fatalf("the edit's old text %q occurs %d times in %s", old, n, validStream)
		}
		s = strings.Replace(s, old, new, 1)
	}
	for old, new := range extra {
		s = strings.Replace(s, old, new, 1)
	}
	out, err := postrender.Render([]byte(s), postrender.Options{})
	if err != nil {
		return []byte(s), err
	}
	return out, nil
}

// TestSetImage: a set-image container may run the polled repository by tag or digest with any
// pull policy (IfNotPresent included); another repository is a finding of set-image, and two
// set-image images on one container one of targets (and the post-renderer's refusal).
func TestSetImage(t *testing.T) {
	const (
		deployment = `Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml)`
		digest     = "sha256:8a71aa1763956c8e65f60ee4bc7d89af97a532ce87d335817330395340cd40be"
		api        = "        image: \"docker.io/tracebloc/jobs-manager:prod\"\n        imagePullPolicy: IfNotPresent\n"
	)
	stream, err := setImageStream(t, nil)
	if err != nil {
		t.Fatalf("the post-renderer refuses the set-image stream: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edits map[string]string
		want  []string
	}{
		{name: "by tag, IfNotPresent"},
		{
			name: "by digest",
			edits: map[string]string{
				api: "        image: \"docker.io/tracebloc/jobs-manager@" + digest + "\"\n        imagePullPolicy: IfNotPresent\n",
			},
		},
		{
			name:  "by another tag, the repository spelled otherwise, no pull policy",
			edits: map[string]string{api: "        image: \"tracebloc/jobs-manager:1.2\"\n"},
		},
		{
			name: "another repository",
			edits: map[string]string{
				api: "        image: \"ghcr.io/tracebloc/jobs-manager@" + digest + "\"\n        imagePullPolicy: IfNotPresent\n",
			},
			want: []string{
				`set-image: ` + deployment + `: image jobs-manager: expected container "api" to run the repository ` +
					`docker.io/tracebloc/jobs-manager, by tag or digest, which set-image pins to ` +
					`docker.io/tracebloc/jobs-manager@<digest>; found container "api" runs ghcr.io/tracebloc/jobs-manager@` + digest +
					`, not the repository index.docker.io/tracebloc/jobs-manager: set-image would replace one image with another; ` +
					`run index.docker.io/tracebloc/jobs-manager there, or set the image's repository in the config to what the ` +
					`container runs`,
			},
		},
		{
			name:  "not an image reference",
			edits: map[string]string{api: "        image: \"Not An Image\"\n        imagePullPolicy: IfNotPresent\n"},
			want: []string{
				`set-image: ` + deployment + `: image jobs-manager: expected container "api" to run the repository ` +
					`docker.io/tracebloc/jobs-manager, by tag or digest, which set-image pins to ` +
					`docker.io/tracebloc/jobs-manager@<digest>; found container "api" runs "Not An Image", which is not an image ` +
					`reference (could not parse reference: Not An Image): run index.docker.io/tracebloc/jobs-manager there while ` +
					`jobs-manager floats`,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, results := editStream(t, stream, tc.edits, "")
			wantCheck(t, got, results, setImageCheck, tc.want)
			if r := resultOf(results, rolloutRestartCheck); r.Status != StatusPass {
				t.Errorf("check %s is %q, want pass: no image is rollout-restart", rolloutRestartCheck, r.Status)
			}
		})
	}

	t.Run("two set-image images on one container", func(t *testing.T) {
		const annotation = "        annotation: tracebloc.io/last-refreshed-ingestor-digest\n"
		data, err := setImageStream(t, map[string]string{annotation: annotation +
			"      - {name: jobs-manager-b, repository: docker.io/tracebloc/jobs-manager, tag: canary, action: set-image, " +
			"target: {name: stg-jobs-manager, container: api}, annotation: tracebloc.io/b}\n"})
		if err == nil {
			t.Fatal("the post-renderer accepts two set-image images on one container")
		}
		s, perr := parseStream(data)
		if perr != nil {
			t.Fatal(perr)
		}
		var got []string
		for _, c := range checkScenario(s, true, err, nil, false) {
			for _, f := range c.Findings {
				got = append(got, c.Name+": "+f.String())
			}
		}
		const shared = `spec.images[3] (jobs-manager-b): spec.images[0] (jobs-manager) already sets the image of container ` +
			`"api" of Deployment tracebloc/stg-jobs-manager`
		for _, want := range []string{
			"post-render: stream: expected the post-renderer to accept the release; found refused (image-shared): refresh " +
				"config \"stg-image-refresh\": " + shared,
			`targets: ConfigMap "stg-image-refresh" (document 2, client/templates/image-refresh-config.yaml): image ` +
				`jobs-manager-b: expected one set-image image per container; found ` + shared,
		} {
			if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, want) }) {
				t.Errorf("findings:\n  %s\nwant one starting %s", strings.Join(got, "\n  "), want)
			}
		}
	})
}

// wantCheck requires the findings of an edited stream to be want, and check to have failed
// exactly when want is not empty.
func wantCheck(t *testing.T, got []string, results []CheckResult, check string, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	status := StatusPass
	if len(want) > 0 {
		status = StatusFail
	}
	if r := resultOf(results, check); r.Status != status {
		t.Errorf("check %s is %q, want %q", check, r.Status, status)
	}
}
