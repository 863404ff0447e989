package refresher

import (
	"fmt"
	"time"

	"github.com/tracebloc/image-refresh/internal/config"
)

// DecisionSoaking means a new registry digest has not yet been seen unchanged for the image's soak
// (spec.images[].soak); nothing about the image changes but its status annotation, which keeps
// the pending digest and when it was first seen. A tag that moves again restarts the soak.
const DecisionSoaking Decision = "soaking"

// ReasonSoaking is the Event a digest's first sighting makes when it must soak.
const ReasonSoaking = "Soaking"

// appliesDigest reports whether a decision puts a new registry digest into the workload: the
// changes a soak delays and the platform and signature gates check. record and adopt change no
// pods, drift restores the recorded digest.
func appliesDigest(d Decision) bool {
	return d == DecisionRestart || d == DecisionUpdateEnv || d == DecisionFill || d == DecisionUpdateImage
}

// soakOutcome delays a change that applies a new registry digest until the digest has been
// seen unchanged for soak: ok is false when the change may go ahead.
func soakOutcome(img config.Image, digest string, change Change, prev Status, now time.Time) (imageOutcome, bool) {
	soak := img.Soak.D()
	if soak <= 0 || !appliesDigest(change.Decision) {
		return imageOutcome{}, false
	}
	first := now.UTC()
	if prev.Pending == digest {
		if t, err := time.Parse(time.RFC3339, prev.PendingSince); err == nil {
			first = t
		}
	}
	ready := first.Add(soak)
	if !now.Before(ready) {
		return imageOutcome{}, false
	}
	next := statusAfter(prev, StateSoaking, "", now)
	next.Pending, next.PendingSince = digest, first.Format(time.RFC3339)
	reason := fmt.Sprintf(
		"%s first seen at %s, soaking %s: %s applies at %s if the tag does not move",
		digest,
		next.PendingSince,
		soak,
		change.Decision,
		ready.Format(time.RFC3339),
	)
	return imageOutcome{
		Change:   Change{Decision: DecisionSoaking},
		intended: change.Decision,
		note:     reason,
		status:   &next,
	}, true
}
