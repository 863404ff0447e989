// Package kube is the refresher's Kubernetes client: the few API calls a tick makes, over
// client-go's REST machinery with a scheme of only the API group it reads. client-go's typed
// clientset (even one typed client) links the scheme of every Kubernetes API group, which
// would double the refresher binary and its image.
package kube

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
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

// Client reads and patches Deployments (apps/v1), creates Events (events.k8s.io/v1) and lists
// Pods (core/v1, for the status view).
type Client struct {
	apps, events, core rest.Interface
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
	clients := make([]rest.Interface, 2)
	for i, gv := range []schema.GroupVersion{appsv1.SchemeGroupVersion, eventsv1.SchemeGroupVersion} {
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
	return &Client{apps: clients[0], events: clients[1], core: core}, nil
}

var codecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	for gv, add := range map[schema.GroupVersion]func(*runtime.Scheme) error{
		appsv1.SchemeGroupVersion:   appsv1.AddToScheme,
		eventsv1.SchemeGroupVersion: eventsv1.AddToScheme,
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
func (c *Client) PatchDeployment(ctx context.Context, namespace, name string, patch []byte, fieldManager string) (*appsv1.Deployment, error) {
	dep := &appsv1.Deployment{}
	err := c.apps.Patch(types.StrategicMergePatchType).Namespace(namespace).Resource("deployments").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: fieldManager}, metav1.ParameterCodec).
		Body(patch).Do(ctx).Into(dep)
	if err != nil {
		return nil, err
	}
	return dep, nil
}

// CreateEvent creates an Event (events.k8s.io/v1) in its namespace.
func (c *Client) CreateEvent(ctx context.Context, event *eventsv1.Event) error {
	return c.events.Post().Namespace(event.Namespace).Resource("events").Body(event).Do(ctx).Error()
}
