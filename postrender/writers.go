package postrender

import (
	"fmt"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
)

// checkWriters applies the contract's "one refresher per target" (contract.CheckWriters) to the
// release, without the objects an earlier run injected (drop: they are rebuilt). Another
// CronJob or Job that may write a target is refused (second-writer). One that runs helm upgrade
// without the post-renderer is only warned about: that is the chart's design, which a
// post-renderer cannot change, and refusing would block every install of such a chart.
func checkWriters(configName string, objects []object, drop []bool, targets []contract.Target, warn func(string),
	load loader) []*RefusalError {
	var kept []object
	var rendered []contract.Rendered
	for i, obj := range objects {
		if drop[i] {
			continue
		}
		kept = append(kept, obj)
		source := obj.Filename
		if source == "" {
			source = obj.source
		}
		rendered = append(rendered, contract.Rendered{
			APIVersion: obj.APIVersion, Kind: obj.Kind, Namespace: obj.Namespace, Name: obj.Name, Source: source,
			Decode: func(into any) error { return load(obj, into) },
		})
	}
	keys := make([]config.TargetKey, len(targets))
	for i, t := range targets {
		keys[i] = t.Key
	}
	var refusals []*RefusalError
	for _, v := range contract.CheckWriters(rendered, keys) {
		message := fmt.Sprintf("refresh config %q: %s: %s", configName, kept[v.Index].where(), v.Message)
		if v.Rule == contract.RuleInClusterUpgrade {
			if warn != nil {
				warn(message)
			}
			continue
		}
		refusals = append(refusals, refuse(Reason(v.Rule), "%s", message))
	}
	return refusals
}
