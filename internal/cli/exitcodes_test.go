package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var testCodes = ExitCodes{
	{ExitOK, "ok", "Done."},
	{ExitFailed, "failed", "Something failed | twice."},
	{ExitUsage, "usage", "Bad flags."},
	{3, "io", "Reading stdin or writing stdout failed, a meaning long enough to be wrapped onto a second line."},
}

func TestExitCodesRender(t *testing.T) {
	wantHelp := `Exit codes:
- 0 (ok): Done.
- 1 (failed): Something failed | twice.
- 2 (usage): Bad flags.
- 3 (io): Reading stdin or writing stdout failed, a meaning long enough to be wrapped onto a second
  line.`
	if got := testCodes.Help(); got != wantHelp {
		t.Errorf("Help:\n%s\nwant:\n%s", got, wantHelp)
	}
	wantMarkdown := "| code | name | meaning |\n|---|---|---|\n| `0` | ok | Done. |\n" +
		"| `1` | failed | Something failed \\| twice. |\n| `2` | usage | Bad flags. |\n" +
		"| `3` | io | Reading stdin or writing stdout failed, a meaning long enough to be wrapped onto a second line. |\n"
	if got := testCodes.Markdown(); got != wantMarkdown {
		t.Errorf("Markdown:\n%s\nwant:\n%s", got, wantMarkdown)
	}
	root := &cobra.Command{Use: "prog", Long: "Prog does things.\n"}
	root.AddCommand(&cobra.Command{Use: "sub"})
	testCodes.Document(root)
	if want := "Prog does things.\n\n" + wantHelp; root.Long != want {
		t.Errorf("root help %q, want %q", root.Long, want)
	}
	if sub := root.Commands()[0]; sub.Long != wantHelp {
		t.Errorf("subcommand help %q, want the table", sub.Long)
	}
}

func TestExitCodesCheck(t *testing.T) {
	if err := testCodes.Check(3); err != nil {
		t.Errorf("Check: %v", err)
	}
	for _, tc := range []struct {
		name  string
		codes ExitCodes
		used  []int
		want  string
	}{
		{"a used code missing", testCodes[:3], []int{3}, "code 3 is not in the table"},
		{"a shared code missing", testCodes[1:], nil, "code 0 is not in the table"},
		{"out of order", ExitCodes{testCodes[1], testCodes[0], testCodes[2]}, nil, "code 0 after 1"},
		{"a code twice", append(ExitCodes{}, testCodes[0], testCodes[1], testCodes[1], testCodes[2]), nil, "code 1 after 1"},
		{"no meaning", ExitCodes{testCodes[0], {ExitFailed, "failed", ""}, testCodes[2]}, nil, "code 1: want a name"},
	} {
		if err := tc.codes.Check(tc.used...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Check = %v, want %q", tc.name, err, tc.want)
		}
	}
}
