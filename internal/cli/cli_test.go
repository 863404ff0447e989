package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err       error
		def, want int
	}{
		{nil, 2, ExitOK},
		{errors.New("x"), 0, ExitFailed},
		{errors.New("x"), ExitUsage, ExitUsage},
		{Usagef("bad %s", "flag"), 0, ExitUsage},
		{fmt.Errorf("wrapped: %w", Exit(3, errors.New("io"))), 0, 3},
		{Exit(ExitFailed, errors.New("checks failed")), ExitUsage, ExitFailed},
	} {
		if got := exitCode(tc.err, tc.def); got != tc.want {
			t.Errorf("exitCode(%v, %d) = %d, want %d", tc.err, tc.def, got, tc.want)
		}
	}
}

func TestRun(t *testing.T) {
	newProgram := func(report func(io.Writer, []string, error)) Program {
		root := &cobra.Command{Use: "prog", Args: NoArgs, RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return err
			}
			if len(in) > 0 {
				return errors.New(string(in))
			}
			_, err = io.WriteString(cmd.OutOrStdout(), "ok\n")
			return err
		}}
		root.AddCommand(&cobra.Command{Use: "sub", RunE: func(*cobra.Command, []string) error { return nil }})
		return Program{Root: root, Report: report}
	}
	for _, tc := range []struct {
		name, stdin    string
		args           []string
		code           int
		stdout, stderr string
		report         func(io.Writer, []string, error)
	}{
		{name: "success", code: ExitOK, stdout: "ok\n"},
		{name: "failure, default report", stdin: "boom", code: ExitFailed, stderr: "Error: boom\n"},
		{name: "argument", args: []string{"x"}, code: ExitUsage, stderr: "Error: unexpected arguments [\"x\"]\n"},
		{name: "unknown flag, no usage printed", args: []string{"--nope"}, code: ExitUsage,
			stderr: "Error: unknown flag: --nope\n"},
		{name: "unknown flag of a subcommand", args: []string{"sub", "--nope"}, code: ExitUsage,
			stderr: "Error: unknown flag: --nope\n"},
		{name: "own report", stdin: "boom", code: ExitFailed, stderr: "prog [] failed: boom\n",
			report: func(w io.Writer, args []string, err error) { fmt.Fprintf(w, "prog %q failed: %v\n", args, err) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), newProgram(tc.report), tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.code || stdout.String() != tc.stdout || stderr.String() != tc.stderr {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tc.code,
					tc.stdout, tc.stderr)
			}
		})
	}
}
