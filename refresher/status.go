package refresher

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tracebloc/image-refresh/refresher/config"
	"github.com/tracebloc/image-refresh/refresher/signature"
)

// State is an image's refresh state as its status annotation tells it.
type State string

const (
	// StateOK: the last change was written (or nothing had to change).
	StateOK State = "ok"
	// StateWaiting: a change (or the rollout of the last one) waits for the target's rollout
	// to settle; see Options and spec.waitLimit.
	StateWaiting State = "waiting"
	// StateFailed: the image failed this tick.
	StateFailed State = "failed"
	// StateSoaking: a new registry digest (Pending) waits out the image's soak.
	StateSoaking State = "soaking"
	// StateQuarantined: the rollout of a digest this refresher applied failed; the digest
	// (Quarantined) is never applied again.
	StateQuarantined State = "quarantined"
)

// maxStatusError bounds the error kept in a status annotation (bytes, cut on a rune).
const maxStatusError = 256

// Status is the value of an image's status annotation (config.StatusAnnotationPrefix + name)
// on its target, compact JSON of a bounded size. It changes only on transitions and while an
// image waits or fails (the counts move): a steady state writes nothing.
type Status struct {
	State State `json:"state"`
	// Since is when the image entered State (RFC 3339).
	Since string `json:"since"`
	// Digest is the digest of the last change written (what the rollout brings).
	Digest string `json:"digest,omitempty"`
	// Generation is the Deployment generation the last change's rollout was written as; while
	// the Deployment still has it and has not settled, that rollout is in flight.
	Generation int64 `json:"generation,omitempty"`
	// Waits counts consecutive ticks a change waited for the rollout to settle; Failures
	// consecutive failed ticks. An ok tick resets both.
	Waits    int `json:"waits,omitempty"`
	Failures int `json:"failures,omitempty"`
	// Error is why the image waits or failed, cut to maxStatusError bytes.
	Error string `json:"error,omitempty"`
	// Applied is when the last change was written (RFC 3339); its rollout has until
	// Applied + spec.rolloutTimeout to settle. Previous is the digest that change replaced,
	// what a set-env image is rolled back to.
	Applied  string `json:"applied,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Quarantined is a digest whose rollout failed: never applied again.
	Quarantined string `json:"quarantined,omitempty"`
	// Pending is a new registry digest soaking since PendingSince (RFC 3339), its first
	// sighting; a tag that moves again restarts the soak.
	Pending      string `json:"pending,omitempty"`
	PendingSince string `json:"pendingSince,omitempty"`
	// Refused is the signature gate's verdict against the last digest it refused: that digest
	// is not fetched again until the tag moves, the keys change or spec.verification.recheckAfter
	// passes.
	Refused Refusal `json:"refused,omitzero"`
}

// Refusal is a digest the signature gate refused and when.
type Refusal struct {
	Digest string `json:"digest"`
	// Reason is signature.ReasonMissing or signature.ReasonInvalid.
	Reason string `json:"reason"`
	// Keys is the signature.KeySetID of the keys the digest was judged with.
	Keys string `json:"keys"`
	// At is when the verdict was reached (RFC 3339).
	At string `json:"at"`
}

// valid reports whether a refusal read from an annotation can stand for a verdict. Anyone who
// may edit the Deployment can write it, but a forged one can only hold a digest back.
func (r Refusal) valid() bool {
	if r.Reason != signature.ReasonMissing && r.Reason != signature.ReasonInvalid {
		return false
	}
	_, err := time.Parse(time.RFC3339, r.At)
	return config.ValidDigest(r.Digest) && r.Keys != "" && err == nil
}

// parseStatus reads a status annotation; anything unreadable (or absent) is the zero Status,
// which a tick treats like ok without a rollout in flight.
func parseStatus(value string) Status {
	var s Status
	if value == "" || json.Unmarshal([]byte(value), &s) != nil {
		return Status{}
	}
	switch s.State {
	case StateOK, StateWaiting, StateFailed, StateSoaking, StateQuarantined:
	default:
		return Status{}
	}
	if s.Waits < 0 || s.Failures < 0 {
		return Status{}
	}
	if !s.Refused.valid() {
		s.Refused = Refusal{}
	}
	return s
}

// encode is the annotation value.
func (s Status) encode() string {
	data, err := json.Marshal(s)
	if err != nil {
		// A struct of strings and integers always encodes.
		return ""
	}
	return string(data)
}

// statusAfter is the status an image moves to from prev when this tick ends in state (reason
// for waiting and failed). since starts anew only when the state changes.
func statusAfter(prev Status, state State, reason string, now time.Time) Status {
	next := Status{State: state, Since: prev.Since, Digest: prev.Digest, Generation: prev.Generation,
		Applied: prev.Applied, Previous: prev.Previous, Quarantined: prev.Quarantined, Pending: prev.Pending, PendingSince: prev.PendingSince,
		Refused: prev.Refused}
	if prev.State != state || next.Since == "" {
		next.Since = now.UTC().Format(time.RFC3339)
	}
	switch state {
	case StateWaiting:
		next.Waits = prev.Waits + 1
	case StateFailed:
		next.Waits, next.Failures = prev.Waits, prev.Failures+1
	case StateOK:
		next.Generation = 0
	}
	next.Error = truncate(reason, maxStatusError)
	return next
}

// truncate cuts s to at most n bytes without splitting a rune, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + "…"
}
