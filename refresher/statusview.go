package refresher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// ViewState is an image's state in the status view.
type ViewState string

const (
	// ViewCurrent: what runs is the registry digest.
	ViewCurrent ViewState = "current"
	// ViewBehind: the registry is ahead of what runs, and the image neither soaks, waits nor
	// holds a quarantined digest: the state to alert on.
	ViewBehind ViewState = "behind"
	// ViewSoaking: the registry digest is soaking (spec.images[].soak).
	ViewSoaking ViewState = "soaking"
	// ViewWaiting: the image's last tick waited for the target's rollout.
	ViewWaiting ViewState = "waiting"
	// ViewQuarantined: the registry digest is quarantined; the tag must move.
	ViewQuarantined ViewState = "quarantined"
	// ViewFailed: the registry or the target could not be read, or the last tick failed.
	ViewFailed ViewState = "failed"
	// ViewPinned: the config pins the digest; never polled.
	ViewPinned ViewState = "pinned"
	// ViewStale: the refresher stopped — its CronJob is suspended or gone, or no tick succeeded
	// for staleAfterRuns scheduled runs (decideRun) — so the recorded state is not acted on;
	// since is the last successful tick. Alerts like behind. A failed row stays failed.
	ViewStale ViewState = "stale"
)

// StatusRow is one image in the status view.
type StatusRow struct {
	Image     string        `json:"image"`
	Reference string        `json:"reference"`
	Target    string        `json:"target"` // namespace/name
	Container string        `json:"container"`
	Action    config.Action `json:"action"`
	// Recorded is the audit annotation; Running the digests the target runs, from its pods'
	// imageID (rollout-restart, set-image) or env (set-env) — the Deployment's env or image
	// digest when no pod tells — RunningFrom where they came from ("pods", "env", "image", ""
	// when unknown); Registry the tag's
	// digest now (one HEAD).
	Recorded    string    `json:"recorded,omitempty"`
	Running     []string  `json:"running,omitempty"`
	RunningFrom string    `json:"runningFrom,omitempty"`
	Registry    string    `json:"registry,omitempty"`
	State       ViewState `json:"state"`
	// Since is when the image entered its state (status annotation), or, soaking, when the
	// pending digest was first seen, or, stale, the refresher's last successful tick.
	Since string `json:"since,omitempty"`
	// Detail is the status annotation's error, a failure, or a note (pods not listed; stale:
	// the state the row would show otherwise).
	Detail string `json:"detail,omitempty"`
	// Refresher is, for a floating image, what the refresher's CronJob says when the view cannot
	// vouch for its runs: why the row is stale, or why the last tick is unknown (the CronJob
	// could not be read). The same for every floating row; empty while the refresher runs.
	Refresher string `json:"refresher,omitempty"`
	// Signature is the signature gate's verdict on Registry (verified, unsigned, invalid,
	// unknown), for an image that needs one; SignatureLayout where the verifying signature was
	// found, SignatureKey the key that verified it.
	Signature       SignatureState   `json:"signature,omitempty"`
	SignatureLayout signature.Layout `json:"signatureLayout,omitempty"`
	SignatureKey    string           `json:"signatureKey,omitempty"`
}

// ViewOptions configure View.
type ViewOptions struct {
	// Kube reads the targets (get deployments) and their pods (list pods); required unless
	// every image is pinned.
	Kube Kube
	// Namespace is used for targets whose namespace the config leaves empty.
	Namespace string
	// Registry configures the HEADs.
	Registry registry.Options
	// Keys are the trusted public keys; required when an image needs a signature, whose
	// registry digest the view then verifies (a few GETs per distinct digest).
	Keys []signature.PublicKey
	// Now is the view's clock (status times, the refresher's staleness); default time.Now.
	Now func() time.Time
}

// View is the status view: one row per image, in config order. It is read-only: one HEAD per
// distinct floating tag, one GET of each target Deployment and one LIST of its pods, and one GET
// of the refresher's CronJob (when it last ran, see decideRun); it never writes. A failure to
// read is the row's state (failed), not an error — the CronJob's only a note (Refresher); the
// error is for a view that could not start (invalid config or options).
func View(ctx context.Context, cfg *config.RefreshConfig, opts ViewOptions) ([]StatusRow, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	report, floating, err := newReport(cfg, opts.Namespace)
	if err != nil {
		return nil, err
	}
	if len(floating) > 0 && opts.Kube == nil {
		return nil, errors.New("status options: a Kubernetes client is required")
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	rows := make([]StatusRow, len(cfg.Spec.Images))
	for i, rep := range report.Images {
		rows[i] = StatusRow{
			Image:     rep.Name,
			Reference: rep.Reference,
			Target:    rep.Target,
			Container: rep.Container,
			Action:    rep.Action,
		}
		if rep.Decision == DecisionPinned {
			rows[i].State, rows[i].Detail = ViewPinned, "pinned to "+rep.Digest+", never polled"
		} else if rep.Err != nil {
			rows[i].State, rows[i].Detail = ViewFailed, rep.Err.Error()
		}
	}
	resolver, err := registry.NewResolver(opts.Registry)
	if err != nil {
		return nil, err
	}
	refs := make([]string, len(floating))
	for j, fi := range floating {
		refs[j] = cfg.Spec.Images[fi.index].Reference()
	}
	results := resolver.Resolve(ctx, refs)
	signatures, err := newSignatureGate(cfg, resolver, opts.Keys)
	if err != nil {
		return nil, err
	}

	type targetView struct {
		dep     *appsv1.Deployment
		pods    []corev1.Pod
		err     error
		podsErr error
	}
	targets := map[config.TargetKey]*targetView{}
	for j, fi := range floating {
		img, row := cfg.Spec.Images[fi.index], &rows[fi.index]
		tv, ok := targets[fi.target]
		if !ok {
			tv = &targetView{}
			targets[fi.target] = tv
			tv.dep, tv.err = getTarget(ctx, opts.Kube, fi.target)
			if tv.err == nil {
				tv.pods, tv.podsErr = listPods(ctx, opts.Kube, tv.dep)
			}
		}
		res := results[j]
		row.Registry = res.Digest
		if signatures != nil && res.Err == nil && cfg.VerificationRequired(img) {
			check := signatures.check(ctx, img, res.Digest, Refusal{}, now())
			row.Signature, row.SignatureLayout, row.SignatureKey = check.State, check.Layout, check.Key
			if check.err != nil && row.Detail == "" {
				row.Detail = check.err.Error()
			}
		}
		switch {
		case res.Err != nil:
			row.State, row.Detail = ViewFailed, res.Err.Error()
		case tv.err != nil:
			row.State, row.Detail = ViewFailed, tv.err.Error()
		}
		if tv.err != nil {
			continue
		}
		row.Recorded = tv.dep.Annotations[img.Annotation]
		row.Running, row.RunningFrom = running(tv.dep, tv.pods, img)
		if tv.podsErr != nil && row.Detail == "" {
			row.Detail = fmt.Sprintf("pods not listed (%v); running digests from the %s", tv.podsErr, fi.target.Kind)
		}
		if row.State == ViewFailed {
			continue
		}
		st := parseStatus(tv.dep.Annotations[img.StatusAnnotation()], now())
		row.State, row.Since = viewState(row, st)
		if st.Error != "" && row.Detail == "" {
			row.Detail = st.Error
		}
	}
	if len(floating) > 0 {
		verdict := decideRun(readRun(ctx, cfg, opts.Kube, opts.Namespace, now()))
		for _, fi := range floating {
			applyRun(&rows[fi.index], verdict)
		}
	}
	return rows, nil
}

// readRun reads the refresher's CronJob: named after the config, where the post-renderer
// injects it (contract.RoleNamespace).
func readRun(ctx context.Context, cfg *config.RefreshConfig, kube Kube, namespace string, now time.Time) runCheck {
	ns := contract.RoleNamespace(cfg, "", namespace)
	c := runCheck{Name: ns + "/" + cfg.Metadata.Name, Schedule: cfg.Spec.Schedule, Job: cfg.Spec.Job, Now: now}
	if ns == "" {
		c.Err = errors.New("no namespace: the config has no metadata.namespace and none was given")
		return c
	}
	c.CronJob, c.Err = kube.GetCronJob(ctx, ns, cfg.Metadata.Name)
	return c
}

// applyRun puts the verdict on the refresher's runs on a floating image's row: its note, and,
// stale, the state stale since the last successful tick — but a failed row stays failed (it
// already says why, and exits 1, which outranks stale's 3).
func applyRun(row *StatusRow, v runVerdict) {
	row.Refresher = v.Note
	if !v.Stale || row.State == ViewFailed {
		return
	}
	otherwise := "otherwise " + string(row.State)
	if row.Since != "" {
		otherwise += " since " + row.Since
	}
	row.Detail = strings.TrimSuffix(otherwise+"; "+row.Detail, "; ")
	row.State, row.Since = ViewStale, ""
	if !v.LastTick.IsZero() {
		row.Since = v.LastTick.UTC().Format(time.RFC3339)
	}
}

// viewState is the state of a row whose registry digest and target were read.
func viewState(row *StatusRow, st Status) (ViewState, string) {
	switch {
	case st.State == StateFailed:
		return ViewFailed, st.Since
	case st.State == StateQuarantined && row.Registry == st.Quarantined:
		return ViewQuarantined, st.Since
	case st.State == StateSoaking && st.Pending == row.Registry:
		return ViewSoaking, st.PendingSince
	case st.State == StateWaiting:
		return ViewWaiting, st.Since
	}
	runs := row.Running
	if len(runs) == 0 {
		runs = []string{row.Recorded} // nothing tells what runs: the record does
	}
	if slices.ContainsFunc(runs, func(d string) bool { return d != row.Registry }) {
		return ViewBehind, st.Since
	}
	return ViewCurrent, st.Since
}

// listPods lists the Deployment's pods by its selector, leaving out pods being deleted and
// pods that finished, in name order.
func listPods(ctx context.Context, kube Kube, dep *appsv1.Deployment) ([]corev1.Pod, error) {
	if dep.Spec.Selector == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector of Deployment %s/%s: %w", dep.Namespace, dep.Name, err)
	}
	list, err := kube.ListPods(ctx, dep.Namespace, sel.String())
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			pods = append(pods, p)
		}
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods, nil
}

// running is what the target runs for img, distinct, in pod name order: for rollout-restart and
// set-image the digest of each pod's container imageID ("repo@sha256:…"; a runtime that reports
// no repo digest tells nothing), for set-env the env value of each pod's container; when no pod
// tells, the Deployment's template: its env (set-env) or its image's digest (set-image). from
// says which.
func running(dep *appsv1.Deployment, pods []corev1.Pod, img config.Image) (digests []string, from string) {
	add := func(d string) {
		if config.ValidDigest(d) && !slices.Contains(digests, d) {
			digests = append(digests, d)
		}
	}
	for _, p := range pods {
		switch img.Action {
		case config.ActionRolloutRestart, config.ActionSetImage:
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == img.Target.Container {
					if _, d, ok := strings.Cut(cs.ImageID, "@"); ok {
						add(d)
					}
				}
			}
		case config.ActionSetEnv:
			for _, c := range p.Spec.Containers {
				if c.Name == img.Target.Container {
					for _, e := range c.Env {
						if e.Name == img.Env {
							add(e.Value)
						}
					}
				}
			}
		}
	}
	if len(digests) > 0 {
		return digests, "pods"
	}
	c, v := contract.Container(dep, img)
	if v != nil {
		return nil, ""
	}
	switch img.Action {
	case config.ActionSetEnv:
		if env, v := contract.LiveEnv(c, img.Env); v == nil && config.ValidDigest(env) {
			return []string{env}, "env"
		}
	case config.ActionSetImage:
		if d, v := contract.LiveImage(img, c); v == nil && d != "" {
			return []string{d}, "image"
		}
	}
	return nil, ""
}

// PrintView writes the rows as a table (digests shortened to 12 hex digits) or, with asJSON,
// as a JSON array. Either way every line is printable (see printable): a table line is
// writeLine's, and the JSON's escapes of format characters (bidi overrides) decode to the same
// values.
func PrintView(w io.Writer, rows []StatusRow, asJSON bool) error {
	if asJSON {
		if rows == nil {
			rows = []StatusRow{}
		}
		data, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the status rows: %w", err)
		}
		// Its strings hold no newline (JSON escapes it): each line is one line of the encoding.
		for line := range strings.SplitSeq(string(data), "\n") {
			if err := writeLine(w, line); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The SIGNATURE column is there when an image needs a signature (spec.verification).
	signed := slices.ContainsFunc(rows, func(r StatusRow) bool { return r.Signature != "" })
	header := []string{"IMAGE", "TARGET", "ACTION", "RECORDED", "RUNNING", "REGISTRY", "STATE", "SINCE"}
	if signed {
		header = append(header, "SIGNATURE")
	}
	if err := writeLine(tw, header...); err != nil {
		return err
	}
	for _, r := range rows {
		run := make([]string, len(r.Running))
		for i, d := range r.Running {
			run[i] = ShortDigest(d)
		}
		runText := dash(strings.Join(run, ","))
		if r.RunningFrom == "env" || r.RunningFrom == "image" {
			runText += " (" + r.RunningFrom + ")"
		}
		cells := []string{r.Image, r.Target + "/" + r.Container, string(r.Action),
			dash(ShortDigest(r.Recorded)), runText, dash(ShortDigest(r.Registry)), string(r.State), dash(age(r.Since))}
		if signed {
			cells = append(cells, SignatureCheck{State: r.Signature, Layout: r.SignatureLayout, Key: r.SignatureKey}.String())
		}
		if err := writeLine(tw, cells...); err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// The refresher's note (stale, or its last tick unknown) is every floating row's: once.
	var notes []string
	for _, r := range rows {
		if r.Refresher != "" && !slices.Contains(notes, r.Refresher) {
			notes = append(notes, r.Refresher)
			if err := writeLine(w, "refresher: "+r.Refresher); err != nil {
				return err
			}
		}
	}
	return nil
}

// ShortDigest is a digest cut to its algorithm and 12 hex digits; anything else unchanged.
func ShortDigest(d string) string {
	if config.ValidDigest(d) {
		return d[:len("sha256:")+12]
	}
	return d
}

// age keeps an RFC 3339 time as it is (a table that ages would not be reproducible).
func age(since string) string {
	if _, err := time.Parse(time.RFC3339, since); err != nil {
		return ""
	}
	return since
}

// ViewExit summarizes the rows for an exit code: failed when any row failed, behind when any
// registry digest is ahead of what runs without a refresh on its way (behind, quarantined),
// stale when the refresher stopped (a row is stale).
func ViewExit(rows []StatusRow) (failed, behind, stale bool) {
	for _, r := range rows {
		switch r.State {
		case ViewFailed:
			failed = true
		case ViewBehind, ViewQuarantined:
			behind = true
		case ViewStale:
			stale = true
		}
	}
	return failed, behind, stale
}
