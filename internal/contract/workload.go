package contract

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// The refresher reads every target as a Deployment: the fields it writes (annotations, the pod template) are the
// same in a DaemonSet, and a DaemonSet's rollout maps onto a Deployment's status, so one set of rules serves both.

// onDeleteStrategy marks, in a DaemonSet's view, a DaemonSet whose updateStrategy is OnDelete: a changed template
// replaces no pod until someone deletes it (CheckTargetState refuses it). No Deployment has this strategy type.
const onDeleteStrategy appsv1.DeploymentStrategyType = "OnDelete"

// The reasons of a Deployment's Progressing condition the refresher reads (the Deployment controller's words).
const (
	// ReasonNewReplicaSetAvailable: its latest rollout completed.
	ReasonNewReplicaSetAvailable = "NewReplicaSetAvailable"
	// ReasonProgressDeadlineExceeded: the controller gave up on its rollout.
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
)

// DaemonSetView is a DaemonSet as the refresher reads a target. Metadata, selector, template and minReadySeconds
// are the DaemonSet's; its desired number of scheduled pods stands for replicas, updated and available pods for
// updated and ready replicas (kubectl rollout status counts available ones). A DaemonSet records no completed
// rollout, so the Progressing condition that says so is derived from the status as read: complete when the
// controller observed the generation and every desired pod is updated and available.
func DaemonSetView(ds *appsv1.DaemonSet) *appsv1.Deployment {
	st := ds.Status
	desired := st.DesiredNumberScheduled
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: config.KindDaemonSet},
		ObjectMeta: ds.ObjectMeta,
		Spec: appsv1.DeploymentSpec{
			Replicas:        &desired,
			Selector:        ds.Spec.Selector,
			Template:        ds.Spec.Template,
			MinReadySeconds: ds.Spec.MinReadySeconds,
		},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: st.ObservedGeneration,
			Replicas:           st.CurrentNumberScheduled + st.NumberMisscheduled,
			UpdatedReplicas:    st.UpdatedNumberScheduled,
			ReadyReplicas:      st.NumberAvailable,
			AvailableReplicas:  st.NumberAvailable,
		},
	}
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		dep.Spec.Strategy.Type = onDeleteStrategy
	}
	if st.ObservedGeneration >= ds.Generation && st.UpdatedNumberScheduled == desired && st.NumberAvailable == desired {
		dep.Status.Conditions = []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: ReasonNewReplicaSetAvailable,
		}}
	}
	return dep
}

// TargetView decodes a rendered or live target of kind with decode and returns it as the refresher reads it.
func TargetView(kind string, decode func(into any) error) (*appsv1.Deployment, error) {
	switch kind {
	case config.KindDaemonSet:
		var ds appsv1.DaemonSet
		if err := decode(&ds); err != nil {
			return nil, err
		}
		return DaemonSetView(&ds), nil
	case config.KindDeployment, "":
		var dep appsv1.Deployment
		if err := decode(&dep); err != nil {
			return nil, err
		}
		return &dep, nil
	}
	return nil, fmt.Errorf("target kind %q: unsupported", kind)
}

// ViewKind is the kind a target read as a Deployment stands for: DaemonSet for DaemonSetView's, else Deployment.
func ViewKind(dep *appsv1.Deployment) string {
	if dep.Kind == config.KindDaemonSet {
		return config.KindDaemonSet
	}
	return config.KindDeployment
}
