package chartcheck

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tracebloc/image-refresh/internal/config"
	contract "github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/postrender"
)

// addWritersCheck applies the contract's "one refresher per target" (contract.CheckWriters) to
// the stream without the CronJobs that run the refresher (cronjob-presence judges those):
// another CronJob or Job that may write a floating image's target fails (second-writer). One
// that runs helm upgrade in the cluster without the post-renderer passes with a warning
// (in-cluster-upgrade) when the refresher's objects come from the post-renderer alone: its
// upgrade would delete them.
func (c *checkedRelease) addWritersCheck(cs *checkSet) {
	refreshers, _ := c.refresherCronJobs()
	var docs []*document
	var objects []contract.Rendered
	for _, d := range c.stream.Docs {
		if slices.ContainsFunc(refreshers, func(r refresherCronJob) bool { return r.doc == d }) {
			continue
		}
		docs = append(docs, d)
		objects = append(objects, contract.Rendered{
			APIVersion: d.APIVersion,
			Kind:       d.Kind,
			Namespace:  d.Namespace,
			Name:       d.Name,
			Source:     d.Source,
			Decode:     d.Decode,
		})
	}
	keys := make([]config.TargetKey, len(c.targets))
	for i, t := range c.targets {
		keys[i] = t.Key
	}
	var findings []Finding
	var warnings []string
	for _, v := range contract.CheckWriters(objects, keys) {
		d := docs[v.Index]
		if v.Rule == contract.RuleInClusterUpgrade {
			if c.injectedOnly() {
				warnings = append(warnings, fmt.Sprintf("%s: %s", d, v.Message))
			}
			continue
		}
		findings = append(findings, Finding{Document: d.String(),
			Expected: fmt.Sprintf(
				"no writer of the targets but the refresher's CronJob %q (one refresher per target)",
				c.cfg.Metadata.Name,
			),
			Found: v.Message})
	}
	if len(findings) == 0 && len(warnings) > 0 {
		cs.warn(writersCheck, strings.Join(warnings, "; "))
		return
	}
	cs.add(writersCheck, findings)
}

// injectedOnly reports whether the refresher's CronJob is the post-renderer's (its managed-by
// label) and no template of the chart renders it (Helm names a template <chart>/templates/...;
// the post-renderer writes no "# Source:", and image-refresh/injected.yaml under Helm 4), nor
// did the chart's own output before post-rendering (the post-renderer replaces the copy a chart
// carries through charts/image-refresh with its own). An upgrade without the post-renderer then
// deletes it with its RBAC, whether or not the chart renders the config.
func (c *checkedRelease) injectedOnly() bool {
	d := c.cronJobDoc
	return !c.chartCarriesRefresher && d != nil && d.Labels[postrender.ManagedByLabel] == postrender.ManagedByValue &&
		!strings.Contains(d.Source, "/templates/")
}

// chartCarriesRefresher reports whether a chart's own output (before post-rendering) holds a
// CronJob labelled as the post-renderer's: the chart carries the refresh objects itself.
func chartCarriesRefresher(manifest []byte) bool {
	s, err := parseStream(manifest)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(s.OfKind("CronJob"), func(d *document) bool {
		return d.Labels[postrender.ManagedByLabel] == postrender.ManagedByValue
	})
}
