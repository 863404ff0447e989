package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// coreClient is the REST client of the core group (/api/v1), with the Client's settings.
func coreClient(c *rest.Config) (rest.Interface, error) {
	cc := rest.CopyConfig(c)
	cc.APIPath = "/api"
	cc.GroupVersion = &corev1.SchemeGroupVersion
	client, err := rest.RESTClientFor(cc)
	if err != nil {
		return nil, fmt.Errorf("creating the core/v1 REST client: %w", err)
	}
	return client, nil
}

// ListPods lists the Pods of namespace that match selector (label selector syntax): the
// status view reads a target's running digests from their containers' imageID.
func (c *Client) ListPods(ctx context.Context, namespace, selector string) (*corev1.PodList, error) {
	pods := &corev1.PodList{}
	err := c.core.Get().Namespace(namespace).Resource("pods").
		VersionedParams(&metav1.ListOptions{LabelSelector: selector}, metav1.ParameterCodec).
		Do(ctx).Into(pods)
	if err != nil {
		return nil, err
	}
	return pods, nil
}
