package cli

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// ExitCode is one row of a binary's table of exit codes. The codes are a contract (scripts, CI
// and Helm read them), so each binary states them once, in its ExitCodes, and its --help,
// docs/cli and the docs render from that table.
type ExitCode struct {
	Code int
	// Name is a word for the code in the docs ("usage").
	Name string
	// Meaning says when the binary exits with Code: a sentence or two, plain text (it is read
	// in a terminal and in Markdown).
	Meaning string
}

// ExitCodes is a binary's table, in code order.
type ExitCodes []ExitCode

// Document appends the table to the help of root and of every command under it: each command
// exits with the binary's codes.
func (t ExitCodes) Document(root *cobra.Command) {
	if long := strings.TrimRight(root.Long, "\n"); long != "" {
		root.Long = long + "\n\n" + t.Help()
	} else {
		root.Long = t.Help()
	}
	for _, c := range root.Commands() {
		t.Document(c)
	}
}

// Help is the table as the end of a command's help: a list that reads the same as Markdown
// (docs/cli), wrapped at 100 columns.
func (t ExitCodes) Help() string {
	var b strings.Builder
	b.WriteString("Exit codes:")
	for _, c := range t {
		b.WriteString("\n" + wrap(fmt.Sprintf("- %d (%s): %s", c.Code, c.Name, c.Meaning), 100, "  "))
	}
	return b.String()
}

// Markdown is the table as a Markdown table, for a docs section a test writes.
func (t ExitCodes) Markdown() string {
	var b strings.Builder
	b.WriteString("| code | name | meaning |\n|---|---|---|\n")
	for _, c := range t {
		fmt.Fprintf(&b, "| `%d` | %s | %s |\n", c.Code, c.Name, strings.ReplaceAll(c.Meaning, "|", `\|`))
	}
	return b.String()
}

// Check reports a table a binary could not keep: codes out of order or twice, a name twice, a
// row without a name or meaning, or one of ExitOK, ExitFailed, ExitUsage or used missing (used:
// the codes the binary's commands exit with).
func (t ExitCodes) Check(used ...int) error {
	var errs []error
	names := map[string]bool{}
	for i, c := range t {
		if i > 0 && c.Code <= t[i-1].Code {
			errs = append(errs, fmt.Errorf("code %d after %d: want ascending, each once", c.Code, t[i-1].Code))
		}
		if c.Name == "" || c.Meaning == "" || names[c.Name] {
			errs = append(errs, fmt.Errorf("code %d: want a name of its own and a meaning, got %q, %q",
				c.Code, c.Name, c.Meaning))
		}
		names[c.Name] = true
	}
	for _, code := range append([]int{ExitOK, ExitFailed, ExitUsage}, used...) {
		if !slices.ContainsFunc(t, func(c ExitCode) bool { return c.Code == code }) {
			errs = append(errs, fmt.Errorf("code %d is not in the table", code))
		}
	}
	return errors.Join(errs...)
}

// wrap breaks s at spaces into lines of at most width bytes (a longer word stays whole),
// indenting every line after the first.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	line := 0
	for i, w := range strings.Fields(s) {
		switch {
		case i == 0:
		case line+1+len(w) > width:
			b.WriteString("\n" + indent)
			line = len(indent)
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}
