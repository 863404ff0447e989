package refresher

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// otherWriters lists, from the Deployment's managedFields, every field manager other than the
// refresher's that owns one of keys (the images' audit and status annotations) and wrote after
// the refresher last did — another refresher, a hand edit (kubectl annotate), a chart that
// renders them — as "manager (operation at time): [keys]", in managedFields order. One
// refresher per target: another writer's change ends this one's rollout tracking. Only a write
// after since counts too: an update that leaves a value as it was does not take the field
// over, so the script a migration replaced keeps owning the annotations it wrote, until the
// refresher changes them — a steady target would be warned about forever.
func otherWriters(dep *appsv1.Deployment, keys []string, since time.Time) []string {
	ours := since
	for _, e := range dep.ManagedFields {
		if e.Manager == config.FieldManager && e.Time != nil && e.Time.After(ours) {
			ours = e.Time.Time
		}
	}
	var out []string
	for _, e := range dep.ManagedFields {
		if e.Manager == config.FieldManager || e.FieldsV1 == nil || (e.Time != nil && !e.Time.After(ours)) {
			continue
		}
		var fields struct {
			Metadata struct {
				Annotations map[string]json.RawMessage `json:"f:annotations"`
			} `json:"f:metadata"`
		}
		if json.Unmarshal(e.FieldsV1.GetRawBytes(), &fields) != nil {
			continue // not ours to judge: the API server wrote it
		}
		var owned []string
		for _, k := range keys {
			if _, ok := fields.Metadata.Annotations["f:"+k]; ok && !slices.Contains(owned, k) {
				owned = append(owned, k)
			}
		}
		if len(owned) == 0 {
			continue
		}
		when := ""
		if e.Time != nil {
			when = " at " + e.Time.UTC().Format(time.RFC3339)
		}
		out = append(out, fmt.Sprintf("%s (%s%s): %v", e.Manager, e.Operation, when, owned))
	}
	return out
}
