// Command refresher is one tick of the image-refresh CronJob: it polls each floating image
// tag's digest and restarts or re-points the target Deployments whose digest moved.
//
//	refresher --config FILE [--kubeconfig FILE] [--namespace NS] [--dry-run] [--timeout D]
//	refresher status --config FILE [--kubeconfig FILE] [--namespace NS] [--timeout D] [-o table|json]
//
// Exit codes: 0 every floating image was checked; 1 an image or target failed (after the
// others were processed) or the cluster was unreachable; 2 bad flags or a bad config.
// Logs are JSON on stderr; a dry run prints its plan on stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tracebloc/image-refresh/internal/version"
	"github.com/tracebloc/image-refresh/refresher"
	"github.com/tracebloc/image-refresh/refresher/config"
	"github.com/tracebloc/image-refresh/refresher/kube"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const (
	defaultTimeout = 5 * time.Minute
	// serviceAccountNamespace holds the pod's namespace in a cluster.
	serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// environment is what the command reaches outside itself, replaceable in tests.
type environment struct {
	stdout, stderr io.Writer
	// kube connects to the cluster: in-cluster config when kubeconfig is empty. It also
	// returns the namespace targets default to (the pod's, or the kubeconfig context's).
	kube     func(kubeconfig string) (refresher.Kube, string, error)
	registry registry.Options
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], environment{stdout: os.Stdout, stderr: os.Stderr, kube: connect})
	stop()
	os.Exit(code)
}

// run executes the command and maps its outcome to an exit code.
func run(ctx context.Context, args []string, env environment) int {
	logger := slog.New(slog.NewJSONHandler(env.stderr, nil))
	cmd := newRefresherCommand(env, logger)
	// Never nil: cobra would fall back to os.Args, which under go test holds the test flags.
	cmd.SetArgs(append([]string{}, args...))
	cmd.SetOut(env.stdout)
	cmd.SetErr(env.stderr)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errBehind) {
		logger.Warn("status", "result", err.Error())
		return exitBehind
	}
	logger.Error("refresher failed", "error", err.Error())
	var usage *usageError
	if errors.As(err, &usage) {
		return exitUsage
	}
	return exitFailed
}

// usageError is a bad flag or a bad config: exit 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usage(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }

// noArgs refuses positional arguments as a usage error (exit 2).
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usage("unexpected arguments %q", args)
	}
	return nil
}

func newRefresherCommand(env environment, logger *slog.Logger) *cobra.Command {
	var (
		configPath, kubeconfig, namespace string
		dryRun                            bool
		timeout                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "refresher --config FILE",
		Short: "Poll floating image tags and refresh the Deployments whose digest moved",
		Long: `refresher looks up the digest of every floating image tag in the refresh config with one
registry HEAD, compares it with the audit annotation on the image's target Deployment and, per
the decision table, restarts the rollout or sets the digest env var — one strategic-merge patch
per Deployment. Pinned images are never polled.

Exit codes: 0 every floating image was checked; 1 an image or target failed, after the others
were processed; 2 bad flags or config.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := env.setup(configPath, kubeconfig, namespace, timeout)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			report, err := refresher.Run(ctx, s.cfg, refresher.Options{
				Kube: s.kube, Namespace: s.namespace, Registry: s.registry,
				DryRun: dryRun, Out: cmd.OutOrStdout(), Logger: logger,
			})
			if err != nil {
				return err
			}
			logSummary(logger, report, dryRun)
			return report.Err()
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	cmd.AddCommand(newStatusCommand(env))
	flags := cmd.Flags()
	flags.StringVar(&configPath, "config", "", "refresh config file (in the CronJob: "+config.MountPath+"/"+config.ConfigMapKey+")")
	flags.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default: the in-cluster service account")
	flags.StringVar(&namespace, "namespace", "", "namespace of targets the config gives none (no metadata.namespace); must equal metadata.namespace when that is set; default: the pod's namespace, or the kubeconfig context's")
	flags.BoolVar(&dryRun, "dry-run", false, "print the plan (image, digest seen, decision, patch) on stdout and write nothing")
	flags.DurationVar(&timeout, "timeout", defaultTimeout, "deadline for the whole run")
	return cmd
}

// session is what both commands start from: the loaded config and, when an image floats, the
// cluster client and the namespace that targets without one default to.
type session struct {
	cfg       *config.RefreshConfig
	kube      refresher.Kube
	namespace string
	registry  registry.Options
}

// setup checks the shared flags, loads the config and connects to the cluster only if
// something floats (a config of pinned images needs no cluster).
func (env environment) setup(configPath, kubeconfig, namespace string, timeout time.Duration) (session, error) {
	if configPath == "" {
		return session{}, usage("--config is required")
	}
	if timeout <= 0 {
		return session{}, usage("--timeout must be positive, got %s", timeout)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return session{}, &usageError{err}
	}
	if namespace != "" && cfg.Metadata.Namespace != "" && namespace != cfg.Metadata.Namespace {
		return session{}, usage("--namespace %q contradicts metadata.namespace %q of %s", namespace, cfg.Metadata.Namespace, configPath)
	}
	s := session{cfg: cfg, namespace: namespace, registry: env.registry}
	if s.registry.UserAgent == "" {
		s.registry.UserAgent = "image-refresh/" + version.Version
	}
	if cfg.AnyFloating() {
		kube, defaultNamespace, err := env.kube(kubeconfig)
		if err != nil {
			return session{}, err
		}
		s.kube = kube
		if s.namespace == "" {
			s.namespace = defaultNamespace
		}
	}
	return s, nil
}

func logSummary(logger *slog.Logger, report refresher.Report, dryRun bool) {
	pinned, failed := 0, 0
	for _, img := range report.Images {
		if img.Decision == refresher.DecisionPinned {
			pinned++
		}
		if img.Err != nil {
			failed++
		}
	}
	logger.Info("run complete", "images", len(report.Images), "pinned", pinned, "failed", failed,
		"patched_targets", len(report.Patches), "dry_run", dryRun)
}

// connect builds the API client from the in-cluster service account, or from kubeconfig.
func connect(kubeconfig string) (refresher.Kube, string, error) {
	var (
		restConfig *rest.Config
		namespace  string
		err        error
	)
	if kubeconfig == "" {
		if restConfig, err = rest.InClusterConfig(); err != nil {
			return nil, "", fmt.Errorf("in-cluster config (pass --kubeconfig when running outside a cluster): %w", err)
		}
		// Only needed when the config names no namespace; Run reports that case.
		if data, readErr := os.ReadFile(serviceAccountNamespace); readErr == nil {
			namespace = strings.TrimSpace(string(data))
		}
	} else {
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{})
		if restConfig, err = loader.ClientConfig(); err != nil {
			return nil, "", &usageError{fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)}
		}
		if namespace, _, err = loader.Namespace(); err != nil {
			return nil, "", &usageError{fmt.Errorf("namespace of kubeconfig %s: %w", kubeconfig, err)}
		}
	}
	client, err := kube.NewForConfig(restConfig, "image-refresh/"+version.Version)
	if err != nil {
		return nil, "", fmt.Errorf("creating Kubernetes client: %w", err)
	}
	return client, namespace, nil
}
