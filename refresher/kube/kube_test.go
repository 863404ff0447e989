package kube

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// request is what the fake API server saw.
type request struct {
	method, path, query, contentType, userAgent, body string
}

func serve(t *testing.T, status int, body any) (*Client, *[]request) {
	t.Helper()
	var seen []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		seen = append(
			seen,
			request{
				r.Method,
				r.URL.Path,
				r.URL.RawQuery,
				r.Header.Get("Content-Type"),
				r.Header.Get("User-Agent"),
				string(data),
			},
		)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	c, err := NewForConfig(&rest.Config{Host: srv.URL}, "image-refresh/test")
	if err != nil {
		t.Fatal(err)
	}
	return c, &seen
}

func deployment() *appsv1.Deployment {
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            "web",
			Namespace:       "ns",
			ResourceVersion: "7",
			Annotations:     map[string]string{"a": "b"},
		},
	}
}

func TestGetDeployment(t *testing.T) {
	c, seen := serve(t, http.StatusOK, deployment())
	dep, err := c.GetDeployment(context.Background(), "ns", "web")
	if err != nil {
		t.Fatal(err)
	}
	if dep.Name != "web" || dep.ResourceVersion != "7" || dep.Annotations["a"] != "b" {
		t.Errorf("decoded %+v", dep.ObjectMeta)
	}
	// timeout=30s: client-go sends the client's request timeout to the server as well.
	want := request{
		method:    "GET",
		path:      "/apis/apps/v1/namespaces/ns/deployments/web",
		query:     "timeout=30s",
		userAgent: "image-refresh/test",
	}
	if len(*seen) != 1 || (*seen)[0] != want {
		t.Errorf("requests %+v, want [%+v]", *seen, want)
	}
}

func TestPatchDeployment(t *testing.T) {
	c, seen := serve(t, http.StatusOK, deployment())
	patch := `{"metadata":{"annotations":{"x":"y"}}}`
	if _, err := c.PatchDeployment(context.Background(), "ns", "web", []byte(patch), "image-refresh"); err != nil {
		t.Fatal(err)
	}
	want := request{
		method:      "PATCH",
		path:        "/apis/apps/v1/namespaces/ns/deployments/web",
		query:       "fieldManager=image-refresh&timeout=30s",
		contentType: "application/strategic-merge-patch+json",
		userAgent:   "image-refresh/test",
		body:        patch,
	}
	if len(*seen) != 1 || (*seen)[0] != want {
		t.Errorf("requests %+v, want [%+v]", *seen, want)
	}
}

func TestCreateEvent(t *testing.T) {
	c, seen := serve(t, http.StatusCreated, map[string]any{"apiVersion": "events.k8s.io/v1", "kind": "Event"})
	event := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: "ns"},
		Reason:     "Restarted",
		Action:     "Refresh",
	}
	if err := c.CreateEvent(context.Background(), event); err != nil {
		t.Fatal(err)
	}
	if len(*seen) != 1 {
		t.Fatalf("requests %+v, want one", *seen)
	}
	got := (*seen)[0]
	if got.method != "POST" || got.path != "/apis/events.k8s.io/v1/namespaces/ns/events" ||
		got.contentType != "application/json" {
		t.Errorf("request %+v, want a JSON POST to /apis/events.k8s.io/v1/namespaces/ns/events", got)
	}
	var sent map[string]any
	if err := json.Unmarshal([]byte(got.body), &sent); err != nil || sent["apiVersion"] != "events.k8s.io/v1" ||
		sent["kind"] != "Event" || sent["reason"] != "Restarted" {
		t.Errorf("body %s (%v): want an events.k8s.io/v1 Event", got.body, err)
	}
}

// API errors keep their Status, so callers can tell a conflict or a 403 from the rest.
func TestStatusErrors(t *testing.T) {
	for _, tc := range []struct {
		code int
		is   func(error) bool
	}{
		{http.StatusNotFound, apierrors.IsNotFound},
		{http.StatusForbidden, apierrors.IsForbidden},
		{http.StatusConflict, apierrors.IsConflict},
	} {
		status := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
			Code: int32(tc.code), Reason: metav1.StatusReason(http.StatusText(tc.code))}
		switch tc.code {
		case http.StatusNotFound:
			status.Reason = metav1.StatusReasonNotFound
		case http.StatusForbidden:
			status.Reason = metav1.StatusReasonForbidden
		case http.StatusConflict:
			status.Reason = metav1.StatusReasonConflict
		}
		c, _ := serve(t, tc.code, status)
		_, err := c.GetDeployment(context.Background(), "ns", "web")
		var apiErr apierrors.APIStatus
		if !tc.is(err) || !errors.As(err, &apiErr) {
			t.Errorf("HTTP %d: error %v (%T) is not recognised as such", tc.code, err, err)
		}
	}
}

func TestNewForConfigLeavesTheCallersConfig(t *testing.T) {
	in := &rest.Config{Host: "https://example.invalid", QPS: 5}
	if _, err := NewForConfig(in, "ua"); err != nil {
		t.Fatal(err)
	}
	if in.QPS != 5 || in.Timeout != 0 {
		t.Errorf("NewForConfig changed the caller's config: %+v", in)
	}
}

func TestListPods(t *testing.T) {
	list := &corev1.PodList{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"},
		Items: []corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
				{Name: "api", ImageID: "docker.io/x/api@sha256:" + strings.Repeat("a", 64)},
			}}},
		},
	}
	c, seen := serve(t, http.StatusOK, list)
	pods, err := c.ListPods(context.Background(), "ns", "app=web,tier in (api)")
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 ||
		pods.Items[0].Status.ContainerStatuses[0].ImageID != list.Items[0].Status.ContainerStatuses[0].ImageID {
		t.Errorf("decoded %+v", pods.Items)
	}
	want := request{
		method:    "GET",
		path:      "/api/v1/namespaces/ns/pods",
		query:     "labelSelector=app%3Dweb%2Ctier+in+%28api%29&timeout=30s",
		userAgent: "image-refresh/test",
	}
	if len(*seen) != 1 || (*seen)[0] != want {
		t.Errorf("requests %+v, want %+v", *seen, want)
	}

	c, _ = serve(
		t,
		http.StatusForbidden,
		apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no list")).Status(),
	)
	if _, err := c.ListPods(context.Background(), "ns", "app=web"); !apierrors.IsForbidden(err) {
		t.Errorf("403: %v, want a Forbidden error", err)
	}
}
