package chartcheck

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Format is an output format: text (default), json or junit (reports only).
type Format string

const (
	FormatText  Format = "text"
	FormatJSON  Format = "json"
	FormatJUnit Format = "junit"
)

// ParseFormat validates -o.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatText, FormatJSON, FormatJUnit:
		return f, nil
	}
	return "", usagef("-o %q: must be text, json or junit", s)
}

// WriteReport writes a check report in the format.
func WriteReport(w io.Writer, r *Report, f Format) error {
	var err error
	switch f {
	case FormatJSON:
		err = writeJSON(w, struct {
			Passed bool `json:"passed"`
			*Report
		}{Passed: !r.Failed() && !r.RenderFailed(), Report: r})
	case FormatJUnit:
		err = writeJUnit(w, r)
	default:
		err = writeReportText(w, r)
	}
	if err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeReportText(w io.Writer, r *Report) error {
	var b strings.Builder
	failed := 0
	for _, s := range r.Scenarios {
		counts := map[Status]int{}
		for _, c := range s.Checks {
			counts[c.Status]++
		}
		verdict := "PASS"
		switch {
		case s.RenderError != "":
			verdict = "ERROR"
		case s.failed():
			verdict = "FAIL"
		}
		if verdict != "PASS" {
			failed++
		}
		fmt.Fprintf(&b, "%s %s", verdict, s.Name)
		if s.Release != "" {
			fmt.Fprintf(&b, " (release %s, namespace %s)", s.Release, s.Namespace)
		}
		if s.RenderError != "" {
			fmt.Fprintf(&b, ": %s\n", s.RenderError)
			continue
		}
		// A warning is a pass: counted with them, and named.
		passed := fmt.Sprintf("%d passed", counts[StatusPass]+counts[StatusWarn])
		switch n := counts[StatusWarn]; {
		case n == 1:
			passed += " (1 with a warning)"
		case n > 1:
			passed += fmt.Sprintf(" (%d with warnings)", n)
		}
		fmt.Fprintf(&b, ": %s, %d failed, %d skipped\n", passed, counts[StatusFail], counts[StatusSkip])
		for _, c := range s.Checks {
			if c.Status == StatusWarn {
				fmt.Fprintf(&b, "    %s: warning: %s\n", c.Name, c.Warning)
			}
			for _, f := range c.Findings {
				fmt.Fprintf(&b, "    %s: %s\n", c.Name, f)
			}
		}
	}
	fmt.Fprintf(&b, "%d scenarios, %d passed, %d failed\n", len(r.Scenarios), len(r.Scenarios)-failed, failed)
	_, err := io.WriteString(w, b.String())
	return err
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string           `xml:"name,attr"`
	Tests      int              `xml:"tests,attr"`
	Failures   int              `xml:"failures,attr"`
	Errors     int              `xml:"errors,attr"`
	Skipped    int              `xml:"skipped,attr"`
	Properties *junitProperties `xml:"properties,omitempty"`
	Cases      []junitCase      `xml:"testcase"`
}

type junitProperties struct {
	Property []junitProperty `xml:"property"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	// SystemOut carries a warning: JUnit has no warning outcome, so the testcase passes and
	// says it there.
	SystemOut string `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",cdata"`
}

// writeJUnit writes one testsuite per scenario and one testcase per check; an unexpected render
// error is a testcase "render" with an error, a warning a passing testcase with "warning: …" in
// its system-out. No timings, so the output is reproducible.
func writeJUnit(w io.Writer, r *Report) error {
	out := junitSuites{Name: "chartcheck"}
	for _, s := range r.Scenarios {
		suite := junitSuite{Name: s.Name}
		if s.Release != "" {
			suite.Properties = &junitProperties{
				Property: []junitProperty{{Name: "release", Value: s.Release}, {Name: "namespace", Value: s.Namespace}},
			}
		}
		class := "chartcheck." + s.Name
		if s.RenderError != "" {
			suite.Cases = append(suite.Cases, junitCase{
				Name:      "render",
				ClassName: class,
				Error:     &junitMessage{Message: s.RenderError, Type: "render"},
			})
			suite.Errors++
		}
		for _, c := range s.Checks {
			tc := junitCase{Name: c.Name, ClassName: class}
			switch c.Status {
			case StatusFail:
				lines := make([]string, len(c.Findings))
				for i, f := range c.Findings {
					lines[i] = f.String()
				}
				message := lines[0]
				if len(lines) > 1 {
					message += fmt.Sprintf(" (and %d more)", len(lines)-1)
				}
				tc.Failure = &junitMessage{Message: message, Type: "check", Body: strings.Join(lines, "\n")}
				suite.Failures++
			case StatusSkip:
				tc.Skipped = &junitMessage{Message: c.Reason}
				suite.Skipped++
			case StatusWarn:
				tc.SystemOut = "warning: " + c.Warning
			}
			suite.Cases = append(suite.Cases, tc)
		}
		suite.Tests = len(suite.Cases)
		out.Tests += suite.Tests
		out.Failures += suite.Failures
		out.Errors += suite.Errors
		out.Skipped += suite.Skipped
		out.Suites = append(out.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WritePlan writes a plan as text or JSON.
func WritePlan(w io.Writer, p *PlanReport, f Format) error {
	var err error
	switch f {
	case FormatJSON:
		err = writeJSON(w, p)
	case FormatText:
		err = writePlanText(w, p)
	default:
		return usagef("-o %s: plan writes text or json", f)
	}
	if err != nil {
		return fmt.Errorf("writing plan: %w", err)
	}
	return nil
}

func writePlanText(w io.Writer, p *PlanReport) error {
	if p.Config == nil {
		_, err := io.WriteString(w, "no refresh config in the stream: nothing is polled\n")
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "refresh config %s", p.Config.Name)
	if p.Config.Namespace != "" {
		fmt.Fprintf(&b, " (namespace %s)", p.Config.Namespace)
	}
	fmt.Fprintf(&b, ", schedule %q\n", p.Config.Schedule)
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', 0)
	for _, img := range p.Images {
		fmt.Fprintf(tw, "\n%s\n", img.Name)
		fmt.Fprintf(tw, "  reference:\t%s\n", img.Reference)
		if img.Pinned {
			fmt.Fprintf(tw, "  pinned:\tyes, %s: never polled, never changed\n", img.Digest)
		} else {
			fmt.Fprintf(tw, "  pinned:\tno\n")
			fmt.Fprintf(tw, "  HEAD:\t%s\n", img.Head.URL)
			if img.Token.FromChallenge {
				fmt.Fprintf(tw, "  token:\trealm and service from the registry's challenge, scope %s\n", img.Token.Scope)
			} else {
				fmt.Fprintf(tw, "  token:\trealm %s, service %s, scope %s\n", img.Token.Realm, img.Token.Service, img.Token.Scope)
			}
		}
		action := img.Action
		if img.Env != "" {
			action += " " + img.Env
		}
		fmt.Fprintf(tw, "  action:\t%s\n", action)
		target := fmt.Sprintf("%s %s, container %s", img.Target.Kind, img.Target.Name, img.Target.Container)
		if img.Target.Namespace != "" {
			target = fmt.Sprintf(
				"%s %s/%s, container %s",
				img.Target.Kind,
				img.Target.Namespace,
				img.Target.Name,
				img.Target.Container,
			)
		}
		fmt.Fprintf(tw, "  target:\t%s\n", target)
		fmt.Fprintf(tw, "  annotation:\t%s\n", img.Annotation)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}
