package refresher

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
)

// getTarget reads a target as a Deployment: a DaemonSet as contract.DaemonSetView shows it.
func getTarget(ctx context.Context, kube Kube, key config.TargetKey) (*appsv1.Deployment, error) {
	switch key.Kind {
	case config.KindDaemonSet:
		ds, err := kube.GetDaemonSet(ctx, key.Namespace, key.Name)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", contract.KeyString(key), err)
		}
		return contract.DaemonSetView(ds), nil
	case config.KindDeployment:
		dep, err := kube.GetDeployment(ctx, key.Namespace, key.Name)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", contract.KeyString(key), err)
		}
		return dep, nil
	}
	return nil, fmt.Errorf("reading %s: unsupported kind", contract.KeyString(key))
}

// patchTarget applies a strategic-merge patch to a target: the same patch for both kinds, which write their
// annotations and pod template at the same paths.
func patchTarget(ctx context.Context, kube Kube, key config.TargetKey, patch []byte) error {
	var err error
	switch key.Kind {
	case config.KindDaemonSet:
		err = kube.PatchDaemonSet(ctx, key.Namespace, key.Name, patch, config.FieldManager)
	case config.KindDeployment:
		_, err = kube.PatchDeployment(ctx, key.Namespace, key.Name, patch, config.FieldManager)
	default:
		err = fmt.Errorf("unsupported kind")
	}
	if err != nil {
		return fmt.Errorf("patching %s: %w", contract.KeyString(key), err)
	}
	return nil
}
