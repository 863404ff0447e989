package refresher

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

func TestDecideRun(t *testing.T) {
	now := time.Date(2026, time.July, 1, 12, 0, 0, 0, time.UTC)
	at := func(s string) *metav1.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Time{Time: tm}
	}
	i64 := func(v int64) *int64 { return &v }
	str := func(v string) *string { return &v }
	yes := true
	// cronJob is the injected CronJob under the default schedule and deadlines (300 s to start,
	// 600 s to run: a run scheduled at t may succeed until t+15m), created on 1 June.
	type edit func(*batchv1.CronJob)
	cronJob := func(edits ...edit) *batchv1.CronJob {
		cj := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{
				Name:              "stg-image-refresh",
				Namespace:         "tracebloc",
				CreationTimestamp: *at("2026-06-01T00:00:00Z"),
			},
			Spec: batchv1.CronJobSpec{Schedule: config.DefaultSchedule, StartingDeadlineSeconds: i64(300),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{ActiveDeadlineSeconds: i64(600)}}},
		}
		for _, e := range edits {
			e(cj)
		}
		return cj
	}
	succeeded := func(s string) edit { return func(cj *batchv1.CronJob) { cj.Status.LastSuccessfulTime = at(s) } }
	scheduled := func(s string) edit { return func(cj *batchv1.CronJob) { cj.Status.LastScheduleTime = at(s) } }
	created := func(s string) edit { return func(cj *batchv1.CronJob) { cj.CreationTimestamp = *at(s) } }
	schedule := func(s string) edit { return func(cj *batchv1.CronJob) { cj.Spec.Schedule = s } }
	noDeadlines := func(cj *batchv1.CronJob) {
		cj.Spec.StartingDeadlineSeconds, cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds = nil, nil
	}
	forbidden := apierrors.NewForbidden(batchv1.Resource("cronjobs"), "stg-image-refresh", errors.New("no get"))
	notFound := apierrors.NewNotFound(batchv1.Resource("cronjobs"), "stg-image-refresh")

	for _, tc := range []struct {
		name     string
		cj       *batchv1.CronJob
		err      error
		schedule string     // the config's; default DefaultSchedule
		job      config.Job // the config's spec.job
		stale    bool
		lastTick string
		note     string // a substring of the note; "" wants none unless stale
	}{
		// Reading the CronJob.
		{
			name:  "not found: nothing runs the refresher",
			err:   notFound,
			stale: true,
			note:  "CronJob tracebloc/stg-image-refresh not found",
		},
		{name: "forbidden is no evidence", err: forbidden, note: "last tick unknown (grant get on cronjobs.batch to see it)"},
		{
			name: "any other error is no evidence",
			err:  context.DeadlineExceeded,
			note: "last tick unknown: reading CronJob tracebloc/stg-image-refresh: context deadline exceeded",
		},

		// Suspended, whatever its times.
		{
			name:     "suspended",
			cj:       cronJob(succeeded("2026-07-01T11:40:00Z"), func(cj *batchv1.CronJob) { cj.Spec.Suspend = &yes }),
			stale:    true,
			lastTick: "2026-07-01T11:40:00Z",
			note:     "is suspended (spec.suspend): the refresher does not run; last successful tick 2026-07-01T11:40:00Z",
		},
		{
			name:  "suspended, never succeeded",
			cj:    cronJob(func(cj *batchv1.CronJob) { cj.Spec.Suspend = &yes }),
			stale: true,
			note:  "no successful tick recorded",
		},
		{
			name:     "suspend false",
			cj:       cronJob(succeeded("2026-07-01T11:40:00Z"), func(cj *batchv1.CronJob) { f := false; cj.Spec.Suspend = &f }),
			lastTick: "2026-07-01T11:40:00Z",
		},

		// Runs due after the last success (07, 22, 37, 52; until 11:45 counts at 12:00).
		{
			name:     "the last run succeeded",
			cj:       cronJob(succeeded("2026-07-01T11:40:00Z"), scheduled("2026-07-01T11:37:00Z")),
			lastTick: "2026-07-01T11:40:00Z",
		},
		{
			name:     "two runs missed: still a blip",
			cj:       cronJob(succeeded("2026-07-01T11:07:00Z")),
			lastTick: "2026-07-01T11:07:00Z",
		},
		{
			name:     "three runs missed",
			cj:       cronJob(succeeded("2026-07-01T11:06:59Z"), scheduled("2026-07-01T11:37:00Z")),
			stale:    true,
			lastTick: "2026-07-01T11:06:59Z",
			note: `CronJob tracebloc/stg-image-refresh: no successful tick since 2026-07-01T11:06:59Z, ` +
				`3 or more scheduled runs ("7,22,37,52 * * * *") ago; last scheduled 2026-07-01T11:37:00Z`,
		},
		{
			name:     "a soak that ended 30 days ago",
			cj:       cronJob(succeeded("2026-06-01T09:00:00Z"), scheduled("2026-06-01T08:52:00Z")),
			stale:    true,
			lastTick: "2026-06-01T09:00:00Z",
			note:     "last scheduled 2026-06-01T08:52:00Z",
		},
		{
			name:     "a run still within its deadlines does not count",
			cj:       cronJob(succeeded("2026-07-01T11:21:00Z")),
			lastTick: "2026-07-01T11:21:00Z",
		},
		{
			name:     "without deadlines the run counts when due",
			cj:       cronJob(succeeded("2026-07-01T11:21:00Z"), noDeadlines),
			stale:    true,
			lastTick: "2026-07-01T11:21:00Z",
		},
		{
			name:     "the config's deadlines stand in for unset ones",
			cj:       cronJob(succeeded("2026-07-01T11:21:00Z"), noDeadlines),
			job:      config.Job{StartingDeadlineSeconds: i64(300), ActiveDeadlineSeconds: i64(600)},
			lastTick: "2026-07-01T11:21:00Z",
		},
		{
			name:     "a success in the future (clock skew) is recent",
			cj:       cronJob(succeeded("2026-07-01T13:00:00Z")),
			lastTick: "2026-07-01T13:00:00Z",
		},

		// Never succeeded: from the creation.
		{name: "new install, no tick yet", cj: cronJob(created("2026-07-01T11:30:00Z"))},
		{
			name:  "never succeeded while scheduled: the image cannot be pulled",
			cj:    cronJob(scheduled("2026-07-01T11:52:00Z")),
			stale: true,
			note:  "no successful tick since it was created 2026-06-01T00:00:00Z, 3 or more scheduled runs",
		},
		{
			name:  "last schedule time is not a tick",
			cj:    cronJob(created("2026-07-01T10:00:00Z"), scheduled("2026-07-01T11:52:00Z")),
			stale: true,
			note:  "last scheduled 2026-07-01T11:52:00Z",
		},
		{name: "never scheduled", cj: cronJob(), stale: true, note: "; never scheduled"},
		{
			name: "no creation time, no success: nothing to count from",
			cj:   cronJob(func(cj *batchv1.CronJob) { cj.CreationTimestamp = metav1.Time{} }),
		},

		// Schedules.
		{
			name:     "a schedule years apart is not stale after a day",
			cj:       cronJob(schedule("0 0 29 2 *"), succeeded("2026-06-30T12:00:00Z")),
			lastTick: "2026-06-30T12:00:00Z",
		},
		{
			name:     "a schedule years apart, three leap days missed",
			cj:       cronJob(schedule("0 0 29 2 *"), succeeded("2015-01-01T00:00:00Z")),
			stale:    true,
			lastTick: "2015-01-01T00:00:00Z",
		},
		{
			name:     "a schedule no date matches never turns stale",
			cj:       cronJob(schedule("0 0 30 2 *"), succeeded("2020-01-01T00:00:00Z")),
			lastTick: "2020-01-01T00:00:00Z",
		},
		{
			name:     "every minute",
			cj:       cronJob(schedule("* * * * *"), noDeadlines, succeeded("2026-07-01T11:57:00Z")),
			stale:    true,
			lastTick: "2026-07-01T11:57:00Z",
		},
		{
			name:     "every minute, two missed",
			cj:       cronJob(schedule("* * * * *"), noDeadlines, succeeded("2026-07-01T11:58:00Z")),
			lastTick: "2026-07-01T11:58:00Z",
		},
		{
			name:     "an unparsable CronJob schedule: the config's",
			cj:       cronJob(schedule("61 * * * *"), succeeded("2026-07-01T11:21:00Z"), noDeadlines),
			schedule: "0 * * * *",
			lastTick: "2026-07-01T11:21:00Z",
		},
		{
			name:     "neither schedule parses",
			cj:       cronJob(schedule("nonsense"), succeeded("2026-07-01T11:21:00Z")),
			schedule: "nonsense",
			lastTick: "2026-07-01T11:21:00Z",
			note:     `last tick unknown: CronJob tracebloc/stg-image-refresh: schedule "nonsense"`,
		},
		{
			name: "an unknown time zone counts in UTC",
			cj: cronJob(
				succeeded("2026-07-01T11:06:59Z"),
				func(cj *batchv1.CronJob) { cj.Spec.TimeZone = str("Nowhere/Atlantis") },
			),
			stale:    true,
			lastTick: "2026-07-01T11:06:59Z",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sched := tc.schedule
			if sched == "" {
				sched = config.DefaultSchedule
			}
			v := decideRun(
				runCheck{Name: "tracebloc/stg-image-refresh", CronJob: tc.cj, Err: tc.err, Schedule: sched, Job: tc.job, Now: now},
			)
			lastTick := ""
			if !v.LastTick.IsZero() {
				lastTick = v.LastTick.Format(time.RFC3339)
			}
			if v.Stale != tc.stale || lastTick != tc.lastTick {
				t.Errorf("stale %v, last tick %q; want %v, %q (note %q)", v.Stale, lastTick, tc.stale, tc.lastTick, v.Note)
			}
			// A stale verdict always says why; a fresh one only when the last tick is unknown.
			if wantNote := tc.note != "" || tc.stale; wantNote != (v.Note != "") || !strings.Contains(v.Note, tc.note) {
				t.Errorf("note %q, want one containing %q", v.Note, tc.note)
			}
		})
	}
}

// The CronJob's spec.timeZone moves its runs: daily at 09:00 in New York is 13:00 UTC in July.
func TestDecideRunTimeZone(t *testing.T) {
	if _, err := time.LoadLocation("America/New_York"); err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	now := time.Date(2026, time.July, 4, 12, 30, 0, 0, time.UTC)
	run := func(success, tz string) bool {
		s, _ := time.Parse(time.RFC3339, success)
		cj := &batchv1.CronJob{
			Spec:   batchv1.CronJobSpec{Schedule: "0 9 * * *"},
			Status: batchv1.CronJobStatus{LastSuccessfulTime: &metav1.Time{Time: s}},
		}
		if tz != "" {
			cj.Spec.TimeZone = &tz
		}
		return decideRun(runCheck{Name: "ns/cj", CronJob: cj, Now: now}).Stale
	}
	if !run("2026-07-01T14:00:00Z", "") {
		t.Error("UTC: 09:00 on 2, 3 and 4 July missed; want stale")
	}
	if run("2026-07-01T14:00:00Z", "America/New_York") {
		t.Error("New York: 13:00 UTC on 2 and 3 July missed, 4 July not yet due; want not stale")
	}
}
