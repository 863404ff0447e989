// Package clientset adapts a client-go clientset — such as the fake one of
// k8s.io/client-go/kubernetes/fake — to the refresher's Kubernetes client interface, for
// tests and for programs that already hold a clientset. The refresher binary never imports it:
// the clientset links every API group of Kubernetes.
package clientset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Client serves the refresher's calls from a clientset.
type Client struct{ kubernetes.Interface }

// New wraps cs.
func New(cs kubernetes.Interface) Client { return Client{cs} }

// GetDeployment reads namespace/name.
func (c Client) GetDeployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error) {
	return c.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
}

// PatchDeployment applies a strategic-merge patch to namespace/name as fieldManager.
func (c Client) PatchDeployment(
	ctx context.Context,
	namespace, name string,
	patch []byte,
	fieldManager string,
) (*appsv1.Deployment, error) {
	return c.AppsV1().Deployments(namespace).Patch(
		ctx,
		name,
		types.StrategicMergePatchType,
		patch,
		metav1.PatchOptions{FieldManager: fieldManager},
	)
}

// GetDaemonSet reads namespace/name.
func (c Client) GetDaemonSet(ctx context.Context, namespace, name string) (*appsv1.DaemonSet, error) {
	return c.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
}

// PatchDaemonSet applies a strategic-merge patch to namespace/name as fieldManager.
func (c Client) PatchDaemonSet(ctx context.Context, namespace, name string, patch []byte, fieldManager string) error {
	_, err := c.AppsV1().DaemonSets(namespace).Patch(
		ctx,
		name,
		types.StrategicMergePatchType,
		patch,
		metav1.PatchOptions{FieldManager: fieldManager},
	)
	return err
}

// CreateEvent creates an Event (events.k8s.io/v1) in its namespace.
func (c Client) CreateEvent(ctx context.Context, event *eventsv1.Event) error {
	_, err := c.EventsV1().Events(event.Namespace).Create(ctx, event, metav1.CreateOptions{})
	return err
}

// GetEvent reads the Event namespace/name.
func (c Client) GetEvent(ctx context.Context, namespace, name string) (*eventsv1.Event, error) {
	return c.EventsV1().Events(namespace).Get(ctx, name, metav1.GetOptions{})
}

// PatchEvent applies a JSON merge patch to the Event namespace/name.
func (c Client) PatchEvent(ctx context.Context, namespace, name string, patch []byte) error {
	_, err := c.EventsV1().Events(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// GetCronJob reads the CronJob namespace/name.
func (c Client) GetCronJob(ctx context.Context, namespace, name string) (*batchv1.CronJob, error) {
	return c.BatchV1().CronJobs(namespace).Get(ctx, name, metav1.GetOptions{})
}

// ListPods lists the Pods of namespace that match selector.
func (c Client) ListPods(ctx context.Context, namespace, selector string) (*corev1.PodList, error) {
	return c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
}
