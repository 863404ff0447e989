// Command jobsmanager stands in for jobs-manager: on start it launches one ingestion Job
// running INGESTOR_IMAGE_REPOSITORY@INGESTOR_IMAGE_DIGEST (or :INGESTOR_IMAGE_TAG when the
// digest is empty), as the real jobs-manager launches ingestors, and serves readiness on
// $PORT (8080). It talks to the API server with the pod's ServiceAccount token through
// in-cluster config (KUBERNETES_SERVICE_HOST/PORT, the mounted token and CA), with the
// standard library only, so the image stays small.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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
			http.Error(w, "ingestion job not launched yet", http.StatusServiceUnavailable)
		}
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		log.Error("serving", "err", err)
		os.Exit(1)
	}
}

// launch creates the ingestion Job, retrying until the API server accepts it (or it exists).
func launch(log *slog.Logger, ready chan struct{}) {
	repo, tag, digest := os.Getenv("INGESTOR_IMAGE_REPOSITORY"), os.Getenv("INGESTOR_IMAGE_TAG"), os.Getenv("INGESTOR_IMAGE_DIGEST")
	image := repo + ":" + tag
	if digest != "" {
		image = repo + "@" + digest
	}
	for {
		err := createJob(log, image, digest)
		if err == nil {
			close(ready)
			return
		}
		log.Error("launching the ingestion job", "image", image, "err", err)
		time.Sleep(2 * time.Second)
	}
}

func createJob(log *slog.Logger, image, digest string) error {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	ns, err := os.ReadFile(saDir + "/namespace")
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
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
		return err
	}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	url := "https://" + host + "/apis/batch/v1/namespaces/" + string(ns) + "/jobs"
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusCreated:
		log.Info("launched the ingestion job", "job", name, "image", image)
	case http.StatusConflict:
		log.Info("the ingestion job exists", "job", name, "image", image)
	default:
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, msg)
	}
	return nil
}
