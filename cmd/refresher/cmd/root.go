// Package cmd holds the refresher's commands: the tick (the root command) and status. New is
// the binary; ExitCodes are its exit codes.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/internal/version"
	"github.com/tracebloc/image-refresh/refresher"
	"github.com/tracebloc/image-refresh/refresher/kube"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

const (
	defaultTimeout = 5 * time.Minute
	// serviceAccountNamespace holds the pod's namespace in a cluster.
	serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)

// environment is what the commands reach outside their stdio, replaceable in tests.
type environment struct {
	// kube connects to the cluster: in-cluster config when kubeconfig is empty. It also
	// returns the namespace targets default to (the pod's, or the kubeconfig context's).
	kube     func(kubeconfig string) (refresher.Kube, string, error)
	registry registry.Options
	// now is status's clock; nil: time.Now.
	now func() time.Time
}

// New is the refresher binary: logs are JSON on stderr, a failure is logged there too; it exits
// with ExitCodes.
func New() cli.Program { return newProgram(environment{kube: connect}) }

func newProgram(env environment) cli.Program {
	root := newRefresherCommand(env)
	ExitCodes.Document(root)
	return cli.Program{Root: root, Report: report}
}

// report logs the failure; an image behind or a stale refresher (status) is a warning.
func report(stderr io.Writer, _ []string, err error) {
	logger := newLogger(stderr)
	if errors.Is(err, errBehind) || errors.Is(err, errStale) {
		logger.Warn("status", "result", err.Error())
		return
	}
	logger.Error("refresher failed", "error", err.Error())
}

func newLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

func newRefresherCommand(env environment) *cobra.Command {
	var (
		configPath, kubeconfig, namespace, keysDir string
		dryRun                                     bool
		timeout                                    time.Duration
	)
	cmd := &cobra.Command{
		Use:   "refresher --config FILE",
		Short: "Poll floating image tags and refresh the Deployments whose digest moved",
		Long: `refresher looks up the digest of every floating image tag in the refresh config with one
registry HEAD, compares it with the audit annotation on the image's target Deployment and, per
the decision table, restarts the rollout or sets the digest env var — one strategic-merge patch
per Deployment. Pinned images are never polled.`,
		Version: version.Version,
		Args:    cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := env.setup(configPath, kubeconfig, namespace, keysDir, timeout)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			logger := newLogger(cmd.ErrOrStderr())
			report, err := refresher.Run(ctx, s.cfg, refresher.Options{
				Kube: s.kube, Namespace: s.namespace, Registry: s.registry, Keys: s.keys,
				DryRun: dryRun, Out: cmd.OutOrStdout(), Logger: logger,
			})
			if err != nil {
				return err
			}
			logSummary(logger, report, dryRun)
			return report.Err()
		},
	}
	cmd.AddCommand(newStatusCommand(env))
	// The image has no shell to complete in; chartcheck and postrender have no completion either.
	cmd.CompletionOptions.DisableDefaultCmd = true
	flags := cmd.Flags()
	flags.StringVar(&configPath, "config", "",
		"refresh config file (in the CronJob: "+config.MountPath+"/"+config.ConfigMapKey+")")
	flags.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default: the in-cluster service account")
	flags.StringVar(&namespace, "namespace", "", "namespace of targets the config gives none (no metadata.namespace); "+
		"must equal metadata.namespace when that is set; default: the pod's namespace, or the kubeconfig context's")
	addKeysFlag(flags, &keysDir)
	flags.BoolVar(&dryRun, "dry-run", false,
		"print the plan (image, digest seen, decision, patch) on stdout and write nothing")
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
	// keys are the trusted public keys, read only when an image needs a signature.
	keys []signature.PublicKey
}

// addKeysFlag is --keys, shared by the tick and status.
func addKeysFlag(flags *pflag.FlagSet, dir *string) {
	flags.StringVar(dir, "keys", config.KeysMountPath, "directory of the trusted public keys (*"+config.KeyFileSuffix+
		", PEM); read only when spec.verification is set (in the CronJob: the mounted keys ConfigMap)")
}

// setup checks the shared flags, loads the config and connects to the cluster only if
// something floats (a config of pinned images needs no cluster).
func (env environment) setup(configPath, kubeconfig, namespace, keysDir string, timeout time.Duration) (session,
	error) {
	if configPath == "" {
		return session{}, cli.Usagef("--config is required")
	}
	if timeout <= 0 {
		return session{}, cli.Usagef("--timeout must be positive, got %s", timeout)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		return session{}, cli.Usage(err)
	}
	if namespace != "" && cfg.Metadata.Namespace != "" && namespace != cfg.Metadata.Namespace {
		return session{}, cli.Usagef("--namespace %q contradicts metadata.namespace %q of %s", namespace,
			cfg.Metadata.Namespace, configPath)
	}
	s := session{cfg: cfg, namespace: namespace, registry: env.registry}
	if needsKeys(cfg) {
		if s.keys, err = signature.ReadKeysDir(keysDir); err != nil {
			return session{}, cli.Usagef("spec.verification: reading the trusted keys (--keys %s): %w", keysDir, err)
		}
	}
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

// needsKeys reports whether a floating image needs a signature, so the keys must be read.
func needsKeys(cfg *config.RefreshConfig) bool {
	return slices.ContainsFunc(cfg.Floating(), cfg.VerificationRequired)
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
			return nil, "", cli.Usagef("loading kubeconfig %s: %w", kubeconfig, err)
		}
		if namespace, _, err = loader.Namespace(); err != nil {
			return nil, "", cli.Usagef("namespace of kubeconfig %s: %w", kubeconfig, err)
		}
	}
	client, err := kube.NewForConfig(restConfig, "image-refresh/"+version.Version)
	if err != nil {
		return nil, "", fmt.Errorf("creating Kubernetes client: %w", err)
	}
	return client, namespace, nil
}
