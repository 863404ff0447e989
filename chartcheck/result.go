package chartcheck

import (
	"fmt"
	"strings"
)

// Status is the outcome of one check.
type Status string

const (
	StatusPass Status = "pass"
	StatusFail Status = "fail"
	// StatusSkip means the check had nothing to look at (no refresh config, nothing floats) or
	// could not run because an earlier check failed; Reason says which.
	StatusSkip Status = "skip"
	// StatusWarn means the check passed, but the release turned a safeguard off on purpose
	// (spec.job.admissionGuard: false); Warning says what that costs. A warning never fails a
	// run: the exit status is that of a pass.
	StatusWarn Status = "warn"
)

// Finding is one violation: what was expected, what was found, and where.
type Finding struct {
	// Document names the object, its position in the stream and its template.
	Document string `json:"document"`
	// Image is the refresh-config image the finding is about, if any.
	Image    string `json:"image,omitempty"`
	Expected string `json:"expected"`
	Found    string `json:"found"`
}

func (f Finding) String() string {
	var b strings.Builder
	b.WriteString(f.Document)
	if f.Image != "" {
		fmt.Fprintf(&b, ": image %s", f.Image)
	}
	fmt.Fprintf(&b, ": expected %s; found %s", f.Expected, f.Found)
	return b.String()
}

// CheckResult is one named check of one scenario.
type CheckResult struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Warning is set with StatusWarn.
	Warning  string    `json:"warning,omitempty"`
	Findings []Finding `json:"findings,omitempty"`
}

// ScenarioResult is every check of one render.
type ScenarioResult struct {
	Name      string `json:"name"`
	Release   string `json:"release,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// RenderError is set when the chart could not be rendered although the scenario did not
	// expect an error: a usage error, not a check failure.
	RenderError string        `json:"renderError,omitempty"`
	Checks      []CheckResult `json:"checks"`
}

// failed reports whether any check failed.
func (s *ScenarioResult) failed() bool {
	for _, c := range s.Checks {
		if c.Status == StatusFail {
			return true
		}
	}
	return false
}

// Report is the outcome of a run.
type Report struct {
	Scenarios []ScenarioResult `json:"scenarios"`
}

// Failed reports whether any check of any scenario failed.
func (r *Report) Failed() bool {
	for i := range r.Scenarios {
		if r.Scenarios[i].failed() {
			return true
		}
	}
	return false
}

// RenderFailed reports whether a scenario could not be rendered unexpectedly.
func (r *Report) RenderFailed() bool {
	for _, s := range r.Scenarios {
		if s.RenderError != "" {
			return true
		}
	}
	return false
}

// findings are every finding of the report, one line each: "scenario/check: finding".
func (r *Report) findings() []string {
	var out []string
	for _, s := range r.Scenarios {
		if s.RenderError != "" {
			out = append(out, fmt.Sprintf("%s: render: %s", s.Name, s.RenderError))
		}
		for _, c := range s.Checks {
			for _, f := range c.Findings {
				out = append(out, fmt.Sprintf("%s/%s: %s", s.Name, c.Name, f))
			}
		}
	}
	return out
}

// checkSet accumulates the results of one scenario.
type checkSet struct {
	results []CheckResult
}

func (cs *checkSet) add(name string, findings []Finding) {
	status := StatusPass
	if len(findings) > 0 {
		status = StatusFail
	}
	cs.results = append(cs.results, CheckResult{Name: name, Status: status, Findings: findings})
}

func (cs *checkSet) skip(name, reason string) {
	cs.results = append(cs.results, CheckResult{Name: name, Status: StatusSkip, Reason: reason})
}

// warn records a check that passed with a warning: nothing is wrong, but a safeguard is off.
func (cs *checkSet) warn(name, warning string) {
	cs.results = append(cs.results, CheckResult{Name: name, Status: StatusWarn, Warning: warning})
}
