package refresher

import (
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestOtherWriters(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	earlier := metav1.NewTime(at.Add(-time.Hour))
	entry := func(manager, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, Time: &at,
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(fields)}
	}
	before := func(e metav1.ManagedFieldsEntry) metav1.ManagedFieldsEntry { e.Time = &earlier; return e }
	audit := `{"f:metadata":{"f:annotations":{"f:` + ingestorKey + `":{}}}}`
	keys := []string{ingestorKey, statusKey("ingestor")}
	for _, tc := range []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    []string
	}{
		{"only the refresher", []metav1.ManagedFieldsEntry{entry("image-refresh", audit)}, nil},
		{
			"helm owns the template, not the annotations",
			[]metav1.ManagedFieldsEntry{entry("helm", `{"f:spec":{"f:replicas":{}}}`)},
			nil,
		},
		{
			"a hand edit after the refresher's last write",
			[]metav1.ManagedFieldsEntry{before(entry("image-refresh", audit)), entry("kubectl-annotate", audit)},
			[]string{"kubectl-annotate (Update at 2026-07-01T12:00:00Z): [" + ingestorKey + "]"},
		},
		{"another refresher writes the status too", []metav1.ManagedFieldsEntry{entry("old-refresh-script",
			`{"f:metadata":{"f:annotations":{"f:`+ingestorKey+`":{},"f:`+statusKey("ingestor")+`":{},"f:other":{}}}}`)},
			[]string{"old-refresh-script (Update at 2026-07-01T12:00:00Z): [" + ingestorKey + " " + statusKey("ingestor") +
				"]"}},
		{
			"the migrated script's old ownership, before the refresher wrote",
			[]metav1.ManagedFieldsEntry{before(entry("old-script", audit)), entry("image-refresh", audit)},
			nil,
		},
		{
			"written in the same second as the refresher: not later",
			[]metav1.ManagedFieldsEntry{entry("image-refresh", audit), entry("kubectl-annotate", audit)},
			nil,
		},
		{
			"the migrated script's old ownership, the refresher never wrote: older than the window",
			[]metav1.ManagedFieldsEntry{before(entry("old-script", audit))},
			nil,
		},
		{"unreadable fields are skipped", []metav1.ManagedFieldsEntry{entry("x", `{`)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := otherWriters(
				&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{ManagedFields: tc.entries}},
				keys,
				at.Add(-30*time.Minute),
			)
			if !slices.Equal(got, tc.want) {
				t.Errorf("otherWriters = %q, want %q", got, tc.want)
			}
		})
	}
}

// A tick on a target whose audit annotation another manager wrote logs who, and writes nothing
// more for it: a steady target stays unwritten.
func TestRunWarnsOfOtherWriters(t *testing.T) {
	at := metav1.NewTime(clock)
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, e := f.current()
		dep := deployment(annotations, e)
		dep.ManagedFields = []metav1.ManagedFieldsEntry{
			{
				Manager:    "kubectl-annotate",
				Operation:  metav1.ManagedFieldsOperationUpdate,
				Time:       &at,
				FieldsType: "FieldsV1",
				FieldsV1:   metav1.NewFieldsV1(`{"f:metadata":{"f:annotations":{"f:` + ingestorKey + `":{}}}}`),
			},
		}
		return dep
	})
	if _, patches := f.safeTick(t, clock); len(patches) != 0 {
		t.Errorf("a steady target was written: %q", patches)
	}
	var warned bool
	for line := range strings.Lines(f.logs.String()) {
		warned = warned ||
			strings.Contains(line, `"level":"WARN","msg":"another writer changed the refresher's annotations`) &&
				strings.Contains(line, "kubectl-annotate (Update at 2026-07-01T12:00:00Z)")
	}
	if !warned {
		t.Errorf("no warning naming kubectl-annotate; log:\n%s", f.logs.String())
	}
}
