package refresher

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// decisionRow is one row of the decision table in docs/refresher.md, and the case that proves
// it: a target, the image's registry answer and the tick's settings, planned with planTarget
// (the pure decision of one target), or — for the two rows decided before any target is read —
// with a whole Run.
type decisionRow struct {
	// The row as docs/refresher.md shows it.
	action, state, writes string
	decision              Decision
	// reason is the failed image's reason (platform-missing, signature-…), checked when set.
	reason string
	// plan builds the planTarget inputs; the image under test is images[0].
	plan func() (*appsv1.Deployment, []targetImage, tickSettings)
	// run, instead of plan, decides with a whole tick on the fixture and returns the image's report.
	run func(t *testing.T) ImageReport
	// check is what the row's writes column says, checked on the patch (nil: none).
	check func(t *testing.T, patch string)
}

var (
	tableR, tableA, tableL = digestOf('a'), digestOf('b'), digestOf('c')
	tableNow               = clock
)

func restartImage() config.Image {
	return config.Image{
		Name:       "jobs-manager",
		Repository: "docker.io/tracebloc/jobs-manager",
		Tag:        "prod",
		Action:     config.ActionRolloutRestart,
		Target:     config.Target{Kind: config.KindDeployment, Name: deploymentName, Namespace: namespace, Container: "api"},
		Annotation: jobsManagerKey,
	}
}

// podsMonitorImage is pods-monitor as the example config refreshes it: rollout-restart, beside jobs-manager.
func podsMonitorImage() config.Image {
	img := restartImage()
	img.Name, img.Repository, img.Annotation = "pods-monitor", "docker.io/tracebloc/pods-monitor", podsMonitorKey
	img.Target.Container = "pods-monitor"
	return img
}

// pinImage is jobs-manager refreshed by set-image.
func pinImage() config.Image {
	img := restartImage()
	img.Action = config.ActionSetImage
	return img
}

// pinned is the Deployment with container api pinned to jobs-manager's digest d.
func pinned(dep *appsv1.Deployment, d string) *appsv1.Deployment {
	dep.Spec.Template.Spec.Containers[0].Image = "docker.io/tracebloc/jobs-manager@" + d
	dep.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	return dep
}

func envImage() config.Image {
	return config.Image{
		Name:       "ingestor",
		Repository: "ghcr.io/tracebloc/ingestor",
		Tag:        "prod",
		Action:     config.ActionSetEnv,
		Env:        ingestorEnv,
		Target:     config.Target{Kind: config.KindDeployment, Name: deploymentName, Namespace: namespace, Container: "api"},
		Annotation: ingestorKey,
	}
}

// one plans a single image at tableNow with the default limits.
func one(
	dep *appsv1.Deployment,
	img config.Image,
	lookupErr error,
) func() (*appsv1.Deployment, []targetImage, tickSettings) {
	return func() (*appsv1.Deployment, []targetImage, tickSettings) {
		rep := &ImageReport{Name: img.Name, Digest: tableR}
		return dep, []targetImage{{report: rep, image: img, lookupErr: lookupErr}},
			tickSettings{now: tableNow, waitTimeout: config.DefaultWaitTimeout, rolloutTimeout: config.DefaultRolloutTimeout}
	}
}

func annotated(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

// pending makes the Deployment's last rollout incomplete: generation 2 observed, one pod not ready.
func pending(dep *appsv1.Deployment) *appsv1.Deployment {
	dep.Generation = 2
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: 2,
		Replicas:           2,
		UpdatedReplicas:    1,
		ReadyReplicas:      1,
		AvailableReplicas:  1,
	}
	return dep
}

func contains(fragments ...string) func(*testing.T, string) {
	return func(t *testing.T, patch string) {
		t.Helper()
		for _, f := range fragments {
			if !strings.Contains(patch, f) {
				t.Errorf("patch lacks %s:\n%s", f, patch)
			}
		}
	}
}

func lacks(fragments ...string) func(*testing.T, string) {
	return func(t *testing.T, patch string) {
		t.Helper()
		for _, f := range fragments {
			if strings.Contains(patch, f) {
				t.Errorf("patch has %s:\n%s", f, patch)
			}
		}
	}
}

func both(checks ...func(*testing.T, string)) func(*testing.T, string) {
	return func(t *testing.T, patch string) {
		t.Helper()
		for _, c := range checks {
			c(t, patch)
		}
	}
}

func decisionRows() []decisionRow {
	status := func(s Status) string { return s.encode() }
	restartedAt := `"` + config.RestartedAtAnnotation + `"`
	envWrite := `"name":"` + ingestorEnv + `","value":"` + tableR + `"`
	statusOnly := both(contains(`"image-refresh.io/status-`), lacks(`"spec"`, `"`+jobsManagerKey+`"`, `"`+ingestorKey+`"`))
	return []decisionRow{
		{
			action:   "rollout-restart",
			state:    "A absent",
			decision: DecisionRecord,
			writes:   "A=R, no restart",
			plan:     one(deployment(nil), restartImage(), nil),
			check:    both(contains(`"`+jobsManagerKey+`":"`+tableR+`"`), lacks(restartedAt)),
		},
		{action: "rollout-restart", state: "A = R", decision: DecisionUnchanged, writes: "nothing",
			plan: one(deployment(annotated(jobsManagerKey, tableR)), restartImage(), nil)},
		{
			action:   "rollout-restart",
			state:    "A ≠ R",
			decision: DecisionRestart,
			writes:   "pod-template `kubectl.kubernetes.io/restartedAt` (RFC 3339, as kubectl), A=R",
			plan:     one(deployment(annotated(jobsManagerKey, tableA)), restartImage(), nil),
			check:    contains(restartedAt, `"`+jobsManagerKey+`":"`+tableR+`"`),
		},
		{
			action:   "set-env",
			state:    "A absent, L present",
			decision: DecisionAdopt,
			writes:   "A=L, env untouched (a newer R is applied next tick)",
			plan:     one(deployment(nil, env(tableL)), envImage(), nil),
			check:    both(contains(`"`+ingestorKey+`":"`+tableL+`"`), lacks(`"spec"`)),
		},
		{action: "set-env", state: "A absent, L absent", decision: DecisionFill, writes: "L=R, A=R",
			plan: one(deployment(nil), envImage(), nil), check: contains(envWrite, `"`+ingestorKey+`":"`+tableR+`"`)},
		{
			action:   "set-env",
			state:    "A ≠ R",
			decision: DecisionUpdateEnv,
			writes:   "L=R (that is the rollout — no restart annotation), A=R",
			plan:     one(deployment(annotated(ingestorKey, tableA), env(tableA)), envImage(), nil),
			check:    both(contains(envWrite, `"`+ingestorKey+`":"`+tableR+`"`), lacks(restartedAt)),
		},
		{
			action:   "set-env",
			state:    "A = R, L ≠ R",
			decision: DecisionDrift,
			writes:   "L=R (helm upgrade, `rollout undo`, manual edit)",
			plan:     one(deployment(annotated(ingestorKey, tableR), env(tableL)), envImage(), nil),
			check:    contains(envWrite),
		},
		{action: "set-env", state: "A = R, L = R", decision: DecisionUnchanged, writes: "nothing",
			plan: one(deployment(annotated(ingestorKey, tableR), env(tableR)), envImage(), nil)},
		{
			action:   "set-image",
			state:    "A absent (L, the container image's digest, whatever it is)",
			decision: DecisionRecord,
			writes:   "A=R, the image untouched",
			plan:     one(pinned(deployment(nil), tableL), pinImage(), nil),
			check:    both(contains(`"`+jobsManagerKey+`":"`+tableR+`"`), lacks(`"spec"`)),
		},
		{
			action:   "set-image",
			state:    "A ≠ R",
			decision: DecisionUpdateImage,
			writes:   "the container's `image` = repository@R (that is the rollout; any pull policy), A=R",
			plan:     one(pinned(deployment(annotated(jobsManagerKey, tableA)), tableA), pinImage(), nil),
			check: both(
				contains(`"image":"docker.io/tracebloc/jobs-manager@`+tableR+`"`, `"`+jobsManagerKey+`":"`+tableR+`"`),
				lacks(restartedAt, `"env"`),
			),
		},
		{
			action:   "set-image",
			state:    "A = R, the image not repository@R (a `helm upgrade` rendered the tag again, a manual edit)",
			decision: DecisionDrift,
			writes:   "the container's `image` = repository@R (one rollout)",
			plan:     one(deployment(annotated(jobsManagerKey, tableR)), pinImage(), nil),
			check:    both(contains(`"image":"docker.io/tracebloc/jobs-manager@`+tableR+`"`), lacks(`"env"`)),
		},
		{action: "set-image", state: "A = R, the image repository@R", decision: DecisionUnchanged, writes: "nothing",
			plan: one(pinned(deployment(annotated(jobsManagerKey, tableR)), tableR), pinImage(), nil)},
		{
			action:   "set-image",
			state:    "the container runs another repository",
			decision: DecisionFailed,
			writes: "nothing about that image but its status annotation; the error names what the container runs " +
				"(rule `image-reference`)",
			plan: func() (*appsv1.Deployment, []targetImage, tickSettings) {
				dep := deployment(annotated(jobsManagerKey, tableA))
				dep.Spec.Template.Spec.Containers[0].Image = "ghcr.io/someone/else:prod"
				return one(dep, pinImage(), nil)()
			},
			check: statusOnly,
		},
		{action: "any", state: "digest pinned", decision: DecisionPinned, writes: "nothing, no request",
			run: func(t *testing.T) ImageReport {
				f := newFixture(t, deployment(nil))
				f.image("ingestor").Digest = digestOf('9')
				return f.run(t, f.options()).Images[2]
			}},
		{
			action: "set-env",
			state: "the container lists the variable more than once (the kubelet uses the last; " +
				"a patch by name cannot say which it changes), or sets it from `valueFrom`",
			decision: DecisionFailed,
			writes:   "nothing about that image but its status annotation, on the transition; the error names the variable",
			plan:     one(deployment(nil, env(tableA), env(tableL)), envImage(), nil),
			check:    statusOnly,
		},
		{
			action:   "set-env",
			state:    "another floating set-env image writes the same variable of the same resolved target",
			decision: DecisionFailed,
			writes:   "nothing about it (the later image)",
			run: func(t *testing.T) ImageReport {
				f := newFixture(t, deployment(nil))
				twin := *f.image("ingestor")
				twin.Name, twin.Annotation = "ingestor-twin", "tracebloc.io/last-refreshed-ingestor-twin-digest"
				f.cfg.Spec.Images = append(f.cfg.Spec.Images, twin)
				return f.run(t, f.options()).Images[3]
			},
		},
		{
			action: "rollout-restart",
			state: "the target container runs a digest (`@sha256:`), another `repository:tag` than the polled one, " +
				"or an effective `imagePullPolicy` other than `Always`",
			decision: DecisionFailed,
			writes: "nothing about that image but its status annotation, on the transition; the error names the container, " +
				"what it runs, and the fix",
			plan: func() (*appsv1.Deployment, []targetImage, tickSettings) {
				dep := deployment(annotated(jobsManagerKey, tableA))
				dep.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
				return one(dep, restartImage(), nil)()
			},
			check: statusOnly,
		},
		{
			action:   "any",
			state:    "registry or target failure, a patch the API server rejects (403, conflicts exhausted)",
			decision: DecisionFailed,
			writes: "nothing about that image but its status annotation (none when the API refused); " +
				"`intended` names the decision not carried out",
			plan: one(
				deployment(annotated(ingestorKey, tableA), env(tableA)),
				envImage(),
				errors.New("resolving ghcr.io/tracebloc/ingestor:prod: 503"),
			),
			check: statusOnly,
		},
		{
			action:   "any write",
			state:    "the target is paused (`spec.paused`) or being deleted",
			decision: DecisionWaiting,
			writes:   "nothing but the status annotation",
			plan: func() (*appsv1.Deployment, []targetImage, tickSettings) {
				dep := deployment(annotated(jobsManagerKey, tableA))
				dep.Spec.Paused = true
				return one(dep, restartImage(), nil)()
			},
			check: statusOnly,
		},
		{
			action: "restart, fill, update-env, update-image, drift (they roll the pods out)",
			state: "the target's last rollout is not complete, or a rollout-restart image of the same target could not be " +
				"resolved this tick",
			decision: DecisionWaiting,
			writes:   "nothing but the status annotation (on the transition; a steady wait writes nothing)",
			plan:     one(pending(deployment(annotated(jobsManagerKey, tableA))), restartImage(), nil),
			check:    statusOnly,
		},
		{
			action:   "unchanged",
			state:    "the rollout this image's last change started (recorded in its status) has not completed",
			decision: DecisionWaiting,
			writes:   "the status annotation, on the transition",
			plan: one(pending(deployment(annotated(jobsManagerKey, tableR,
				statusKey("jobs-manager"), status(
					Status{
						State:      StateOK,
						Since:      "2026-07-01T11:55:00Z",
						Digest:     tableR,
						Generation: 2,
						Applied:    "2026-07-01T11:55:00Z",
					},
				)))), restartImage(), nil),
			check: statusOnly,
		},
		{
			action:   "waiting",
			state:    "waiting longer than `spec.waitTimeout` (since the status's `waitingSince`)",
			decision: DecisionFailed,
			writes:   "the status annotation, once (the transition)",
			plan: one(pending(deployment(annotated(jobsManagerKey, tableA,
				statusKey("jobs-manager"), status(
					Status{
						State:        StateWaiting,
						Since:        "2026-07-01T10:00:00Z",
						WaitingSince: "2026-07-01T10:00:00Z",
						Error:        "its rollout is not complete",
					},
				)))), restartImage(), nil),
			check: statusOnly,
		},
		{
			action:   "restart, fill, update-env, update-image",
			state:    "R first seen less than `images[].soak` ago",
			decision: DecisionSoaking,
			writes:   "the status only (pending digest, first seen); nothing while it soaks on",
			plan: func() (*appsv1.Deployment, []targetImage, tickSettings) {
				img := restartImage()
				img.Soak = config.Duration(time.Hour)
				return one(deployment(annotated(jobsManagerKey, tableA)), img, nil)()
			},
			check: statusOnly,
		},
		{
			action:   "restart, fill, update-env, update-image",
			state:    "`spec.platforms` set and R lacks one",
			decision: DecisionFailed,
			reason:   registry.ReasonPlatformMissing,
			writes:   "the status only; reason `platform-missing`, the error names the missing platforms",
			plan: one(deployment(annotated(jobsManagerKey, tableA)), restartImage(),
				fmt.Errorf(
					"gate: %w",
					&registry.PlatformError{
						Reference: "docker.io/tracebloc/jobs-manager:prod",
						Digest:    tableR,
						Missing:   []string{"linux/arm64"},
						Have:      []string{"linux/amd64"},
					},
				)),
			check: statusOnly,
		},
		{
			action: "any",
			state: "the registry's GET (no digest on the HEAD) answers no manifest — a captive portal's page, " +
				"a schema-1 manifest — or anything larger than the refresher reads",
			decision: DecisionFailed,
			reason:   registry.ReasonNotAManifest,
			writes: "the status only; reason `not-a-manifest` naming the content type (or `too-large`); " +
				"no digest is taken from a header",
			plan: one(deployment(annotated(jobsManagerKey, tableA)), restartImage(),
				fmt.Errorf(
					"resolving: GET failed: %w",
					&registry.NotManifestError{ContentType: "text/html", Detail: "not one of the manifest types asked for"},
				)),
			check: statusOnly,
		},
		{
			action:   "restart, fill, update-env, update-image",
			state:    "`spec.verification` set, the image not `verify: false`, and no signature of R by a trusted key is found",
			decision: DecisionFailed,
			reason:   signature.ReasonMissing,
			writes: "the status only (`refused`), reason `signature-missing`; Event `VerificationFailed` naming R and the " +
				"keys tried",
			plan: one(deployment(annotated(jobsManagerKey, tableA)), restartImage(),
				&signature.Error{
					Reason:     signature.ReasonMissing,
					Digest:     tableR,
					Repository: "docker.io/tracebloc/jobs-manager",
					Keys:       []string{"release.pub"},
				}),
			check: statusOnly,
		},
		{
			action: "restart, fill, update-env, update-image",
			state: "`spec.verification` set and signatures of R exist but none verifies (wrong key, " +
				"tampered payload or signature, signed for another digest, a `.sig` payload naming another repository)",
			decision: DecisionFailed,
			reason:   signature.ReasonInvalid,
			writes:   "the status only (`refused`), reason `signature-invalid`; Event `VerificationFailed`",
			plan: one(deployment(annotated(jobsManagerKey, tableA)), restartImage(),
				&signature.Error{
					Reason:     signature.ReasonInvalid,
					Digest:     tableR,
					Repository: "docker.io/tracebloc/jobs-manager",
					Keys:       []string{"release.pub"},
				}),
			check: statusOnly,
		},
		{
			action: "set-env",
			state: "the rollout of the digest last applied failed, a previous digest is recorded, " +
				"the registry serves it in the image's repository and, with `spec.verification`, a trusted key signed it",
			decision: DecisionRolledBack,
			writes:   "L=A=previous digest in one patch, digest quarantined",
			plan: one(stalled(deployment(annotated(ingestorKey, tableR,
				statusKey("ingestor"), status(
					Status{
						State:      StateOK,
						Since:      "2026-07-01T11:00:00Z",
						Digest:     tableR,
						Generation: 2,
						Applied:    "2026-07-01T11:00:00Z",
						Previous:   tableA,
					},
				)), env(tableR))), envImage(), nil),
			check: contains(`"name":"`+ingestorEnv+`","value":"`+tableA+`"`, `"`+ingestorKey+`":"`+tableA+`"`),
		},
		{
			action:   "set-image",
			state:    "as above: the rollout of the digest last applied failed, a previous digest recorded, served (and signed)",
			decision: DecisionRolledBack,
			writes:   "the container's `image` = repository@previous, A=previous in one patch, digest quarantined",
			plan: one(stalled(pinned(deployment(annotated(jobsManagerKey, tableR,
				statusKey("jobs-manager"), status(
					Status{
						State:      StateOK,
						Since:      "2026-07-01T11:00:00Z",
						Digest:     tableR,
						Generation: 2,
						Applied:    "2026-07-01T11:00:00Z",
						Previous:   tableA,
					},
				))), tableR)), pinImage(), nil),
			check: contains(`"image":"docker.io/tracebloc/jobs-manager@`+tableA+`"`, `"`+jobsManagerKey+`":"`+tableA+`"`),
		},
		{
			action:   "rollout-restart (or set-env, set-image without such a previous digest)",
			state:    "the rollout of the digest last applied failed",
			decision: DecisionQuarantined,
			writes:   "the status only; Event: the workload needs a human",
			plan: one(stalled(deployment(annotated(jobsManagerKey, tableR,
				statusKey("jobs-manager"), status(
					Status{
						State:      StateOK,
						Since:      "2026-07-01T11:00:00Z",
						Digest:     tableR,
						Generation: 2,
						Applied:    "2026-07-01T11:00:00Z",
					},
				)))), restartImage(), nil),
			check: statusOnly,
		},
		{
			action:   "any",
			state:    "R is the quarantined digest, recorded at the Deployment's generation (nobody else wrote it since)",
			decision: DecisionQuarantined,
			writes:   "nothing (the tag must move)",
			plan: one(deployment(annotated(jobsManagerKey, tableA,
				statusKey("jobs-manager"), status(Status{
					State:       StateQuarantined,
					Since:       "2026-07-01T11:00:00Z",
					Digest:      tableA,
					Generation:  1,
					Quarantined: tableR,
				}))), restartImage(), nil),
		},
		{
			action: "any",
			state: "R is quarantined at another generation (a hand-written quarantine, " +
				"or another writer changed the Deployment since)",
			decision: DecisionRestart,
			writes:   "as if not quarantined: a rollout whose failure quarantines R again",
			plan: one(deployment(annotated(jobsManagerKey, tableA,
				statusKey("jobs-manager"), status(Status{
					State:       StateQuarantined,
					Since:       "2026-07-01T11:00:00Z",
					Digest:      tableA,
					Generation:  7,
					Quarantined: tableR,
				}))), restartImage(), nil),
			check: contains(`"` + jobsManagerKey + `":"` + tableR + `"`),
		},
	}
}

// stalled is a rollout at generation 2 the controller gave up on (ProgressDeadlineExceeded).
func stalled(dep *appsv1.Deployment) *appsv1.Deployment {
	dep = pending(dep)
	dep.Status.Conditions = []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
			LastUpdateTime: metav1.NewTime(tableNow)},
	}
	return dep
}

// TestDecisionTable proves every row of docs/refresher.md's decision table, and writes the
// table: docs and decisions cannot drift (go test ./refresher -run TestDecisionTable -update).
func TestDecisionTable(t *testing.T) {
	var table strings.Builder
	table.WriteString("| Action | State | Decision | Writes |\n|---|---|---|---|\n")
	for _, row := range decisionRows() {
		fmt.Fprintf(&table, "| %s | %s | `%s` | %s |\n", row.action, row.state, row.decision, row.writes)
		t.Run(string(row.decision)+" "+row.state, func(t *testing.T) {
			if row.run != nil {
				if got := row.run(t); got.Decision != row.decision {
					t.Fatalf("decision %s (%v), want %s", got.Decision, got.Err, row.decision)
				}
				return
			}
			dep, images, settings := row.plan()
			patch, err := planTarget(dep, images, settings)
			if err != nil {
				t.Fatal(err)
			}
			rep := images[0].report
			if rep.Decision != row.decision || (row.reason != "" && rep.Reason != row.reason) {
				t.Fatalf(
					"decision %s (err %v, reason %q), want %s (reason %q)",
					rep.Decision,
					rep.Err,
					rep.Reason,
					row.decision,
					row.reason,
				)
			}
			switch {
			case row.check == nil && patch != nil:
				t.Errorf("the row writes nothing, yet the patch is %s", patch)
			case row.check != nil && patch == nil:
				t.Errorf("the row writes, yet there is no patch")
			case row.check != nil:
				row.check(t, string(patch))
			}
		})
	}
	golden.Section(
		t,
		filepath.Join("..", "docs", "refresher.md"),
		"decision-table",
		"go test ./refresher -run TestDecisionTable",
		table.String(),
	)
}
