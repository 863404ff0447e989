package refresher

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printPlan writes the dry-run plan: one row per image (digest seen, decision), then the patch
// each changed Deployment would receive. Every line goes through writeLine.
func printPlan(w io.Writer, report Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The SIGNATURE column is there when the signature gate is on (spec.verification).
	header := []string{"IMAGE", "REFERENCE", "TARGET", "DIGEST", "DECISION", "ERROR"}
	if report.Verification {
		header = []string{"IMAGE", "REFERENCE", "TARGET", "DIGEST", "DECISION", "SIGNATURE", "ERROR"}
	}
	if err := writeLine(tw, header...); err != nil {
		return err
	}
	for _, img := range report.Images {
		errText := "-"
		switch {
		case img.Err != nil:
			errText = img.Err.Error()
		case img.Reason != "":
			errText = img.Reason // why it waits
		}
		cells := []string{img.Name, img.Reference, img.Target, dash(img.Digest), string(img.Decision)}
		if report.Verification {
			cells = append(cells, img.Signature.String())
		}
		if err := writeLine(tw, append(cells, errText)...); err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(report.Patches) == 0 {
		return writeLine(w, "no patches")
	}
	for _, p := range report.Patches {
		if err := writeLine(w, fmt.Sprintf("patch Deployment %s: %s", p.Target, p.Patch)); err != nil {
			return err
		}
	}
	return nil
}

// writeLine writes one line of text output (the plan, the status view): its cells made printable
// (an error or annotation from outside can neither break the line nor the tabwriter's columns),
// tab-separated.
func writeLine(w io.Writer, cells ...string) error {
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(printable(c))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
