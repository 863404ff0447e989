package refresher

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/contract"
)

// progressDeadlineExceeded reports whether the Deployment controller gave up on the rollout
// (condition Progressing with reason ProgressDeadlineExceeded), and the condition's message.
func progressDeadlineExceeded(dep *appsv1.Deployment) (message string, exceeded bool) {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == contract.ReasonProgressDeadlineExceeded {
			return c.Message, true
		}
	}
	return "", false
}

// RolloutPending says why the target's last rollout is not complete, "" when it is (a DaemonSet read through
// contract.DaemonSetView):
// the controller has observed the current generation, every desired replica is updated and
// ready and no old one remains, and the rollout did not exceed its progress deadline. A
// change waits while it is pending, so a rollout that never completes (a crash-looping digest)
// is restarted at most once.
func RolloutPending(dep *appsv1.Deployment) string {
	st := dep.Status
	if message, exceeded := progressDeadlineExceeded(dep); exceeded {
		return fmt.Sprintf("its rollout exceeded its progress deadline (%s)", message)
	}
	if st.ObservedGeneration < dep.Generation {
		return fmt.Sprintf(
			"the %s controller has not observed generation %d yet (observed %d)",
			contract.ViewKind(dep),
			dep.Generation,
			st.ObservedGeneration,
		)
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	if st.UpdatedReplicas != want || st.ReadyReplicas != want || st.Replicas != want {
		return fmt.Sprintf(
			"its rollout is not complete (%d desired replicas: %d updated, %d ready, %d in total)",
			want,
			st.UpdatedReplicas,
			st.ReadyReplicas,
			st.Replicas,
		)
	}
	return ""
}

// rolloutCompleted reports whether the Deployment controller saw the latest rollout complete:
// it sets Progressing to NewReplicaSetAvailable then and keeps it, whatever the pods do later,
// until a new rollout starts (a ReplicaSet other than the new one has replicas again).
func rolloutCompleted(dep *appsv1.Deployment) bool {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == contract.ReasonNewReplicaSetAvailable {
			return dep.Status.Replicas == dep.Status.UpdatedReplicas
		}
	}
	return false
}

// inFlight reports whether the rollout of the last change recorded in prev is still in flight:
// the Deployment is at the generation the status follows (nobody else changed it since), its
// rollout is pending (see RolloutPending) and the controller never saw it complete — pods that
// become unready after the rollout completed are not that change's failure.
func inFlight(dep *appsv1.Deployment, prev Status, pending string) bool {
	return prev.Generation != 0 && prev.Generation == dep.Generation && pending != "" && !rolloutCompleted(dep)
}
