package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
)

// The signature gate on the node: the release trusts one cosign key (ECDSA, generated and used
// offline by the real cosign 3); the images it starts with are signed before the first tick,
// so it records and fills; an unsigned ingestor is refused (failed, signature-missing, Event
// VerificationFailed, nothing but the status written, the ingestion keeps the previous
// digest); once signed, the remembered verdict holds until recheckAfter (1m) passes, then the
// next tick verifies again and applies it, and its ingestion Job runs on the node.
func TestNodeSignatureGate(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm3, nil)

	cosign, err := harness.NewCosign(
		tools.Cosign3,
		filepath.Join(t.TempDir(), "cosign3"),
		map[string]authn.Authenticator{w.Registry.Host: w.Registry.Pusher()},
	)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cosign.GenerateKeyPair(t.Context(), "release")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(img harness.Image, digest string) {
		t.Helper()
		ref := w.Registry.Repository(r.Repo(img)) + "@" + digest
		if err := cosign.SignOffline(t.Context(), key, ref); err != nil {
			t.Fatal(err)
		}
		if res, err := cosign.VerifyOffline(t.Context(), key, ref); err != nil || res.ExitCode != 0 {
			t.Fatalf("cosign verify %s after signing: %v\n%v", ref, err, res)
		}
		t.Logf("signed %s with %s", ref, key.Name)
	}
	for _, img := range allImages {
		sign(img, r.Digest[img])
	}

	installForTicks(t, w, r,
		"--set-file", `imageRefresh.verification.publicKeys.release\.pub=`+key.Public,
		"--set", "imageRefresh.verification.recheckAfter=1m")
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionRecord,
		podsMonitor: refresher.DecisionRecord,
		ingestor:    refresher.DecisionFill,
	})
	waitRollout(t, r)
	signed := r.Digest[ingestor]
	waitIngestion(t, r, signed)
	before := r.state()

	// An unsigned ingestor: refused, nothing but its status written.
	unsigned := r.push(ingestor)
	t.Logf("pushed an unsigned ingestor: %s", unsigned)
	k := tickNow(t, r)
	k.want(
		t,
		1,
		decisions{
			ingestor:    refresher.DecisionFailed,
			jobsManager: refresher.DecisionUnchanged,
			podsMonitor: refresher.DecisionUnchanged,
		},
	)
	if line := fmt.Sprint(k.lines[ingestor]); !strings.Contains(line, signature.ReasonMissing) {
		t.Errorf("the refusal's log line does not say %s: %s", signature.ReasonMissing, line)
	}
	refused := r.state()
	checkUnchanged(t, "the refused digest", before, refused, ingestor)
	if got := envOrEmpty(refused); got != signed {
		t.Errorf("after the refusal %s = %q, want the previous %s", digestEnv, got, signed)
	}
	st := statusOf(t, refused, ingestor)
	if st.State != refresher.StateFailed || st.Refused.Digest != unsigned ||
		st.Refused.Reason != signature.ReasonMissing ||
		st.Refused.Keys == "" {
		t.Errorf("after the refusal: status %+v, want failed, refused %s (%s)", st, unsigned, signature.ReasonMissing)
	}
	evs := events(t, r, ingestor)
	if len(evs) == 0 || !strings.HasPrefix(evs[len(evs)-1], refresher.ReasonVerificationFailed+":") ||
		!strings.Contains(evs[len(evs)-1], unsigned) {
		t.Errorf("the last ingestor Event is not a %s naming %s: %q", refresher.ReasonVerificationFailed, unsigned, evs)
	} else {
		t.Logf("Event %s", evs[len(evs)-1])
	}
	// The consumer still runs the previous digest: its pod's env, and the ingestion it launches.
	pod := waitRollout(t, r)
	if got, _ := harness.APIEnv(pod.Spec, digestEnv); got != signed {
		t.Errorf("pod %s runs with %s=%s after the refusal, want %s", pod.Name, digestEnv, got, signed)
	}

	// Signed now, but the verdict is remembered until recheckAfter passes.
	sign(ingestor, unsigned)
	at, err := time.Parse(time.RFC3339, st.Refused.At)
	if err != nil {
		t.Fatalf("refused.at %q: %v", st.Refused.At, err)
	}
	if time.Since(at) < 45*time.Second {
		held := r.state()
		tickNow(t, r).want(t, 1, decisions{ingestor: refresher.DecisionFailed})
		checkUnchanged(t, "a tick within recheckAfter", held, r.state(), ingestor)
		if kept := statusOf(t, r.state(), ingestor); kept.Refused != st.Refused {
			t.Errorf("within recheckAfter: refused %+v, want the remembered %+v", kept.Refused, st.Refused)
		}
	} else {
		t.Logf("the remembered verdict is not checked: %s since the refusal", time.Since(at).Round(time.Second))
	}
	wait := time.Until(at.Add(time.Minute + 2*time.Second))
	if wait > 90*time.Second {
		t.Fatalf("refused.at %s is in the future", st.Refused.At)
	}
	if wait > 0 {
		t.Logf("waiting %s for recheckAfter (refused at %s)", wait.Round(time.Second), st.Refused.At)
		select {
		case <-time.After(wait):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	tickNow(t, r).want(t, 0, decisions{
		ingestor:    refresher.DecisionUpdateEnv,
		jobsManager: refresher.DecisionUnchanged,
		podsMonitor: refresher.DecisionUnchanged,
	})
	applied := r.state()
	if got := envOrEmpty(applied); got != unsigned || applied.Annotation(ingestor) != unsigned {
		t.Errorf(
			"after the recheck: %s = %q, %s = %q, want both %s",
			digestEnv,
			got,
			ingestor.Annotation(),
			applied.Annotation(ingestor),
			unsigned,
		)
	}
	if st := statusOf(t, applied, ingestor); st.State == refresher.StateFailed || st.Refused.Digest == unsigned {
		t.Errorf("after the recheck: status %+v still refuses %s", st, unsigned)
	}
	waitRollout(t, r)
	waitIngestion(t, r, unsigned)
	t.Logf("ingestor Events: %q", reasons(events(t, r, ingestor)))
}
