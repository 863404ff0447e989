// Package refresher is one tick of the image-refresh CronJob: it looks up the digest of every
// floating image tag, compares it with the audit annotation on the image's target Deployment
// and applies the decision table (see Decide) — restarting the rollout or setting an env var —
// with one strategic-merge patch per Deployment.
//
// The decision table, its comments and the docs name three digests by letter:
//
//	R  the registry digest: what the floating tag points at now (one HEAD per tick)
//	A  the audit annotation on the target (tracebloc.io/last-refreshed-<image>-digest): the
//	   digest this refresher last recorded; absent (or not a digest) on a first observation
//	L  the live env value of a set-env image's variable (INGESTOR_IMAGE_DIGEST) on the
//	   target container: what the pods are told to run
//
// The plan is what the refresher will do: here, one tick's decisions and the one patch per
// target they make (planTarget; re-planned on a conflict), which a dry run prints instead of
// sending; `chartcheck plan` shows, from a rendered release alone, the registry calls and the
// changes each image's decisions can make. The post-renderer's rewrite of a stream is its
// "edit", never a plan.
package refresher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/util/retry"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// targetConcurrency bounds the Deployments read and patched at once.
const targetConcurrency = 8

// Kube is the refresher's access to the cluster: kube.Client over the REST API in the
// CronJob, clientset.New over a client-go clientset (the fake one in tests).
type Kube interface {
	GetDeployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error)
	PatchDeployment(
		ctx context.Context,
		namespace, name string,
		patch []byte,
		fieldManager string,
	) (*appsv1.Deployment, error)
	GetDaemonSet(ctx context.Context, namespace, name string) (*appsv1.DaemonSet, error)
	PatchDaemonSet(ctx context.Context, namespace, name string, patch []byte, fieldManager string) error
	// CreateEvent creates an events.k8s.io/v1 Event. A failure is logged, never fails a tick.
	CreateEvent(ctx context.Context, event *eventsv1.Event) error
	// GetEvent reads an Event; PatchEvent applies a JSON merge patch to one (its series).
	GetEvent(ctx context.Context, namespace, name string) (*eventsv1.Event, error)
	PatchEvent(ctx context.Context, namespace, name string, patch []byte) error
	// GetCronJob reads a CronJob; only the status view calls it (when the refresher last ran).
	GetCronJob(ctx context.Context, namespace, name string) (*batchv1.CronJob, error)
	// ListPods lists a namespace's Pods by label selector; only the status view calls it.
	ListPods(ctx context.Context, namespace, selector string) (*corev1.PodList, error)
}

// Options configure one Run.
type Options struct {
	// Kube reads and patches the target Deployments. Required unless every image is pinned.
	Kube Kube
	// Namespace is used for targets whose namespace the config leaves empty (no
	// metadata.namespace and no target.namespace).
	Namespace string
	// Registry configures the digest lookups (transport, keychain, concurrency, timeout).
	Registry registry.Options
	// DryRun plans and reports but writes nothing; the plan is printed to Out.
	DryRun bool
	// Out receives the dry-run plan; default io.Discard.
	Out io.Writer
	// Logger receives one record per image decision; default slog.Default().
	Logger *slog.Logger
	// Now stamps restarts (kubectl.kubernetes.io/restartedAt), statuses and Events; default
	// time.Now.
	Now func() time.Time
	// Instance names this run in Events (reportingInstance); default the host name (the pod).
	Instance string
	// Keys are the trusted public keys (signature.ReadKeysDir of the mounted keys ConfigMap);
	// required when spec.verification is set and an image needs a signature.
	Keys []signature.PublicKey

	// began is when Run began (Now), set by Run: a change another tick applied since is a
	// twin tick's, running at the same time (see transitionInput.twin).
	began time.Time
}

// Report is the outcome of a Run, one entry per configured image in config order.
type Report struct {
	Images []ImageReport
	// Patches are the patches sent (or, in a dry run, planned), one per changed target.
	Patches []TargetPatch
	// Verification: some image needs a signature (spec.verification).
	Verification bool
}

// ImageReport is what happened to one image.
type ImageReport struct {
	Name      string
	Reference string // repository:tag as configured
	// Repository is the repository as configured (set-image pins the container to it @digest).
	Repository string
	Action     config.Action
	Target     string // namespace/name of the Deployment
	Container  string
	// EnvVar is the variable a set-env image writes.
	EnvVar string
	// Digest is the registry digest seen (R); for a pinned image, the pinned digest.
	Digest string
	// ViaGet reports that the HEAD lacked Docker-Content-Digest and the manifest was fetched.
	ViaGet bool
	// Previous is the audit annotation before the run (A); Env the env value (L, set-env),
	// ImageDigest the digest the container's image is pinned to (L, set-image).
	Previous, Env, ImageDigest string
	Decision                   Decision
	// Intended is, for a failed, waiting, soaking or quarantined image, the decision that was
	// not carried out ("" when none was reached, e.g. the registry lookup failed).
	Intended Decision
	// Err is why the image failed (DecisionFailed); Reason why it waits (DecisionWaiting),
	// soaks, is quarantined or was rolled back, or for a failure registry.ReasonPlatformMissing.
	Err    error
	Reason string
	// Status is the image's status after the run (as written to its status annotation, or
	// left there); zero when the target could not be read.
	Status Status
	// Corrections are what reading the status annotation corrected (see readStatus): a forged
	// or clock-skewed value, logged and written back corrected once.
	Corrections []string
	// Signature is the signature gate's check of Digest; zero when none was needed this tick
	// (no change would apply the digest, or the image needs no signature).
	Signature SignatureCheck
}

// TargetPatch is the single strategic-merge patch for one Deployment.
type TargetPatch struct {
	Target string // namespace/name
	Patch  []byte
}

// Failed reports whether any image or target failed.
func (r Report) Failed() bool { return r.Err() != nil }

// Err joins the failures, each naming its image.
func (r Report) Err() error {
	var errs []error
	for _, img := range r.Images {
		if img.Err != nil {
			errs = append(errs, fmt.Errorf("image %s: %w", img.Name, img.Err))
		}
	}
	return errors.Join(errs...)
}

func (r *ImageReport) fail(err error) {
	r.Decision, r.Err = DecisionFailed, err
}

// Run performs one refresh over cfg. Per-image and per-target failures are recorded in the
// report (see Report.Failed) after every other image was processed; the error is for a run
// that could not start (invalid config or options).
func Run(ctx context.Context, cfg *config.RefreshConfig, opts Options) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Instance == "" {
		opts.Instance = hostname()
	}
	opts.began = opts.Now()

	report, floating, err := newReport(cfg, opts.Namespace)
	if err != nil {
		return Report{}, err
	}
	if len(floating) > 0 && opts.Kube == nil {
		return Report{}, errors.New("refresher options: a Kubernetes client is required")
	}
	regOpts := opts.Registry
	regOpts.InsecureRegistries = slices.Concat(opts.Registry.InsecureRegistries, cfg.Spec.InsecureRegistries)
	resolver, err := registry.NewResolver(regOpts)
	if err != nil {
		return Report{}, err
	}
	signatures, err := newSignatureGate(cfg, resolver, opts.Keys)
	if err != nil {
		return Report{}, err
	}
	g := gates{cfg: cfg, resolver: resolver, signatures: signatures}
	report.Patches = refreshTargets(ctx, cfg, opts, g, report.Images, floating)
	report.Verification = signatures != nil

	for _, rep := range report.Images {
		logDecision(ctx, opts.Logger, rep, opts.DryRun)
	}
	if opts.DryRun {
		if err := printPlan(opts.Out, report); err != nil {
			return report, fmt.Errorf("printing the plan: %w", err)
		}
	}
	return report, nil
}

// floatingImage is an image to poll: its index in the config and its target, namespace
// resolved.
type floatingImage struct {
	index  int
	target config.TargetKey
}

// newReport starts the report: pinned images are done; the floating ones are returned, their
// targets resolved by the contract (a namespace the config leaves empty is namespace). Every
// floating image's target must have a namespace. A set-env image that writes the same
// variable of the same resolved target as an earlier image fails: one patch would carry the
// variable twice and every run would flip it.
func newReport(cfg *config.RefreshConfig, namespace string) (Report, []floatingImage, error) {
	report := Report{Images: make([]ImageReport, len(cfg.Spec.Images))}
	for i, img := range cfg.Spec.Images {
		key := img.Target.Key()
		key.Namespace = contract.Namespace(cfg, img, "", namespace)
		report.Images[i] = ImageReport{
			Name: img.Name, Reference: img.Reference(), Repository: img.Repository, Action: img.Action,
			Target: targetName(key), Container: img.Target.Container, EnvVar: img.Env,
		}
		if img.Pinned() {
			report.Images[i].Digest, report.Images[i].Decision = img.Digest, DecisionPinned
		}
	}
	targets := contract.Targets(cfg, "", namespace)
	shared := contract.CheckSharedEnv(targets)
	var floating []floatingImage
	for _, t := range targets {
		if t.Key.Namespace == "" {
			return Report{}, nil, fmt.Errorf(
				"image %s: target %s has no namespace: set metadata.namespace in the config or pass a namespace",
				t.Image.Name,
				t.Image.Target.Name,
			)
		}
		if v := shared[t.Index]; v != nil {
			report.Images[t.Index].fail(v)
			continue
		}
		floating = append(floating, floatingImage{index: t.Index, target: t.Key})
	}
	return report, floating, nil
}

// targetName is how reports and logs name a target: namespace/name for a Deployment, the kind first for another.
func targetName(key config.TargetKey) string {
	if key.Kind != config.KindDeployment {
		return key.Kind + " " + key.Namespace + "/" + key.Name
	}
	return key.Namespace + "/" + key.Name
}

// refreshTargets resolves the floating images and applies each target as soon as the last of
// its images is resolved, so the API work overlaps the remaining registry lookups. It fills in
// reports and returns the patches, in config order of the targets.
func refreshTargets(
	ctx context.Context,
	cfg *config.RefreshConfig,
	opts Options,
	g gates,
	reports []ImageReport,
	floating []floatingImage,
) []TargetPatch {
	refs := make([]string, len(floating))
	targetOf := make([]*target, len(floating))
	var targets []*target // in config order
	byKey := map[config.TargetKey]*target{}
	for j, fi := range floating {
		refs[j] = cfg.Spec.Images[fi.index].Reference()
		t, ok := byKey[fi.target]
		if !ok {
			t = &target{key: fi.target}
			byKey[fi.target] = t
			targets = append(targets, t)
		}
		t.pending++
		targetOf[j] = t
	}

	ready := make(chan *target, len(targets))
	var workers sync.WaitGroup
	for range min(targetConcurrency, len(targets)) {
		workers.Go(func() {
			for t := range ready {
				t.patch = t.apply(ctx, cfg, opts, g)
				if !opts.DryRun {
					t.emitEvents(ctx, opts, cfg.Spec.EffectiveWaitTimeout())
				}
			}
		})
	}
	g.resolver.ResolveEach(ctx, refs, func(j int, res registry.Result) {
		i, t := floating[j].index, targetOf[j]
		rep := &reports[i]
		ti := targetImage{index: i, report: rep, image: cfg.Spec.Images[i]}
		if res.Err != nil {
			rep.fail(res.Err)
			ti.lookupErr = res.Err
		} else {
			rep.Digest, rep.ViaGet = res.Digest, res.ViaGet
		}
		// A failed image still goes to its target: its status annotation records the failure,
		// and another image's rollout must not pull its tag unrecorded.
		t.images = append(t.images, ti)
		if t.pending--; t.pending == 0 {
			ready <- t
		}
	})
	close(ready)
	workers.Wait()

	var patches []TargetPatch
	for _, t := range targets {
		if t.patch != nil {
			patches = append(patches, TargetPatch{Target: targetName(t.key), Patch: t.patch})
		}
	}
	return patches
}

// target is one Deployment and the images acting on it.
type target struct {
	key config.TargetKey
	// pending counts images still being resolved; images are those resolved (or failed).
	pending int
	images  []targetImage
	// patch is what apply sent (or planned); dep the Deployment as last read (nil if unread).
	patch []byte
	dep   *appsv1.Deployment
}

// apply plans and sends the one patch for the Deployment, re-reading and re-planning on a
// conflict. It returns the patch sent (or planned, in a dry run), nil when none was needed.
// A failure to read or patch fails every image of the target that had not failed already; the
// decision it could not carry out is kept as Intended.
func (t *target) apply(ctx context.Context, cfg *config.RefreshConfig, opts Options, g gates) []byte {
	// Lookups finish in any order; plan in config order so the patch is deterministic.
	slices.SortFunc(t.images, func(a, b targetImage) int { return a.index - b.index })
	var patch []byte
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		dep, err := getTarget(ctx, opts.Kube, t.key)
		if err != nil {
			return err
		}
		t.dep = dep
		p := tickSettings{
			now:            opts.Now(),
			began:          opts.began,
			waitTimeout:    cfg.Spec.EffectiveWaitTimeout(),
			rolloutTimeout: cfg.Spec.EffectiveRolloutTimeout(),
		}
		patch, err = planTarget(dep, t.images, p)
		if err == nil && t.gate(ctx, g, p) {
			patch, err = planTarget(dep, t.images, p) // a refused digest fails its image
		}
		if err != nil || patch == nil || opts.DryRun {
			return err
		}
		for i := range t.images {
			// The digest the rollout brings (a rollback brings the previous one: not recorded).
			if ti := &t.images[i]; ti.intended == "" &&
				(appliesDigest(ti.report.Decision) || ti.report.Decision == DecisionDrift) {
				ti.intended = ti.report.Digest
			}
		}
		return patchTarget(ctx, opts.Kube, t.key, patch)
	})
	if t.dep != nil {
		t.warnOtherWriters(ctx, opts.Logger, opts.Now())
	}
	if err != nil {
		for _, ti := range t.images {
			if rep := ti.report; rep.Err == nil {
				if rep.Decision != "" && rep.Decision != DecisionWaiting {
					rep.Intended = rep.Decision
				}
				rep.Decision, rep.Err, rep.Reason, rep.Status = DecisionFailed, err, "", Status{}
			}
		}
		return nil
	}
	return patch
}

// otherWriterWindow is how recent another writer's write must be to be warned about (besides
// later than the refresher's own): a live second refresher writes far more often.
const otherWriterWindow = time.Hour

// warnOtherWriters logs, once per tick, every other field manager that owns one of the target's
// refresher annotations (otherWriters): a second refresher or a hand edit, which ends this one's
// rollout tracking. It writes nothing.
func (t *target) warnOtherWriters(ctx context.Context, logger *slog.Logger, now time.Time) {
	var keys []string
	for _, ti := range t.images {
		keys = append(keys, ti.image.Annotation, ti.image.StatusAnnotation())
	}
	if writers := otherWriters(t.dep, keys, now.Add(-otherWriterWindow)); len(writers) > 0 {
		logger.LogAttrs(ctx, slog.LevelWarn, "another writer changed the refresher's annotations: one refresher per target",
			slog.String("target", targetName(t.key)), slog.Any("writers", writers))
	}
}

func logDecision(ctx context.Context, logger *slog.Logger, rep ImageReport, dryRun bool) {
	// old_digest is what the decision replaces: the annotation, but for a drift (annotation
	// already current) the env's value. new_digest is what the decision writes: the registry
	// digest, but for an adopt the env's digest it records (registry_digest is R then).
	old, recorded := rep.Previous, rep.Digest
	switch {
	case rep.Decision == DecisionDrift && rep.Action == config.ActionSetImage:
		old = rep.ImageDigest
	case rep.Decision == DecisionDrift:
		old = rep.Env
	case rep.Decision == DecisionAdopt:
		recorded = rep.Env
	}
	attrs := []slog.Attr{
		slog.String("image", rep.Name),
		slog.String("reference", rep.Reference),
		slog.String("action", string(rep.Action)),
		slog.String("target", rep.Target),
		slog.String("container", rep.Container),
		slog.String("decision", string(rep.Decision)),
		slog.String("old_digest", old),
		slog.String("new_digest", recorded),
	}
	if rep.Decision == DecisionAdopt {
		attrs = append(attrs, slog.String("registry_digest", rep.Digest))
	}
	switch rep.Action {
	case config.ActionSetEnv:
		attrs = append(attrs, slog.String("env_digest", rep.Env))
	case config.ActionSetImage:
		attrs = append(attrs, slog.String("image_digest", rep.ImageDigest))
	}
	if rep.Intended != "" {
		attrs = append(attrs, slog.String("intended", string(rep.Intended)))
	}
	if rep.ViaGet {
		attrs = append(attrs, slog.Bool("via_get", true))
	}
	if sig := rep.Signature; sig.State != "" {
		attrs = append(attrs, slog.String("signature", string(sig.State)))
		if sig.Layout != "" {
			attrs = append(attrs, slog.String("signature_layout", string(sig.Layout)), slog.String("signature_key", sig.Key))
		}
		if sig.Remembered {
			attrs = append(attrs, slog.Bool("signature_remembered", true))
		}
	}
	if dryRun {
		attrs = append(attrs, slog.Bool("dry_run", true))
	}
	level, msg := slog.LevelInfo, "image checked"
	switch {
	case rep.Err != nil:
		level, msg = slog.LevelError, "image failed"
		attrs = append(attrs, slog.String("error", rep.Err.Error()))
	case rep.Decision == DecisionWaiting:
		level, msg = slog.LevelWarn, "image waiting"
		attrs = append(attrs, slog.String("reason", rep.Reason))
	case rep.Decision == DecisionQuarantined || rep.Decision == DecisionRolledBack:
		level, msg = slog.LevelWarn, "image quarantined"
		attrs = append(attrs, slog.String("reason", rep.Reason), slog.String("quarantined", rep.Status.Quarantined))
	case rep.Decision == DecisionSoaking:
		msg = "image soaking"
		attrs = append(attrs, slog.String("reason", rep.Reason))
	case rep.Decision == DecisionPinned:
		msg = "image pinned, not polled"
	}
	if st := rep.Status; st.State == StateWaiting || st.State == StateFailed {
		attrs = append(attrs, slog.String("state_since", st.Since))
		if st.WaitingSince != "" {
			attrs = append(attrs, slog.String("waiting_since", st.WaitingSince))
		}
	}
	if len(rep.Corrections) > 0 {
		attrs = append(attrs, slog.Any("status_corrected", rep.Corrections))
		if level < slog.LevelWarn {
			level = slog.LevelWarn
		}
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}
