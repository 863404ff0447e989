package cmd

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/refresher"
)

// errBehind and errStale exit exitBehind after the view was printed.
var (
	errBehind = cli.Exit(exitBehind, errors.New("an image is behind its registry digest (or holds a quarantined one)"))
	errStale  = cli.Exit(exitBehind, errors.New("the refresher stopped (stale): its CronJob is suspended or missing, or "+
		"its ticks stopped succeeding; see the table"))
)

func newStatusCommand(env environment) *cobra.Command {
	var (
		configPath, kubeconfig, namespace, output, keysDir string
		timeout                                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status --config FILE [-o table|json]",
		Short: "Show, per image, the recorded, running and registry digests and the refresh state",
		Long: `status prints one row per image: its target, action, recorded digest (audit annotation),
running digest (the target pods' imageID for rollout-restart, the env for set-env), registry
digest (one HEAD) and state — current, behind, soaking, waiting, quarantined, failed, pinned or
stale — with the time it entered that state; with spec.verification, the signature verdict on the
registry digest (verified and where the signature was found, unsigned or invalid). It only reads:
get deployments, list pods, get the refresher's CronJob, registry HEADs (and the signature GETs).

Every floating image is stale, since the last successful tick, when the refresher stopped: its
CronJob (named after the config, in its namespace) is suspended or missing, or 3 of its scheduled
runs passed, each past its starting and active deadlines, since the last successful tick
(status.lastSuccessfulTime; the CronJob's creation when none succeeded). A failed image stays
failed. A CronJob that cannot be read (no get on cronjobs) leaves the states as they are and
says the last tick is unknown.`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return cli.Usagef("-o %q: want table or json", output)
			}
			s, err := env.setup(configPath, kubeconfig, namespace, keysDir, timeout)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			rows, err := refresher.View(ctx, s.cfg, refresher.ViewOptions{Kube: s.kube, Namespace: s.namespace,
				Registry: s.registry, Keys: s.keys, Now: env.now})
			if err != nil {
				return err
			}
			if err := refresher.PrintView(cmd.OutOrStdout(), rows, output == "json"); err != nil {
				return err
			}
			switch failed, behind, stale := refresher.ViewExit(rows); {
			case failed:
				return errors.New("an image could not be read or its last tick failed; see the table")
			case behind:
				return errBehind
			case stale:
				return errStale
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&configPath, "config", "", "refresh config file")
	flags.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file; default: the in-cluster service account")
	flags.StringVar(&namespace, "namespace", "",
		"namespace of targets the config gives none; must equal metadata.namespace when that is set")
	addKeysFlag(flags, &keysDir)
	flags.DurationVar(&timeout, "timeout", time.Minute, "deadline for the whole view")
	flags.StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
