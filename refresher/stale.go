package refresher

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tracebloc/image-refresh/internal/config"
)

// staleAfterRuns is how many of the CronJob's scheduled runs may come and go without a
// successful tick before the status view calls the refresher stale. One failed or missed run is
// ordinary and the next tick catches up: a registry 5xx or 429 fails the Job (the refresher
// exits 1 when an image fails), a node drain kills the pod, a controller-manager down longer than
// startingDeadlineSeconds skips a run. Three in a row — 45 minutes under the default schedule —
// is a refresher that stopped (an image that cannot be pulled, a Role removed, a crash), not a
// blip, and is still well inside the hour after which a stuck soak or wait starts to matter.
const staleAfterRuns = 3

// runCheck is what the status view knows of the refresher's runs: its CronJob (named after the
// config, in the config's namespace), read once per view, or the error reading it.
type runCheck struct {
	// Name is the CronJob, namespace/name.
	Name    string
	CronJob *batchv1.CronJob
	Err     error
	// Schedule is the config's, used when the CronJob's own does not parse.
	Schedule string
	// Job is the config's spec.job: its deadlines stand in for the CronJob's when unset there.
	Job config.Job
	Now time.Time
}

// runVerdict is the decision on a runCheck.
type runVerdict struct {
	// Stale: positive evidence that the refresher has not completed a tick for staleAfterRuns
	// scheduled runs (or will not run at all: suspended, no CronJob). The recorded states are
	// then not being acted on.
	Stale bool
	// LastTick is the last successful tick (the CronJob's status.lastSuccessfulTime); zero
	// when none is recorded or the CronJob could not be read.
	LastTick time.Time
	// Note says why the refresher is stale or why its last tick is unknown; empty otherwise.
	Note string
}

// decideRun is the staleness rule, pure. In order:
//   - the CronJob cannot be read: not found is stale (nothing runs the refresher); any other
//     error (403 without get on cronjobs, a timeout) is no evidence — not stale, the last tick
//     unknown;
//   - spec.suspend: stale (a suspended CronJob never runs);
//   - otherwise count the scheduled runs (the CronJob's spec.schedule in its spec.timeZone, UTC
//     when unset or unknown here; the config's schedule when the CronJob's does not parse) that
//     fell after the last successful tick and whose time to succeed (startingDeadlineSeconds +
//     activeDeadlineSeconds) is over: staleAfterRuns of them is stale. The last successful tick is
//     status.lastSuccessfulTime; a CronJob that never succeeded counts from its creation, so a new
//     install has its grace and a refresher whose image never pulled still turns stale.
//     status.lastScheduleTime is never the reference: ticks that are scheduled but never
//     succeed (an image that cannot be pulled, a removed Role, a crash) keep it fresh. It is
//     named in the note, to tell "not scheduled" from "scheduled but failing".
//
// Counting runs rather than comparing with a fixed period keeps irregular schedules right: a
// schedule a year apart is not stale a few minutes after its last run.
func decideRun(c runCheck) runVerdict {
	if c.Err != nil {
		if apierrors.IsNotFound(c.Err) {
			return runVerdict{Stale: true, Note: fmt.Sprintf("CronJob %s not found: nothing runs the refresher", c.Name)}
		}
		hint := ""
		if apierrors.IsForbidden(c.Err) {
			hint = " (grant get on cronjobs.batch to see it)"
		}
		return runVerdict{Note: fmt.Sprintf("last tick unknown%s: reading CronJob %s: %v", hint, c.Name, c.Err)}
	}
	cj := c.CronJob
	if cj == nil {
		return runVerdict{Note: fmt.Sprintf("last tick unknown: no CronJob %s read", c.Name)}
	}
	v := runVerdict{}
	if t := cj.Status.LastSuccessfulTime; t != nil {
		v.LastTick = t.UTC()
	}
	last := "no successful tick recorded"
	if !v.LastTick.IsZero() {
		last = "last successful tick " + v.LastTick.Format(time.RFC3339)
	}
	scheduled := "never scheduled"
	if t := cj.Status.LastScheduleTime; t != nil {
		scheduled = "last scheduled " + t.UTC().Format(time.RFC3339)
	}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		v.Stale, v.Note = true,
			fmt.Sprintf("CronJob %s is suspended (spec.suspend): the refresher does not run; %s", c.Name, last)
		return v
	}
	from, since := v.LastTick, v.LastTick.Format(time.RFC3339)
	if from.IsZero() {
		from = cj.CreationTimestamp.UTC()
		since = "it was created " + from.Format(time.RFC3339)
	}
	if from.IsZero() {
		return v // no creation time either: nothing to count from
	}
	schedule, sched, err := cronJobSchedule(cj.Spec.Schedule, c.Schedule)
	if err != nil {
		v.Note = fmt.Sprintf("last tick unknown: CronJob %s: schedule %q: %v", c.Name, cj.Spec.Schedule, err)
		return v
	}
	loc := time.UTC
	if tz := cj.Spec.TimeZone; tz != nil && *tz != "" {
		if l, err := time.LoadLocation(*tz); err == nil {
			loc = l
		}
	}
	missed := missedRuns(sched, from.In(loc), c.Now.Add(-runSlack(cj, c.Job)), staleAfterRuns)
	if missed >= staleAfterRuns {
		v.Stale, v.Note = true, fmt.Sprintf("CronJob %s: no successful tick since %s, %d or more scheduled runs (%q) ago; %s",
			c.Name, since, staleAfterRuns, schedule, scheduled)
	}
	return v
}

// cronJobSchedule parses the CronJob's schedule, else the config's; it returns the one used.
func cronJobSchedule(live, configured string) (string, cron.Schedule, error) {
	sched, err := cron.ParseStandard(live)
	if err == nil {
		return live, sched, nil
	}
	if s, err := cron.ParseStandard(configured); err == nil {
		return configured, s, nil
	}
	return live, nil, err
}

// missedRuns counts the schedule's runs after from and not after until, stopping at limit.
func missedRuns(sched cron.Schedule, from, until time.Time, limit int) int {
	n := 0
	// robfig/cron returns the zero time for a schedule no date matches.
	for t := sched.Next(from); n < limit && !t.IsZero() && !t.After(until); t = sched.Next(t) {
		n++
	}
	return n
}

// runSlack is how long after its scheduled time a run may still succeed: the CronJob's
// startingDeadlineSeconds plus its Jobs' activeDeadlineSeconds, each the config's spec.job value
// when the CronJob leaves it unset.
func runSlack(cj *batchv1.CronJob, job config.Job) time.Duration {
	seconds := func(live, configured *int64) time.Duration {
		switch {
		case live != nil && *live > 0:
			return time.Duration(*live) * time.Second
		case configured != nil && *configured > 0:
			return time.Duration(*configured) * time.Second
		}
		return 0
	}
	return seconds(cj.Spec.StartingDeadlineSeconds, job.StartingDeadlineSeconds) +
		seconds(cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds, job.ActiveDeadlineSeconds)
}
