package harness

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/image-refresh/refresher"
)

// Settle brings the target Deployment's rollout to completion as a kubelet running healthy
// images would: every pod of its ReplicaSets that no node has taken (spec.nodeName empty — no
// kubelet runs here) is marked Running and Ready, until the deployment controller reports the
// rollout complete (current generation observed, every desired replica updated and ready, no
// old one left). Pods a node has taken are left to their kubelet; Settle only waits for them.
func (r *Release) Settle(ctx context.Context) error {
	client := r.Cluster.Client
	err := wait.PollUntilContextTimeout(
		ctx,
		100*time.Millisecond,
		30*time.Second,
		true,
		func(ctx context.Context) (bool, error) {
			dep, err := client.AppsV1().Deployments(r.Namespace).Get(ctx, r.Deployment(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if Settled(dep) {
				return true, nil
			}
			pods, err := client.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for i := range pods.Items {
				pod := &pods.Items[i]
				if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil || isReady(pod) || !ownedByReplicaSet(pod) {
					continue
				}
				now := metav1.Now()
				pod.Status.Phase = corev1.PodRunning
				pod.Status.Conditions = []corev1.PodCondition{
					{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
					{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
				}
				if _, err := client.CoreV1().Pods(r.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
					return false, fmt.Errorf("marking pod %s ready: %w", pod.Name, err)
				}
			}
			return false, nil
		},
	)
	if err != nil {
		return fmt.Errorf("settling the rollout of %s/%s: %w", r.Namespace, r.Deployment(), err)
	}
	return nil
}

// Settled is the refresher's notion of a complete rollout (refresher.RolloutPending).
func Settled(dep *appsv1.Deployment) bool { return refresher.RolloutPending(dep) == "" }

func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func ownedByReplicaSet(pod *corev1.Pod) bool {
	ref := metav1.GetControllerOf(pod)
	return ref != nil && ref.Kind == "ReplicaSet"
}
