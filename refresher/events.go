package refresher

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// Event reasons, one per outcome a person should see on the target (kubectl describe, kubectl
// events). Unchanged and pinned images make none: a steady state writes nothing.
const (
	ReasonRecorded   = "Recorded"   // record, adopt
	ReasonRestarted  = "Restarted"  // restart
	ReasonEnvUpdated = "EnvUpdated" // fill, update-env
	// ReasonImageUpdated: update-image, the container's image set to repository@digest.
	ReasonImageUpdated = "ImageUpdated"
	ReasonHealed       = "Healed" // drift repaired, or a waiting/failed image back to ok
	ReasonWaiting      = "Waiting"
	ReasonFailed       = "Failed"
	// ReasonVerificationFailed: the signature gate refused the digest (unsigned or invalid); its
	// note names the digest and the keys tried. A remembered refusal makes no new Event.
	ReasonVerificationFailed = "VerificationFailed"
)

const (
	// EventController is the reportingController of the refresher's Events.
	EventController = "image-refresh.io/refresher"
	eventAction     = "Refresh"
	// eventTimeout bounds each Event's creation, so an API server that hangs cannot hold the
	// tick much longer than the requests that already failed.
	eventTimeout = 10 * time.Second
	maxNoteBytes = 1024 // the API server's limit for note
)

// eventFor is the Event an image's outcome makes: reason, type and note; reason "" for none.
func eventFor(rep *ImageReport, prev Status, waitTimeout time.Duration) (reason, typ, note string) {
	from, to := dash(rep.Previous), dash(rep.Digest)
	subject := fmt.Sprintf("image %s (%s)", rep.Name, rep.Reference)
	switch rep.Decision {
	case DecisionRecord:
		return ReasonRecorded, corev1.EventTypeNormal, fmt.Sprintf(
			"%s: recorded %s (first observation, no restart)",
			subject,
			to,
		)
	case DecisionAdopt:
		return ReasonRecorded, corev1.EventTypeNormal, fmt.Sprintf(
			"%s: recorded %s, the digest env %s already holds (registry: %s)",
			subject,
			dash(rep.Env),
			dash(rep.Env),
			to,
		)
	case DecisionRestart:
		return ReasonRestarted, corev1.EventTypeNormal, fmt.Sprintf("%s: %s → %s, rollout restarted", subject, from, to)
	case DecisionFill, DecisionUpdateEnv:
		return ReasonEnvUpdated, corev1.EventTypeNormal, fmt.Sprintf(
			"%s: %s → %s, env %s set",
			subject,
			from,
			to,
			rep.EnvVar,
		)
	case DecisionUpdateImage:
		return ReasonImageUpdated, corev1.EventTypeNormal, fmt.Sprintf(
			"%s: %s → %s, image of container %s set to %s",
			subject,
			from,
			to,
			rep.Container,
			rep.Repository+"@"+to,
		)
	case DecisionDrift:
		if rep.Action == config.ActionSetImage {
			return ReasonHealed, corev1.EventTypeNormal, fmt.Sprintf(
				"%s: the image of container %s was not pinned to %s (%s), set back to %s",
				subject,
				rep.Container,
				to,
				dash(rep.ImageDigest),
				rep.Repository+"@"+to,
			)
		}
		return ReasonHealed, corev1.EventTypeNormal, fmt.Sprintf(
			"%s: env %s drifted to %s, set back to %s",
			subject,
			rep.EnvVar,
			dash(rep.Env),
			to,
		)
	case DecisionWaiting:
		return ReasonWaiting, corev1.EventTypeWarning, fmt.Sprintf(
			"%s: %s → %s waits (since %s, at most spec.waitTimeout %s): %s",
			subject,
			from,
			to,
			rep.Status.WaitingSince,
			waitTimeout,
			rep.Reason,
		)
	case DecisionFailed:
		if rep.Signature.refusal.Digest != "" {
			if rep.Signature.Remembered {
				return "", "", ""
			}
			return ReasonVerificationFailed, corev1.EventTypeWarning, fmt.Sprintf(
				"%s: %s → %s refused, %s not done: %v",
				subject,
				from,
				to,
				dash(string(rep.Intended)),
				rep.Err,
			)
		}
		intended := ""
		if rep.Intended != "" {
			intended = fmt.Sprintf(" (%s not done)", rep.Intended)
		}
		return ReasonFailed, corev1.EventTypeWarning, fmt.Sprintf(
			"%s: %s → %s failed%s: %v",
			subject,
			from,
			to,
			intended,
			rep.Err,
		)
	case DecisionSoaking:
		if prev.Pending != rep.Digest { // the first sighting, or the tag moved during the soak
			return ReasonSoaking, corev1.EventTypeNormal, fmt.Sprintf("%s: %s", subject, rep.Reason)
		}
	case DecisionRolledBack:
		return ReasonRolledBack, corev1.EventTypeWarning, fmt.Sprintf("%s: %s", subject, rep.Reason)
	case DecisionQuarantined:
		if prev.State != StateQuarantined || prev.Quarantined != rep.Status.Quarantined {
			return ReasonQuarantined, corev1.EventTypeWarning, fmt.Sprintf("%s: %s", subject, rep.Reason)
		}
	case DecisionUnchanged:
		if prev.State == StateWaiting || prev.State == StateFailed {
			return ReasonHealed, corev1.EventTypeNormal, fmt.Sprintf(
				"%s: %s since %s, now current at %s",
				subject,
				prev.State,
				prev.Since,
				to,
			)
		}
	}
	return "", "", ""
}

// emitEvents makes one Event per image outcome on the target. A waiting or failing outcome
// that repeats the recorded state (the status did not move) is the same Event again: its
// series (count, lastObservedTime) grows instead of a new Event per tick. A failure is logged
// as a warning and never fails the tick: the image's outcome stands, the log has it.
func (t *target) emitEvents(ctx context.Context, opts Options, waitTimeout time.Duration) {
	for _, ti := range t.images {
		rep := ti.report
		prev := Status{}
		if t.dep != nil {
			prev = parseStatus(t.dep.Annotations[ti.image.StatusAnnotation()], opts.Now())
		}
		reason, typ, note := eventFor(rep, prev, waitTimeout)
		if reason == "" {
			continue
		}
		name := eventName(t.key.Name)
		if repeats(reason) {
			// One name per image, reason and state: every tick of one wait or failure is it.
			name = seriesName(t.key.Name, rep.Name, reason, rep.Status.Since)
		}
		event := &eventsv1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: t.key.Namespace},
			EventTime:           metav1.NewMicroTime(opts.Now()),
			ReportingController: EventController,
			ReportingInstance:   truncate(opts.Instance, 128),
			Action:              eventAction,
			Reason:              reason,
			Type:                typ,
			Note:                truncate(printable(note), maxNoteBytes), // its errors, reasons and env are outside text
			Regarding: corev1.ObjectReference{
				APIVersion: "apps/v1", Kind: t.key.Kind, Namespace: t.key.Namespace, Name: t.key.Name,
			},
		}
		if t.dep != nil {
			event.Regarding.UID, event.Regarding.ResourceVersion = t.dep.UID, t.dep.ResourceVersion
		}
		ectx, cancel := context.WithTimeout(ctx, eventTimeout)
		err := recordEvent(ectx, opts.Kube, event, repeats(reason), opts.Now())
		cancel()
		if err != nil {
			opts.Logger.LogAttrs(
				ctx,
				slog.LevelWarn,
				"event not created",
				slog.String("image", rep.Name),
				slog.String("target", rep.Target),
				slog.String("reason", reason),
				slog.String("error", err.Error()),
			)
		}
	}
}

// repeats reports whether an Event of reason recurs on every tick its state lasts, and so is
// kept as one Event with a series.
func repeats(reason string) bool { return reason == ReasonWaiting || reason == ReasonFailed }

// recordEvent creates event; a repeating one that exists already (this state's earlier ticks)
// gets its series counted up instead: read, then a merge patch of series only.
func recordEvent(ctx context.Context, kube Kube, event *eventsv1.Event, repeating bool, now time.Time) error {
	err := kube.CreateEvent(ctx, event)
	if err == nil || !repeating || !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing, err := kube.GetEvent(ctx, event.Namespace, event.Name)
	if err != nil {
		return fmt.Errorf("reading Event %s for its series: %w", event.Name, err)
	}
	count := int32(1)
	if existing.Series != nil {
		count = existing.Series.Count
	}
	patch, err := json.Marshal(map[string]any{"series": eventsv1.EventSeries{Count: count +
		1, LastObservedTime: metav1.NewMicroTime(now)}})
	if err != nil {
		return fmt.Errorf("encoding the series of Event %s: %w", event.Name, err)
	}
	return kube.PatchEvent(ctx, event.Namespace, event.Name, patch)
}

// eventName is unique per Event: the target's name (cut to leave room) and 16 random hex digits.
func eventName(target string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return cutTarget(target) + "." + hex.EncodeToString(b[:])
}

// seriesName names the one Event of an image's wait or failure that began at since: the
// target's name and 16 hex digits of a hash of image, reason and since.
func seriesName(target, image, reason, since string) string {
	sum := sha256.Sum256([]byte(image + "\x00" + reason + "\x00" + since))
	return cutTarget(target) + "." + hex.EncodeToString(sum[:8])
}

func cutTarget(target string) string {
	if len(target) > 200 {
		return strings.TrimRight(target[:200], ".-")
	}
	return target
}

// hostname is the default reportingInstance: in a CronJob, the pod's name.
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "refresher"
}
