// Package cli is what the binaries share around their cobra commands: one run (arguments,
// stdio, a context cancelled on SIGINT or SIGTERM, cobra's own error and usage printing off),
// usage errors, the mapping of a failure to its exit code, and the form of a binary's table of
// exit codes (ExitCodes). Each binary keeps its own commands (cmd/<name>/cmd), its own failure
// report and its own table, which says what every code means for it, above 2 too.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// The exit codes every binary has (Run exits with them); what each means for a binary, and its
// codes above ExitUsage, are in its ExitCodes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// Program is one binary: its command tree and how it tells the user about a failure.
type Program struct {
	// Root is the command tree. Run sets its arguments and stdio; the commands read them with
	// cmd.InOrStdin, cmd.OutOrStdout and cmd.ErrOrStderr.
	Root *cobra.Command
	// Report tells the user about a failed run (err is never nil): every binary has its own
	// contract on stderr. nil writes "Error: <err>".
	Report func(stderr io.Writer, args []string, err error)
	// DefaultCode is the exit code of a failure that carries none (see Exit); 0 means
	// ExitFailed.
	DefaultCode int
}

// Main runs p with the process's arguments and stdio, cancelled on SIGINT or SIGTERM, and
// returns the exit code: `func main() { os.Exit(cli.Main(cmd.New())) }`.
func Main(p Program) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, p, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Run runs p with args and stdio and maps the outcome to an exit code: ExitOK, the code an
// error carries (Exit, Usage: ExitUsage; a bad flag is a usage error), else p.DefaultCode.
func Run(ctx context.Context, p Program, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := p.Root
	// Never nil: cobra would fall back to os.Args, which under go test holds the test flags.
	root.SetArgs(append([]string{}, args...))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// The binary reports its failures itself (Report), and a usage error prints no usage.
	root.SilenceErrors = true
	root.SilenceUsage = true
	// Inherited by every subcommand that sets none.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return Usage(err) })
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if p.Report != nil {
		p.Report(stderr, args, err)
	} else {
		fmt.Fprintf(stderr, "Error: %v\n", err)
	}
	return exitCode(err, p.DefaultCode)
}

// exitError is a failure that exits with code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit makes err exit with code.
func Exit(code int, err error) error { return &exitError{code: code, err: err} }

// Usage is a bad flag, argument or input file named by a flag: ExitUsage.
func Usage(err error) error { return Exit(ExitUsage, err) }

// Usagef is Usage(fmt.Errorf(format, args...)).
func Usagef(format string, args ...any) error { return Usage(fmt.Errorf(format, args...)) }

// exitCode is the exit code of err: the code of the first exitError in its chain, else def (0:
// ExitFailed); ExitOK for nil.
func exitCode(err error, def int) int {
	if err == nil {
		return ExitOK
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	if def == 0 {
		return ExitFailed
	}
	return def
}

// NoArgs refuses positional arguments as a usage error.
func NoArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return Usagef("unexpected arguments %q", args)
	}
	return nil
}
