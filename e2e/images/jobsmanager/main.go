// Command jobsmanager stands in for jobs-manager: on start it launches one ingestion Job
// running INGESTOR_IMAGE_REPOSITORY@INGESTOR_IMAGE_DIGEST (or :INGESTOR_IMAGE_TAG when the
// digest is empty), as the real jobs-manager launches ingestors, and serves readiness on
// $PORT (8080): ready once that Job succeeded. A failed ingestion Job makes it exit 1, so a
// crash-looping ingestor keeps its consumer from ever becoming Ready (the rollout of a bad
// ingestor digest fails); E2E_CRASH=1 in the image's config (a broken build) makes it exit 1
// at once. It talks to the API server with the pod's ServiceAccount token through
// in-cluster config (KUBERNETES_SERVICE_HOST/PORT, the mounted token and CA), with the
// standard library only, so the image stays small.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if os.Getenv("E2E_CRASH") == "1" {
		log.Error("this build crashes on start (E2E_CRASH=1)")
		os.Exit(1)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	ready := make(chan struct{})
	go launch(log, ready)
	http.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-ready:
			_, _ = w.Write([]byte("ok\n"))
		default:
			http.Error(w, "ingestion job not succeeded yet", http.StatusServiceUnavailable)
		}
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		log.Error("serving", "err", err)
		os.Exit(1)
	}
}

// launch creates the ingestion Job, retrying until the API server accepts it (or it exists),
// then follows it: ready once it succeeded, exit 1 when it failed.
func launch(log *slog.Logger, ready chan struct{}) {
	repo, tag, digest := os.Getenv("INGESTOR_IMAGE_REPOSITORY"), os.Getenv("INGESTOR_IMAGE_TAG"),
		os.Getenv("INGESTOR_IMAGE_DIGEST")
	image := repo + ":" + tag
	if digest != "" {
		image = repo + "@" + digest
	}
	var name string
	for {
		var err error
		if name, err = createJob(log, image, digest); err == nil {
			break
		}
		log.Error("launching the ingestion job", "image", image, "err", err)
		time.Sleep(2 * time.Second)
	}
	for {
		state, err := jobState(name)
		switch {
		case err != nil:
			log.Error("reading the ingestion job", "job", name, "err", err)
		case state == "Complete":
			log.Info("the ingestion job succeeded", "job", name, "image", image)
			close(ready)
			return
		case state == "Failed":
			log.Error("the ingestion job failed", "job", name, "image", image)
			os.Exit(1)
		}
		time.Sleep(time.Second)
	}
}

// jobState is "Complete" or "Failed" once the Job has that condition, "" before.
func jobState(name string) (string, error) {
	var job struct {
		Status struct {
			Conditions []struct{ Type, Status string }
		}
	}
	body, err := call(http.MethodGet, "/apis/batch/v1/namespaces/{ns}/jobs/"+name, nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(body, &job); err != nil {
		return "", err
	}
	for _, c := range job.Status.Conditions {
		if (c.Type == "Complete" || c.Type == "Failed") && c.Status == "True" {
			return c.Type, nil
		}
	}
	return "", nil
}

func createJob(log *slog.Logger, image, digest string) (string, error) {
	pod, _ := os.Hostname()
	name := "ingest-" + pod
	if len(name) > 52 {
		name = name[:52]
	}
	name = strings.TrimRight(name, "-.")
	no, yes, user := false, true, int64(65532)
	job := map[string]any{
		"apiVersion": "batch/v1",
		"kind":       "Job",
		"metadata": map[string]any{
			"name":        name,
			"labels":      map[string]string{"app.kubernetes.io/component": "ingestor"},
			"annotations": map[string]string{"e2e.image-refresh.io/launched-by": pod},
		},
		"spec": map[string]any{
			"backoffLimit": 0,
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]string{"app.kubernetes.io/component": "ingestor"}},
				"spec": map[string]any{
					"restartPolicy":                "Never",
					"automountServiceAccountToken": false,
					"securityContext": map[string]any{
						"runAsNonRoot": yes, "runAsUser": user, "runAsGroup": user,
						"seccompProfile": map[string]string{"type": "RuntimeDefault"},
					},
					"containers": []map[string]any{{
						"name":            "ingestor",
						"image":           image,
						"imagePullPolicy": "IfNotPresent",
						"env": []map[string]string{
							{"name": "INGESTOR_IMAGE", "value": image},
							{"name": "INGESTOR_DIGEST", "value": digest},
						},
						"securityContext": map[string]any{
							"allowPrivilegeEscalation": no, "readOnlyRootFilesystem": yes, "runAsNonRoot": yes,
							"capabilities": map[string]any{"drop": []string{"ALL"}},
						},
					}},
				},
			},
		},
	}
	body, err := json.Marshal(job)
	if err != nil {
		return "", err
	}
	if _, err := call(http.MethodPost, "/apis/batch/v1/namespaces/{ns}/jobs", body, http.StatusCreated); err != nil {
		var exists errConflict
		if !errors.As(err, &exists) {
			return "", err
		}
		log.Info("the ingestion job exists", "job", name, "image", image)
		return name, nil
	}
	log.Info("launched the ingestion job", "job", name, "image", image)
	return name, nil
}

// errConflict is a 409 answer.
type errConflict struct{ error }

// call sends a request to the API server as the pod's ServiceAccount ({ns} in path is its
// namespace) and returns the body of a want answer.
func call(method, path string, body []byte, want int) ([]byte, error) {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return nil, err
	}
	ns, err := os.ReadFile(saDir + "/namespace")
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	url := "https://" + host + strings.ReplaceAll(path, "{ns}", string(ns))
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case want:
		return msg, nil
	case http.StatusConflict:
		return nil, errConflict{fmt.Errorf("%s %s: %s", method, url, resp.Status)}
	}
	return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, msg)
}
