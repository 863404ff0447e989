// Package cmd holds chartcheck's commands: run (the root's explicit spelling) and plan. New is
// the binary; ExitCodes are its exit codes.
package cmd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"helm.sh/helm/v3/pkg/cli/values"

	"github.com/tracebloc/image-refresh/chartcheck"
	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/version"
)

// errChecksFailed means the report was written and a check failed. Every other failure (usage,
// render) exits exitError.
var errChecksFailed = cli.Exit(exitChecksFailed, errors.New("checks failed"))

// New is the chartcheck binary: a failed check is in the report on stdout; any other failure
// is written to stderr. It exits with ExitCodes.
func New() cli.Program {
	root := newRootCommand()
	ExitCodes.Document(root)
	return cli.Program{Root: root, Report: report, DefaultCode: exitError}
}

func report(stderr io.Writer, _ []string, err error) {
	if errors.Is(err, errChecksFailed) {
		return // the report says which
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
}

// renderFlags are the flags shared by the run and plan commands.
type renderFlags struct {
	release   chartcheck.Release
	values    values.Options
	manifests string
	output    string
	debug     bool
}

func (f *renderFlags) add(fs *pflag.FlagSet, formats string) {
	fs.StringVar(&f.manifests, "manifests", "",
		`read an already-rendered stream instead of rendering a chart ("-" for stdin)`)
	fs.StringVar(&f.release.Name, "release", "", `release name (default "`+chartcheck.DefaultReleaseName+`")`)
	fs.StringVarP(&f.release.Namespace, "namespace", "n", "",
		`release namespace (default "`+chartcheck.DefaultNamespace+`")`)
	fs.StringVar(&f.release.KubeVersion, "kube-version", "",
		`Kubernetes version for .Capabilities (default "`+chartcheck.DefaultKubeVersion+`")`)
	fs.StringSliceVarP(&f.values.ValueFiles, "values", "f", nil, "values file, as helm -f (repeatable)")
	fs.StringArrayVar(&f.values.Values, "set", nil, "set values, as helm --set (repeatable)")
	fs.StringArrayVar(&f.values.StringValues, "set-string", nil, "set STRING values, as helm --set-string (repeatable)")
	fs.StringArrayVar(&f.values.JSONValues, "set-json", nil, "set JSON values, as helm --set-json (repeatable)")
	fs.StringArrayVar(&f.values.FileValues, "set-file", nil, "set values from files, as helm --set-file (repeatable)")
	fs.StringVarP(&f.output, "output", "o", string(chartcheck.FormatText), "output format: "+formats)
	fs.BoolVar(&f.debug, "debug", false, "log Helm's rendering details to stderr")
}

func (f *renderFlags) setUpLogging(stderr io.Writer) {
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
}

func chartArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// newRootCommand is chartcheck itself, which runs the checks, with run as its explicit spelling.
func newRootCommand() *cobra.Command {
	root := newRunCommand("chartcheck [CHART]")
	root.Version = version.Version
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newRunCommand("run [CHART]"), newPlanCommand())
	return root
}

func newRunCommand(use string) *cobra.Command {
	var flags renderFlags
	var suite, configFile string
	var allowExternalKeys bool
	var postRendererArgs []string
	cmd := &cobra.Command{
		Use:   use,
		Short: "Check that a chart's rendered release keeps the image-refresh contract",
		Long: `Renders CHART in-process with the Helm v3 SDK (as helm install --dry-run, client-only, with an
explicit Kubernetes version), runs the image-refresh post-renderer on it and checks the built-in
contract: no object twice (Lists count by their items, as Helm applies them); the CronJob is
present iff an image floats, found by any trace of the refresher whatever its name, and runs one
refresher container exactly as the config's spec.job says (not suspended, Forbid, deadlines,
image, resources, token) on the labelled ConfigMap mounted read-only; the schedule is one the API
server accepts; the Role grants get/patch on exactly the targets and nothing else, and nothing
else is granted to the refresher's ServiceAccount (by name, user name or group); the CronJob pod
is Pod Security restricted; set-env targets exist and the chart leaves their variable alone;
rollout-restart containers run the polled tag with imagePullPolicy Always; the chart leaves the
audit annotations alone; with spec.verification, the CronJob mounts the keys ConfigMap whole and
read-only, and the stream renders it with valid keys (or --allow-external-keys says it exists);
the admission guard (a ValidatingAdmissionPolicy and its binding) is there exactly as the contract
generates it, or turned off by spec.job.admissionGuard: false, which passes with a warning.

The built-in contract holds for every chart; what is right for one chart (which registry an
image comes from, its audit annotation key, whether the CronJob must be there) is stated as
expectations in a suite. With --suite, every scenario of the suite file is rendered (the chart
is loaded once) and its expectations are checked too; a scenario with "manifests: FILE" checks a
rendered stream instead, and "manifests: -" reads it from stdin. With --manifests, a rendered
stream is checked against the built-in contract only; an empty stream is an error.

A chart that does not render its refresh config gets it at install time: give the same config
with --config FILE, or the release's --post-renderer-args as they are (--post-renderer-args
--config=FILE, repeatable), so the post-renderer appends it and every check runs against it. A
stream with no config, none given, and no suite expectation "config: absent" fails: nothing
would be checked. --config does not go with --manifests (the stream is post-rendered already).`,
		Example: `  chartcheck ./charts/client --set images.ingestor.digest=sha256:...
  chartcheck ./chart --config refresh.yaml      # the config given at install time
  chartcheck ./chart --post-renderer-args --config=refresh.yaml --post-renderer-args --allow-external-keys
  chartcheck --suite charts/client/chartcheck.yaml -o junit > chartcheck.xml
  helm template rel ./chart --post-renderer ./bin/postrender | chartcheck --manifests -
  # the same stream with chart-specific expectations; expect.yaml:
  #   scenarios: [{name: rel, manifests: "-", expect: {images: {ingestor: {registry: ghcr.io}}}}]
  helm template rel ./chart --post-renderer ./bin/postrender | chartcheck --suite expect.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flags.setUpLogging(cmd.ErrOrStderr())
			format, err := chartcheck.ParseFormat(flags.output)
			if err != nil {
				return err
			}
			check := &chartcheck.Check{
				ChartPath:     chartArg(args),
				SuitePath:     suite,
				ManifestsPath: flags.manifests,
				Release:       flags.release,
				Values:        flags.values,
				Stdin:         cmd.InOrStdin(),

				AllowExternalKeys: allowExternalKeys,
				ConfigPath:        configFile,
				PostRendererArgs:  postRendererArgs,
			}
			report, err := check.Run(cmd.Context())
			if err != nil {
				return err
			}
			if err := chartcheck.WriteReport(cmd.OutOrStdout(), report, format); err != nil {
				return err
			}
			switch {
			case report.RenderFailed():
				return errors.New("a scenario could not be rendered (see the report)")
			case report.Failed():
				return errChecksFailed
			}
			return nil
		},
	}
	flags.add(cmd.Flags(), "text, json or junit")
	cmd.Flags().BoolVar(&allowExternalKeys, "allow-external-keys", false, "the post-renderer's --allow-external-keys, "+
		"for every scenario: spec.verification.keysConfigMap exists in the cluster, so the stream need not render it")
	cmd.Flags().StringVar(&configFile, "config", "", "the post-renderer's --config for every rendered scenario: the "+
		"RefreshConfig given at install time, appended as a ConfigMap (a suite scenario's config: overrides it; not with "+
		"--manifests)")
	cmd.Flags().StringArrayVar(&postRendererArgs, "post-renderer-args", nil, "an argument to the post-renderer, as helm "+
		"install --post-renderer-args (repeatable; the postrender flags: --config=FILE, --allow-external-keys)")
	cmd.Flags().StringVar(&suite, "suite", "", "suite file of scenarios and expectations (e.g. "+
		"charts/client/chartcheck.yaml); --release, -n and --kube-version override its defaults, not its scenarios'")
	return cmd
}

func newPlanCommand() *cobra.Command {
	var (
		flags      renderFlags
		configFile string
	)
	cmd := &cobra.Command{
		Use:   "plan [CHART]",
		Short: "Print, per image, the registry calls the refresher will make and what it changes",
		Long: `Renders CHART (or reads --manifests) and prints, for each image of its refresh config: the
reference, whether it is pinned, the HEAD URL of the manifest poll, the token realm, service and
scope, the action, the target and the audit annotation. Pinned images are never polled.`,
		Example: `  chartcheck plan ./charts/client
  chartcheck plan ./charts/client --set images.ingestor.digest=sha256:... -o json
  chartcheck plan ./chart --config refresh.yaml      # the config given at install time`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			flags.setUpLogging(cmd.ErrOrStderr())
			format, err := chartcheck.ParseFormat(flags.output)
			if err != nil {
				return err
			}
			if format == chartcheck.FormatJUnit {
				return errors.New("-o junit: plan writes text or json")
			}
			plan := &chartcheck.Plan{
				ChartPath:     chartArg(args),
				ManifestsPath: flags.manifests,
				ConfigPath:    configFile,
				Release:       flags.release,
				Values:        flags.values,
				Stdin:         cmd.InOrStdin(),
			}
			report, err := plan.Run(cmd.Context())
			if err != nil {
				return err
			}
			return chartcheck.WritePlan(cmd.OutOrStdout(), report, format)
		},
	}
	flags.add(cmd.Flags(), "text or json")
	cmd.Flags().StringVar(&configFile, "config", "", "plan this RefreshConfig, the post-renderer's --config at install "+
		"time, instead of one the chart renders (not with --manifests)")
	return cmd
}
