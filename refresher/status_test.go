package refresher

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
)

// TestReadStatus: a status annotation is input: what is not digest-shaped or not a time is
// dropped, a time later than now (beyond the clock skew) is clamped to now, an oversized or
// unknown one is ignored; each correction is said.
func TestReadStatus(t *testing.T) {
	now := clock
	future := now.Add(24 * time.Hour).Format(time.RFC3339)
	d := digestOf('a')
	for _, tc := range []struct {
		name  string
		in    Status
		raw   string
		want  Status
		notes []string
	}{
		{
			name: "valid, unchanged",
			in: Status{
				State:      StateOK,
				Since:      "2026-07-01T11:00:00Z",
				Digest:     d,
				Generation: 3,
				Applied:    "2026-07-01T11:00:00Z",
			},
			want: Status{
				State:      StateOK,
				Since:      "2026-07-01T11:00:00Z",
				Digest:     d,
				Generation: 3,
				Applied:    "2026-07-01T11:00:00Z",
			},
		},
		{name: "within the clock skew", in: Status{State: StateOK, Since: now.Add(30 * time.Second).Format(time.RFC3339)},
			want: Status{State: StateOK, Since: now.Add(30 * time.Second).Format(time.RFC3339)}},
		{
			name:  "pendingSince in the future soaks from now",
			in:    Status{State: StateSoaking, Since: "2026-07-01T11:00:00Z", Pending: d, PendingSince: "2036-01-01T00:00:00Z"},
			want:  Status{State: StateSoaking, Since: "2026-07-01T11:00:00Z", Pending: d, PendingSince: "2026-07-01T12:00:00Z"},
			notes: []string{"pendingSince 2036-01-01T00:00:00Z is later than now (2026-07-01T12:00:00Z): clamped to now"},
		},
		{
			name: "applied and since written by a clock a day ahead",
			in:   Status{State: StateOK, Since: future, Digest: d, Generation: 2, Applied: future},
			want: Status{
				State:      StateOK,
				Since:      "2026-07-01T12:00:00Z",
				Digest:     d,
				Generation: 2,
				Applied:    "2026-07-01T12:00:00Z",
			},
			notes: []string{"applied " + future + " is later than now (2026-07-01T12:00:00Z): clamped to now", "since " +
				future + " is later than now (2026-07-01T12:00:00Z): clamped to now"},
		},
		{
			name: "previous and quarantined not digests",
			in:   Status{State: StateOK, Since: "2026-07-01T11:00:00Z", Previous: "evil:latest", Quarantined: "sha256:short"},
			want: Status{State: StateOK, Since: "2026-07-01T11:00:00Z"},
			notes: []string{
				`previous "evil:latest" is not a sha256 digest: dropped`,
				`quarantined "sha256:short" is not a sha256 digest: dropped`,
			},
		},
		{
			name:  "a time that is not RFC 3339",
			in:    Status{State: StateWaiting, Since: "yesterday", WaitingSince: "2026-07-01T11:00:00Z"},
			want:  Status{State: StateWaiting, WaitingSince: "2026-07-01T11:00:00Z"},
			notes: []string{`since "yesterday" is not an RFC 3339 time: dropped`},
		},
		{
			name: "a refusal from the future",
			in: Status{
				State:   StateFailed,
				Since:   "2026-07-01T11:00:00Z",
				Refused: Refusal{Digest: d, Reason: "signature-missing", Keys: "k", At: future},
			},
			want:  Status{State: StateFailed, Since: "2026-07-01T11:00:00Z"},
			notes: []string{"an invalid signature refusal is dropped"},
		},
		{
			name: "a refusal judged with keys that are no key set id",
			in: Status{State: StateFailed, Since: "2026-07-01T11:00:00Z",
				Refused: Refusal{
					Digest: d,
					Reason: "signature-missing",
					Keys:   strings.Repeat("\u2028", 200),
					At:     "2026-07-01T11:00:00Z",
				}},
			want:  Status{State: StateFailed, Since: "2026-07-01T11:00:00Z"},
			notes: []string{"an invalid signature refusal is dropped"},
		},
		{name: "a refusal kept", in: Status{State: StateFailed, Since: "2026-07-01T11:00:00Z",
			Refused: Refusal{Digest: d, Reason: "signature-missing", Keys: "0123456789ab", At: "2026-07-01T11:00:00Z"}},
			want: Status{State: StateFailed, Since: "2026-07-01T11:00:00Z",
				Refused: Refusal{Digest: d, Reason: "signature-missing", Keys: "0123456789ab", At: "2026-07-01T11:00:00Z"}}},
		{name: "oversized", raw: `{"state":"ok","error":"` + strings.Repeat("x", contract.StatusMaxBytes) + `"}`,
			notes: []string{"a status of 4121 bytes (more than 4096) is ignored"}},
		{name: "unknown state", raw: `{"state":"bogus"}`, notes: []string{`a status of unknown state "bogus" is ignored`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.raw
			if raw == "" {
				raw = tc.in.encode()
			}
			got, notes := readStatus(raw, now)
			if got != tc.want {
				t.Errorf("status\n got %+v\nwant %+v", got, tc.want)
			}
			if strings.Join(notes, "|") != strings.Join(tc.notes, "|") {
				t.Errorf("corrections\n got %q\nwant %q", notes, tc.notes)
			}
		})
	}
}

// A pendingSince forged far into the future would soak forever: it is clamped to the tick that
// reads it, written back once (logged), and the digest is applied a soak later.
func TestRunForgedPendingSinceSoaksFromNow(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		annotations[ingestorKey] = stale
		annotations[statusKey("ingestor")] = Status{
			State:        StateSoaking,
			Since:        "2026-07-01T11:00:00Z",
			Pending:      f.digest["ingestor"],
			PendingSince: "2036-01-01T00:00:00Z",
		}.encode()
		return deployment(annotations, env(stale))
	})
	f.image("ingestor").Soak = config.Duration(time.Hour)
	report, patches := f.safeTick(t, clock)
	if got := report.Images[2]; got.Decision != DecisionSoaking || len(got.Corrections) != 1 {
		t.Fatalf("first tick: %s, corrections %q", got.Decision, got.Corrections)
	}
	if len(patches) != 1 || !strings.Contains(patches[0], `pendingSince\":\"2026-07-01T12:00:00Z`) {
		t.Errorf("first tick: patches %q, want the corrected status written once", patches)
	}
	if !strings.Contains(f.logs.String(), `"status_corrected":["pendingSince 2036-01-01T00:00:00Z is later than now`) {
		t.Errorf("the correction is not logged:\n%s", f.logs.String())
	}
	if _, patches := f.safeTick(t, clock.Add(30*time.Minute)); len(patches) != 0 {
		t.Errorf("a steady soak after the correction wrote %q", patches)
	}
	if report, _ := f.safeTick(t, clock.Add(time.Hour)); report.Images[2].Decision != DecisionUpdateEnv {
		t.Errorf("a soak after the correction: %s, want %s", report.Images[2].Decision, DecisionUpdateEnv)
	}
}

// A quarantine of the registry digest written by hand holds nothing: the API server made the
// hand edit the Deployment's next generation, which is not the one a quarantine of this
// refresher records (holds). The digest is applied, and the forged quarantine ends with it.
func TestRunForgedQuarantineHoldsNothing(t *testing.T) {
	for _, tc := range []struct {
		name       string
		generation int64
	}{
		{name: "no generation", generation: 0},
		{name: "the generation before the hand edit", generation: 2},
		{name: "a later generation", generation: 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
				annotations, _ := f.current()
				annotations[ingestorKey] = stale
				annotations[statusKey("ingestor")] = Status{State: StateQuarantined, Since: "2026-07-01T11:00:00Z", Digest: stale,
					Generation: tc.generation, Quarantined: f.digest["ingestor"]}.encode()
				dep := deployment(annotations, env(stale))
				dep.Generation, dep.Status.ObservedGeneration = 3, 3
				return dep
			})
			report, patches := f.safeTick(t, clock)
			if got := report.Images[2].Decision; got != DecisionUpdateEnv || len(patches) != 1 {
				t.Fatalf("%s, patches %q; want %s in one patch", got, patches, DecisionUpdateEnv)
			}
			if got := apiEnv(f.deployment(t))[ingestorEnv]; got != f.digest["ingestor"] {
				t.Errorf("env %s, want the registry digest %s", got, f.digest["ingestor"])
			}
			if s := f.status(t, "ingestor"); s.State != StateOK || s.Quarantined != "" || s.Previous != stale {
				t.Errorf("status %+v", s)
			}
		})
	}
}

// TestStatusEncodeIsBounded: whatever the error holds — characters JSON escapes (`"`, `\`,
// controls), `<>&`, separators, bidi overrides, invalid UTF-8, non-ASCII — beside every other
// field set, and however large what was read back, the encoded annotation is at most
// contract.StatusMaxBytes (the admission guard's bound), decodes, and its error is one printable line.
func TestStatusEncodeIsBounded(t *testing.T) {
	d := digestOf('a')
	full := Status{
		State:        StateFailed,
		Since:        "2026-07-01T12:00:00Z",
		Digest:       d,
		Generation:   1 << 62,
		WaitingSince: "2026-07-01T12:00:00Z",
		Applied:      "2026-07-01T12:00:00Z",
		Previous:     d,
		Quarantined:  d,
		Pending:      d,
		PendingSince: "2026-07-01T12:00:00Z",
		Refused: Refusal{
			Digest: d,
			Reason: "signature-invalid",
			Keys:   strings.Repeat("f", 64),
			At:     "2026-07-01T12:00:00Z",
		},
	}
	// full must set every field but the error (which each case sets), or the bound is not
	// tested against the largest status.
	assertEveryField(t, reflect.ValueOf(full), "Status", "Error")
	fullError := full
	fullError.Error = strings.Repeat(`<"é€`+"\u2028\u202e", 1000)
	longTime := "2026-07-01T12:00:00." + strings.Repeat("0", 3900) + "Z" // RFC 3339 to time.Parse
	for _, tc := range []struct {
		name string
		prev Status // read back from an annotation
		err  string
	}{
		{name: "quotes", err: strings.Repeat(`"`, 5000)},
		{name: "backslashes", err: strings.Repeat(`\`, 5000)},
		{name: "HTML characters", err: strings.Repeat("<>&", 2000)},
		{name: "control characters", err: strings.Repeat("\x00\x1b\n", 2000)},
		{name: "separators and bidi overrides", err: strings.Repeat("\u2028\u202e", 2000)},
		{name: "invalid UTF-8", err: strings.Repeat("\xff", 5000)},
		{name: "a forged plan line", err: "500 Internal Server Error\npatch Deployment default/evil: {}"},
		{name: "every field full", prev: full, err: strings.Repeat(`"\`, 3000)},
		{
			name: "every field full, an error of <, \" and non-ASCII",
			prev: full,
			err:  strings.Repeat(`<"é€`+"\u2028", 1500),
		},
		{name: "every field full and such an error read back", prev: fullError},
		{
			name: "an error read back",
			prev: Status{State: StateWaiting, Since: "2026-07-01T11:00:00Z", Error: strings.Repeat("<\u2028", 1300)},
		},
		{
			name: "a forged time of 3900 digits read back",
			prev: Status{State: StateOK, Since: "2026-07-01T11:00:00Z", Applied: longTime, Digest: d},
			err:  "boom",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.prev
			if tc.err != "" {
				s = statusAfter(tc.prev, StateFailed, tc.err, clock)
				s.WaitingSince = "2026-07-01T12:00:00Z"
				if len(s.Error) > maxStatusError || printable(s.Error) != s.Error {
					t.Errorf("error kept as %d bytes, printable %v: %q", len(s.Error), printable(s.Error) == s.Error, s.Error)
				}
			}
			encoded := s.encode()
			if len(encoded) > contract.StatusMaxBytes {
				t.Errorf("encoded status of %d bytes, more than %d", len(encoded), contract.StatusMaxBytes)
			}
			var back Status
			if err := json.Unmarshal([]byte(encoded), &back); err != nil || back.State != s.State {
				t.Fatalf("the encoded status does not decode (%v): %.200s", err, encoded)
			}
			if strings.ContainsAny(back.Error, "\n\r\x1b\u2028\u202e") || strings.Contains(encoded, `\u003c`) {
				t.Errorf("error %.100q, encoded %.100s", back.Error, encoded)
			}
			if got, _ := readStatus(encoded, readNow); got.State != s.State {
				t.Errorf("read back as %+v", got)
			}
		})
	}
	// A status that fits is encoded whole: it reads back as it was.
	s := statusAfter(full, StateWaiting, `rollout "x" <not complete> & \ waiting`, clock)
	if got := parseStatus(s.encode(), readNow); got != s {
		t.Errorf("round trip\n got %+v\nwant %+v", got, s)
	}
}

// assertEveryField fails unless every field of v (a struct, recursively) but skip is set.
func assertEveryField(t *testing.T, v reflect.Value, path string, skip ...string) {
	t.Helper()
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case slices.Contains(skip, name):
		case f.Kind() == reflect.Struct:
			assertEveryField(t, f, path+"."+name)
		case f.IsZero():
			t.Errorf("%s.%s is not set", path, name)
		}
	}
}

func TestCutEscaped(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "…"},
		{"abcd", 2, ""}, // not even "…" fits
		{"abcdef", 5, "ab…"},
		{`a"b`, 4, `a"b`},
		{`a"b`, 3, "…"},
		{`""""`, 7, `""…`},
		{"ééé", 6, "ééé"},
		{"éééé", 7, "éé…"},
		{"x", -1, ""},
	} {
		if got := cutEscaped(tc.in, tc.n); got != tc.want {
			t.Errorf("cutEscaped(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
