package refresher

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// printPlan writes the dry-run plan: one row per image (digest seen, decision), then the patch
// each changed Deployment would receive.
func printPlan(w io.Writer, report Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The SIGNATURE column is there when the signature gate is on (spec.verification).
	signatureColumn := ""
	if report.Verification {
		signatureColumn = "SIGNATURE\t"
	}
	fmt.Fprintf(tw, "IMAGE\tREFERENCE\tTARGET\tDIGEST\tDECISION\t%sERROR\n", signatureColumn)
	for _, img := range report.Images {
		digest, errText := dash(img.Digest), "-"
		switch {
		case img.Err != nil:
			errText = img.Err.Error()
		case img.Reason != "":
			errText = img.Reason // why it waits
		}
		sig := ""
		if report.Verification {
			sig = img.Signature.String() + "\t"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s%s\n", img.Name, img.Reference, img.Target, digest, img.Decision, sig, errText)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(report.Patches) == 0 {
		_, err := fmt.Fprintln(w, "no patches")
		return err
	}
	for _, p := range report.Patches {
		if _, err := fmt.Fprintf(w, "patch Deployment %s: %s\n", p.Target, p.Patch); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
