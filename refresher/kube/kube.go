// Package kube is the refresher's Kubernetes client: the few API calls a tick makes, over
// client-go's REST machinery with a scheme of only the API groups it reads (apps, events, batch,
// core: Deployments and DaemonSets, Events, CronJobs and Pods for refresher status). client-go's typed
// clientset (even one typed client) links the scheme of every Kubernetes API group, which
// would double the refresher binary and its image.
package kube

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// RequestTimeout bounds every API request of a Client.
const RequestTimeout = 30 * time.Second

// Client reads and patches Deployments and DaemonSets (apps/v1), creates and updates Events (events.k8s.io/v1),
// and for the status view lists Pods (core/v1) and reads CronJobs (batch/v1).
type Client struct {
	apps, events, batch, core rest.Interface
}

// NewForConfig returns a Client for c, fit for one tick: a timeout on every request and no
// client-side rate limit (client-go's default, 5 requests per second, would stretch a tick
// over 200 targets — two requests each — to over a minute). The load stays bounded by the
// refresher's own concurrency, and the API server's priority and fairness applies.
func NewForConfig(c *rest.Config, userAgent string) (*Client, error) {
	c = rest.CopyConfig(c)
	c.Timeout = RequestTimeout
	c.QPS = -1 // disables the client-side rate limiter
	c.UserAgent = userAgent
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = codecs.WithoutConversion()
	clients := make([]rest.Interface, 3)
	for i, gv := range []schema.GroupVersion{
		appsv1.SchemeGroupVersion,
		eventsv1.SchemeGroupVersion,
		batchv1.SchemeGroupVersion,
	} {
		gc := rest.CopyConfig(c)
		gc.GroupVersion = &gv
		client, err := rest.RESTClientFor(gc)
		if err != nil {
			return nil, fmt.Errorf("creating the %s REST client: %w", gv, err)
		}
		clients[i] = client
	}
	core, err := coreClient(c)
	if err != nil {
		return nil, err
	}
	return &Client{apps: clients[0], events: clients[1], batch: clients[2], core: core}, nil
}

var codecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	for gv, add := range map[schema.GroupVersion]func(*runtime.Scheme) error{
		appsv1.SchemeGroupVersion:   appsv1.AddToScheme,
		eventsv1.SchemeGroupVersion: eventsv1.AddToScheme,
		batchv1.SchemeGroupVersion:  batchv1.AddToScheme,
		corev1.SchemeGroupVersion:   corev1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			// The scheme is built from generated, static type registrations.
			panic(fmt.Sprintf("registering %s: %v", gv, err))
		}
		metav1.AddToGroupVersion(scheme, gv)
	}
	return serializer.NewCodecFactory(scheme)
}()

// GetDeployment reads namespace/name.
func (c *Client) GetDeployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error) {
	dep := &appsv1.Deployment{}
	err := c.apps.Get().Namespace(namespace).Resource("deployments").Name(name).Do(ctx).Into(dep)
	if err != nil {
		return nil, err
	}
	return dep, nil
}

// PatchDeployment applies a strategic-merge patch to namespace/name as fieldManager.
func (c *Client) PatchDeployment(
	ctx context.Context,
	namespace, name string,
	patch []byte,
	fieldManager string,
) (*appsv1.Deployment, error) {
	dep := &appsv1.Deployment{}
	err := c.apps.Patch(types.StrategicMergePatchType).Namespace(namespace).Resource("deployments").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: fieldManager}, metav1.ParameterCodec).
		Body(patch).Do(ctx).Into(dep)
	if err != nil {
		return nil, err
	}
	return dep, nil
}

// GetDaemonSet reads namespace/name.
func (c *Client) GetDaemonSet(ctx context.Context, namespace, name string) (*appsv1.DaemonSet, error) {
	ds := &appsv1.DaemonSet{}
	if err := c.apps.Get().Namespace(namespace).Resource("daemonsets").Name(name).Do(ctx).Into(ds); err != nil {
		return nil, err
	}
	return ds, nil
}

// PatchDaemonSet applies a strategic-merge patch to namespace/name as fieldManager.
func (c *Client) PatchDaemonSet(ctx context.Context, namespace, name string, patch []byte, fieldManager string) error {
	return c.apps.Patch(types.StrategicMergePatchType).Namespace(namespace).Resource("daemonsets").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: fieldManager}, metav1.ParameterCodec).
		Body(patch).Do(ctx).Error()
}

// CreateEvent creates an Event (events.k8s.io/v1) in its namespace.
func (c *Client) CreateEvent(ctx context.Context, event *eventsv1.Event) error {
	return c.events.Post().Namespace(event.Namespace).Resource("events").Body(event).Do(ctx).Error()
}

// GetEvent reads the Event namespace/name.
func (c *Client) GetEvent(ctx context.Context, namespace, name string) (*eventsv1.Event, error) {
	event := &eventsv1.Event{}
	if err := c.events.Get().Namespace(namespace).Resource("events").Name(name).Do(ctx).Into(event); err != nil {
		return nil, err
	}
	return event, nil
}

// PatchEvent applies a JSON merge patch to the Event namespace/name.
func (c *Client) PatchEvent(ctx context.Context, namespace, name string, patch []byte) error {
	return c.events.Patch(types.MergePatchType).Namespace(namespace).Resource("events").Name(name).
		Body(patch).Do(ctx).Error()
}

// GetCronJob reads the CronJob namespace/name.
func (c *Client) GetCronJob(ctx context.Context, namespace, name string) (*batchv1.CronJob, error) {
	cj := &batchv1.CronJob{}
	if err := c.batch.Get().Namespace(namespace).Resource("cronjobs").Name(name).Do(ctx).Into(cj); err != nil {
		return nil, err
	}
	return cj, nil
}
