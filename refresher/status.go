package refresher

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/signature"
)

// State is an image's refresh state as its status annotation tells it.
type State string

const (
	// StateOK: the last change was written (or nothing had to change).
	StateOK State = "ok"
	// StateWaiting: a change (or the rollout of the last one) waits for the target's rollout
	// to settle, at most spec.waitTimeout.
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
// on its target, compact JSON of a bounded size. It changes only on transitions: it records
// since when a state holds, never a count of ticks, so a steady state — a steady wait or
// failure included — writes nothing, however long it lasts.
type Status struct {
	State State `json:"state"`
	// Since is when the image entered State (RFC 3339).
	Since string `json:"since"`
	// Digest is the digest of the last change written (what the rollout brings).
	Digest string `json:"digest,omitempty"`
	// Generation is the Deployment generation the last change's rollout was written as; while
	// the Deployment still has it and has not settled, that rollout is in flight.
	Generation int64 `json:"generation,omitempty"`
	// WaitingSince is when the image began to wait for its target's rollout (RFC 3339); it stays
	// while the wait goes on past spec.waitTimeout (failed), and goes with the wait.
	WaitingSince string `json:"waitingSince,omitempty"`
	// Error is why the image waits or failed, as of the tick the state began (the log and the
	// Events carry each tick's own): one printable line (printable), cut to maxStatusError bytes.
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

// valid reports whether a refusal read from an annotation can stand for a verdict: one reached
// no later than limit. Anyone who may edit the Deployment can write it, but a forged one can
// only hold a digest back until recheckAfter.
func (r Refusal) valid(limit time.Time) bool {
	if r.Reason != signature.ReasonMissing && r.Reason != signature.ReasonInvalid {
		return false
	}
	at, err := time.Parse(time.RFC3339, r.At)
	return config.ValidDigest(r.Digest) && keySetID(r.Keys) && err == nil && !at.After(limit)
}

// keySetID reports whether s can be a signature.KeySetID: hex, at most 64 digits.
func keySetID(s string) bool {
	return s != "" && len(s) <= 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// clockSkew is how far past this tick's clock a time read from a status annotation may lie:
// another node's clock, or a hand edit. A later time is clamped to now.
const clockSkew = time.Minute

// parseStatus is readStatus without its corrections.
func parseStatus(value string, now time.Time) Status {
	s, _ := readStatus(value, now)
	return s
}

// readStatus reads a status annotation as input, not truth: anyone who may edit the Deployment
// can write it. Anything unreadable, oversized or of an unknown state is the zero Status (ok
// without a rollout in flight); a field that is not digest-shaped or not a time is dropped, a
// time later than now + clockSkew is clamped to now. corrections says what was changed, so the
// caller logs it and writes the corrected status once.
func readStatus(value string, now time.Time) (s Status, corrections []string) {
	if value == "" {
		return Status{}, nil
	}
	if len(value) > contract.StatusMaxBytes {
		return Status{}, []string{
			fmt.Sprintf("a status of %d bytes (more than %d) is ignored", len(value), contract.StatusMaxBytes),
		}
	}
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return Status{}, []string{"an unreadable status is ignored: " + err.Error()}
	}
	switch s.State {
	case StateOK, StateWaiting, StateFailed, StateSoaking, StateQuarantined:
	default:
		return Status{}, []string{fmt.Sprintf("a status of unknown state %q is ignored", s.State)}
	}
	for name, d := range map[string]*string{
		"digest":      &s.Digest,
		"previous":    &s.Previous,
		"quarantined": &s.Quarantined,
		"pending":     &s.Pending,
	} {
		if *d != "" && !config.ValidDigest(*d) {
			corrections = append(corrections, fmt.Sprintf("%s %q is not a sha256 digest: dropped", name, truncate(*d, 80)))
			*d = ""
		}
	}
	limit := now.Add(clockSkew)
	for name, ts := range map[string]*string{
		"since":        &s.Since,
		"applied":      &s.Applied,
		"pendingSince": &s.PendingSince,
		"waitingSince": &s.WaitingSince,
	} {
		if *ts == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, *ts)
		switch {
		case err != nil:
			corrections = append(corrections, fmt.Sprintf("%s %q is not an RFC 3339 time: dropped", name, truncate(*ts, 80)))
			*ts = ""
		case t.After(limit):
			corrections = append(
				corrections,
				fmt.Sprintf("%s %s is later than now (%s): clamped to now", name, *ts, now.UTC().Format(time.RFC3339)),
			)
			*ts = now.UTC().Format(time.RFC3339)
		}
	}
	if s.Pending == "" || s.PendingSince == "" {
		s.Pending, s.PendingSince = "", ""
	}
	if s.Generation < 0 {
		corrections = append(corrections, fmt.Sprintf("generation %d dropped", s.Generation))
		s.Generation = 0
	}
	if s.Refused != (Refusal{}) && !s.Refused.valid(limit) {
		corrections = append(corrections, "an invalid signature refusal is dropped")
		s.Refused = Refusal{}
	}
	slices.Sort(corrections) // the maps above range in random order
	return s, corrections
}

// encode is the annotation value: compact JSON of at most contract.StatusMaxBytes bytes (what the
// admission guard admits), whatever its strings hold. The error is made printable and, when the
// value would be larger, cut to the room left after JSON escaping (a `"` or `\` takes two bytes);
// no HTML escaping, so `<>&` take one.
func (s Status) encode() string {
	s.Error = printable(s.Error)
	data := marshalStatus(s)
	if len(data) <= contract.StatusMaxBytes {
		return data
	}
	errorless := s
	errorless.Error = ""
	base := marshalStatus(errorless)
	room := contract.StatusMaxBytes - len(base) - len(`,"error":""`)
	s.Error = cutEscaped(s.Error, room)
	if data = marshalStatus(s); len(data) <= contract.StatusMaxBytes {
		return data
	}
	// Without the error only a forged status read back is this large (a time with thousands of
	// fractional digits): its times are written as RFC 3339 in seconds.
	for _, ts := range []*string{
		&errorless.Since,
		&errorless.Applied,
		&errorless.PendingSince,
		&errorless.WaitingSince,
		&errorless.Refused.At,
	} {
		if t, err := time.Parse(time.RFC3339, *ts); err == nil {
			*ts = t.UTC().Format(time.RFC3339)
		}
	}
	return marshalStatus(errorless)
}

// marshalStatus is s as compact JSON without HTML escaping.
func marshalStatus(s Status) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "" // a struct of strings and integers always encodes
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// cutEscaped cuts printable text s so that its JSON string content is at most n bytes, marking
// a cut with "…"; "" when not even that fits.
func cutEscaped(s string, n int) string {
	size := func(r rune) int {
		if r == '"' || r == '\\' {
			return 2
		}
		return utf8.RuneLen(r)
	}
	total := 0
	for _, r := range s {
		total += size(r)
	}
	if total <= n {
		return s
	}
	room := n - len("…")
	if room < 0 {
		return ""
	}
	used := 0
	for i, r := range s {
		if used+size(r) > room {
			return s[:i] + "…"
		}
		used += size(r)
	}
	return s
}

// statusAfter is the status an image moves to from prev when this tick ends in state (reason
// for waiting and failed). A tick that ends in the state prev records is steady: prev itself,
// so nothing is written; since, the error and the wait's start change only with the state.
func statusAfter(prev Status, state State, reason string, now time.Time) Status {
	if prev.State == state && prev.Since != "" {
		return prev
	}
	next := Status{
		State:        state,
		Since:        now.UTC().Format(time.RFC3339),
		Digest:       prev.Digest,
		Generation:   prev.Generation,
		Applied:      prev.Applied,
		Previous:     prev.Previous,
		Quarantined:  prev.Quarantined,
		Pending:      prev.Pending,
		PendingSince: prev.PendingSince,
		Refused:      prev.Refused,
		Error:        truncate(printable(reason), maxStatusError),
	}
	if state == StateOK {
		next.Generation = 0
	}
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
