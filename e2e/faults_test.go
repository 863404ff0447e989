package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
)

// faultRow is one fault of the matrix and what the refresher must make of it.
type faultRow struct {
	fault string
	// registry: the fault hits image's registry (a proxy host of its own per image; the
	// ingestor when image is unset); api: the API server, for the whole target.
	api   bool
	image harness.Image
	set   func(p *harness.FaultProxy, r *release)
	// want is the decision per image; cause a fragment of the faulted image's log record
	// (its error, or its via_get/decision for a fault that is survived).
	want  decisions
	cause string
	// runArgs are extra refresher flags (a shorter run deadline for API timeouts).
	runArgs []string
	// check runs after the tick (e.g. where a redirect's credential went).
	check func(t *testing.T, p *harness.FaultProxy)
	// otherFails: the fault also hits the other Deployment (the API server is unreachable).
	otherFails bool
	// viaGet: the lookup falls back to a GET of the manifest (a second manifest request).
	viaGet bool
}

// maxRSSMiB is the refresher's peak resident set allowed on every row: a registry answer is
// read bounded (4 MiB), however large it is (the CronJob's memory limit is 64Mi).
const maxRSSMiB = 32

// getFallback makes the ingestor's HEAD answer 200 without Docker-Content-Digest and answers
// the GET that follows with contentType, headers (on the GET only) and body (written by write).
func getFallback(
	contentType string,
	headers map[string]string,
	write func(io.Writer),
) func(*harness.FaultProxy, *release) {
	return func(p *harness.FaultProxy, _ *release) {
		p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if !harness.IsManifest(r, "") {
				return false
			}
			w.Header().Set("Content-Type", contentType)
			if r.Method != http.MethodGet {
				w.WriteHeader(http.StatusOK)
				return true
			}
			for k, v := range headers {
				w.Header().Set(k, v)
			}
			w.WriteHeader(http.StatusOK)
			write(w)
			return true
		})
	}
}

// writeZeros writes n zero bytes, or until the client hangs up.
func writeZeros(n int64) func(io.Writer) {
	return func(w io.Writer) {
		chunk := make([]byte, 64<<10)
		for ; n > 0; n -= int64(len(chunk)) {
			if _, err := w.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
				return
			}
		}
	}
}

func registryStatus(status int, headers map[string]string, body string) func(*harness.FaultProxy, *release) {
	return func(p *harness.FaultProxy, _ *release) {
		respond := harness.Respond(status, headers, body)
		p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if harness.IsManifest(r, "") {
				respond(w)
				return true
			}
			return false
		})
	}
}

func apiStatus(method string, status int, reason string, once bool) func(*harness.FaultProxy, *release) {
	return func(p *harness.FaultProxy, _ *release) {
		body, _ := json.Marshal(
			map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": status,
				"message": fmt.Sprintf("injected: %s %d", reason, status)},
		)
		respond := harness.Respond(status, map[string]string{"Content-Type": "application/json"}, string(body))
		fired := false
		p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != method || !strings.HasSuffix(r.URL.Path, "/deployments/"+deployName) || (once && fired) {
				return false
			}
			fired = true
			respond(w)
			return true
		})
	}
}

func faultMatrix() []faultRow {
	failedIngestor := decisions{
		ingestor:    refresher.DecisionFailed,
		jobsManager: refresher.DecisionRestart,
		podsMonitor: refresher.DecisionUnchanged,
	}
	survived := decisions{
		ingestor:    refresher.DecisionUpdateEnv,
		jobsManager: refresher.DecisionRestart,
		podsMonitor: refresher.DecisionUnchanged,
	}
	allFailed := decisions{
		ingestor:    refresher.DecisionFailed,
		jobsManager: refresher.DecisionFailed,
		podsMonitor: refresher.DecisionFailed,
	}
	// A rollout-restart image that cannot be resolved holds every rollout of its Deployment:
	// the restarted pods would pull its tag's new digest with nothing recording it.
	failedJobsManager := decisions{
		ingestor:    refresher.DecisionWaiting,
		jobsManager: refresher.DecisionFailed,
		podsMonitor: refresher.DecisionUnchanged,
	}
	registryError := func(code string) string { return `{"errors":[{"code":"` + code + `","message":"injected"}]}` }
	return []faultRow{
		{fault: "registry: 401 on the token request", set: func(p *harness.FaultProxy, _ *release) {
			p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if harness.IsToken(r) {
					harness.Respond(http.StatusUnauthorized, nil, `{"error":"unauthorized","refresh_token":"secret-must-not-leak"}`)(w)
					return true
				}
				return false
			})
		}, want: failedIngestor, cause: "401"},
		{
			fault: "registry: 403 on the manifest",
			set:   registryStatus(http.StatusForbidden, nil, registryError("DENIED")),
			want:  failedIngestor,
			cause: "403",
		},
		{
			fault: "registry: 404 tag",
			set:   registryStatus(http.StatusNotFound, nil, registryError("MANIFEST_UNKNOWN")),
			want:  failedIngestor,
			cause: "404",
		},
		{
			fault: "registry: 404 repository",
			set:   registryStatus(http.StatusNotFound, nil, registryError("NAME_UNKNOWN")),
			want:  failedIngestor,
			cause: "404",
		},
		{
			fault: "registry: 429 with Retry-After",
			set: registryStatus(
				http.StatusTooManyRequests,
				map[string]string{"Retry-After": "30"},
				registryError("TOOMANYREQUESTS"),
			),
			want:  failedIngestor,
			cause: "429",
		},
		{
			fault: "registry: 500",
			set:   registryStatus(http.StatusInternalServerError, nil, ""),
			want:  failedIngestor,
			cause: "500",
		},
		{
			fault: "registry: 503",
			set:   registryStatus(http.StatusServiceUnavailable, nil, ""),
			want:  failedIngestor,
			cause: "503",
		},
		{
			fault: "registry: timeout (HEAD unanswered past the 20 s lookup deadline)",
			set: func(p *harness.FaultProxy, _ *release) {
				p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if !harness.IsManifest(r, "") {
						return false
					}
					select {
					case <-r.Context().Done():
					case <-time.After(30 * time.Second):
					}
					return true
				})
			},
			want:  failedIngestor,
			cause: "deadline exceeded",
		},
		{fault: "registry: connection reset mid-response", set: func(p *harness.FaultProxy, _ *release) {
			p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if harness.IsManifest(r, "") {
					harness.ResetMidResponse(w)
					return true
				}
				return false
			})
		}, want: failedIngestor, cause: "EOF"},
		{fault: "registry: 200 without Docker-Content-Digest (GET fallback)", set: func(p *harness.FaultProxy, _ *release) {
			p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if harness.IsManifest(r, http.MethodHead) {
					w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
					w.WriteHeader(http.StatusOK)
					return true
				}
				return false
			})
		}, want: survived, cause: `"via_get":true`},
		{fault: "registry: captive portal (HEAD 200 without digest, GET 200 with an HTML login page)", viaGet: true,
			set: getFallback("text/html; charset=utf-8", nil, func(w io.Writer) {
				_, _ = io.WriteString(
					w,
					"<html><body>Log in to the guest network: token "+time.Now().Format(time.RFC3339Nano)+"</body></html>",
				)
			}), want: failedIngestor, cause: `not-a-manifest: the registry answered content type \"text/html; charset=utf-8\"`},
		{fault: "registry: GET answers a schema-1 signed manifest with a Docker-Content-Digest", viaGet: true,
			set: getFallback(
				"application/vnd.docker.distribution.manifest.v1+prettyjws",
				map[string]string{"Docker-Content-Digest": "sha256:" + strings.Repeat("ab", 32)},
				func(w io.Writer) {
					_, _ = io.WriteString(w, `{"schemaVersion":1,"name":"x","tag":"prod","fsLayers":[],"history":[],"signatures":[]}`)
				},
			), want: failedIngestor, cause: "not-a-manifest"},
		{fault: "registry: 80 MiB manifest on the GET fallback (streamed, no length)", viaGet: true,
			set: getFallback(
				"application/vnd.oci.image.index.v1+json",
				nil,
				writeZeros(80<<20),
			), want: failedIngestor, cause: "too-large"},
		{fault: "registry: 80 MiB manifest on the GET fallback (Content-Length declared)", viaGet: true,
			set: getFallback(
				"application/vnd.oci.image.index.v1+json",
				map[string]string{"Content-Length": strconv.Itoa(80 << 20)},
				writeZeros(80<<20),
			), want: failedIngestor, cause: "too-large"},
		{
			fault:  "registry: 80 MiB error body (HEAD 200 without digest, GET 404)",
			viaGet: true,
			set: func(p *harness.FaultProxy, _ *release) {
				p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if !harness.IsManifest(r, "") {
						return false
					}
					if r.Method == http.MethodHead {
						w.WriteHeader(http.StatusOK)
						return true
					}
					w.WriteHeader(http.StatusNotFound)
					writeZeros(80 << 20)(w)
					return true
				})
			},
			want:  failedIngestor,
			cause: "404",
		},
		{
			fault: "registry: malformed Docker-Content-Digest",
			set: registryStatus(
				http.StatusOK,
				map[string]string{
					"Docker-Content-Digest": "sha256:not-hex",
					"Content-Type":          "application/vnd.oci.image.index.v1+json",
				},
				"",
			),
			want:  failedIngestor,
			cause: "sha256:not-hex",
		},
		{
			fault: "registry: sha512 digest",
			set: registryStatus(
				http.StatusOK,
				map[string]string{
					"Docker-Content-Digest": "sha512:" + strings.Repeat("ab", 64),
					"Content-Type":          "application/vnd.oci.image.index.v1+json",
				},
				"",
			),
			want:  failedIngestor,
			cause: "sha512",
		},
		{fault: "registry: HEAD redirected to another host", set: func(p *harness.FaultProxy, r *release) {
			other := newRedirectTarget(r)
			r.t.Cleanup(other.Close)
			p.SetFault(func(w http.ResponseWriter, req *http.Request) bool {
				if harness.IsManifest(req, http.MethodHead) {
					http.Redirect(w, req, other.URL+req.URL.Path, http.StatusTemporaryRedirect)
					return true
				}
				return false
			})
			redirectSeen = other
		}, want: failedIngestor, cause: "redirect", check: func(t *testing.T, _ *harness.FaultProxy) {
			// go-containerregistry refuses a redirect from the registry to a private host
			// (SSRF protection): the other host is never asked, so no credential reaches it.
			if redirectSeen.auth != 0 || redirectSeen.requests != 0 {
				t.Errorf(
					"the other host got %d requests, %d with a credential; want none",
					redirectSeen.requests,
					redirectSeen.auth,
				)
			}
		}},
		{fault: "registry: slow token endpoint (3 s)", set: func(p *harness.FaultProxy, _ *release) {
			p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
				if harness.IsToken(r) {
					time.Sleep(3 * time.Second)
				}
				return false
			})
		}, want: survived, cause: `"decision":"update-env"`},
		{
			fault: "registry: 429 on a rollout-restart image",
			image: jobsManager,
			set: registryStatus(
				http.StatusTooManyRequests,
				map[string]string{"Retry-After": "30"},
				registryError("TOOMANYREQUESTS"),
			),
			want:  failedJobsManager,
			cause: "429",
		},
		{
			fault: "registry: 404 tag of a rollout-restart image",
			image: jobsManager,
			set:   registryStatus(http.StatusNotFound, nil, registryError("MANIFEST_UNKNOWN")),
			want:  failedJobsManager,
			cause: "404",
		},
		{
			fault: "registry: 500 on a rollout-restart image",
			image: jobsManager,
			set:   registryStatus(http.StatusInternalServerError, nil, ""),
			want:  failedJobsManager,
			cause: "500",
		},
		{
			fault: "API: 403 on get",
			api:   true,
			set:   apiStatus(http.MethodGet, http.StatusForbidden, "Forbidden", false),
			want:  allFailed,
			cause: "Forbidden 403",
		},
		{
			fault: "API: 403 on patch",
			api:   true,
			set:   apiStatus(http.MethodPatch, http.StatusForbidden, "Forbidden", false),
			want:  allFailed,
			cause: `"intended":"restart"`,
		},
		{
			fault: "API: 404 target",
			api:   true,
			set:   apiStatus(http.MethodGet, http.StatusNotFound, "NotFound", false),
			want:  allFailed,
			cause: "NotFound 404",
		},
		{
			fault: "API: 409 conflict (re-read, re-plan)",
			api:   true,
			set:   apiStatus(http.MethodPatch, http.StatusConflict, "Conflict", true),
			want: decisions{
				ingestor:    refresher.DecisionUpdateEnv,
				jobsManager: refresher.DecisionRestart,
				podsMonitor: refresher.DecisionUnchanged,
			},
			cause: `"decision":"restart"`,
		},
		{
			fault:   "API: timeout (run deadline 8 s)",
			api:     true,
			runArgs: []string{"--timeout=8s"},
			set: func(p *harness.FaultProxy, _ *release) {
				p.SetFault(func(w http.ResponseWriter, r *http.Request) bool {
					if !strings.HasSuffix(r.URL.Path, "/deployments/"+deployName) {
						return false
					}
					<-r.Context().Done()
					return true
				})
			},
			want:  allFailed,
			cause: "deadline",
		},
		{fault: "API: unreachable", api: true, want: allFailed, cause: "connection refused", otherFails: true},
	}
}

// redirectTarget is "another host" a registry redirects a HEAD to: it answers with the digest
// and counts the requests that carried a credential.
type redirectTarget struct {
	URL            string
	requests, auth int
	srv            *http.Server
	ln             net.Listener
}

var redirectSeen *redirectTarget

func newRedirectTarget(r *release) *redirectTarget {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	rt := &redirectTarget{URL: "http://" + ln.Addr().String(), ln: ln}
	rt.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rt.requests++
		if req.Header.Get("Authorization") != "" {
			rt.auth++
		}
		w.Header().Set("Docker-Content-Digest", r.Digest[ingestor])
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		w.WriteHeader(http.StatusOK)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = rt.srv.Serve(ln) }()
	return rt
}

func (rt *redirectTarget) Close() { _ = rt.srv.Close() }

// TestFaultMatrix runs one refresher tick per fault against the token-auth registry and the
// real API server, each behind a fault-injecting proxy: the ingestor's repository is served
// through a registry proxy of its own (so a fault there is one host's), jobs-manager moves on
// every tick (another image still processed), and for API faults the proxy fronts the API
// server and faults the release's Deployment only; image "other" on a second Deployment moves
// on every tick and must be refreshed beside every fault. Per row: each image's decision, the exit code,
// nothing written for the faulted
// image(s) but their status annotation, and one log record naming the cause. The table in
// docs/refresher.md (between the fault-matrix markers) is generated from the rows; -update rewrites it.
func TestFaultMatrix(t *testing.T) {
	w := setup(t)
	regProxies := map[harness.Image]*harness.FaultProxy{}
	for _, img := range []harness.Image{ingestor, jobsManager} {
		p, err := harness.StartRegistryProxy(w.registry.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		regProxies[img] = p
	}
	apiProxy, err := harness.StartAPIProxy(w.cluster.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(apiProxy.Close)

	r := newRelease(t, w, tools.Helm3, w.registry)
	r.install("--set", "images.ingestor.repository="+regProxies[ingestor].Host+"/"+r.Repo(ingestor),
		"--set", "images.jobsManager.repository="+regProxies[jobsManager].Host+"/"+r.Repo(jobsManager))
	other := addOtherTarget(t, r)
	r.refreshOK()
	pod := r.cronJobPod()
	proxied := filepath.Join(t.TempDir(), "proxied.kubeconfig")
	if err := apiProxy.WriteKubeconfig(pod.Kubeconfig, proxied); err != nil {
		t.Fatal(err)
	}
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	if err := harness.RedirectKubeconfig(pod.Kubeconfig, unreachable, "https://127.0.0.1:1", nil); err != nil {
		t.Fatal(err)
	}

	var table strings.Builder
	table.WriteString(
		"| fault | faulted | ingestor (set-env) | jobs-manager (rollout-restart) | pods-monitor | " +
			"other (another Deployment) | exit | written for the faulted and held images | log names | " +
			"manifest requests to the faulted registry | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
	)
	rows, ran := faultMatrix(), 0
	requests := map[string]int{} // manifest requests the faulted registry got, by registry row
	for _, row := range rows {
		ok := t.Run(strings.NewReplacer(" ", "_", ":", "").Replace(row.fault), func(t *testing.T) {
			ran++
			r.t = t
			r.push(ingestor)
			r.push(jobsManager)
			other.push(t, r)
			if err := r.Settle(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := other.settle(t.Context(), r); err != nil {
				t.Fatal(err)
			}
			_, otherGeneration := other.state(t, r)
			before := r.state()
			tick := *pod
			tick.Args = append(append([]string{}, pod.Args...), row.runArgs...)
			if row.api {
				tick.Kubeconfig = proxied
				if row.set == nil {
					tick.Kubeconfig = unreachable
				}
			}
			target := regProxies[faultedImage(row)]
			if row.api {
				target = apiProxy
			}
			if row.set != nil {
				row.set(target, r)
			}
			target.Seen() // forget the requests before this tick
			res, err := tick.Run(t.Context(), w.bins.Refresher)
			target.SetFault(nil)
			manifests := 0
			for _, req := range target.Seen() {
				if strings.Contains(req.Path, "/manifests/") {
					manifests++
				}
			}
			if !row.api {
				// One HEAD per tag and no retries: a GET only when a 2xx HEAD lacks the digest.
				limit := 1
				if row.viaGet || strings.Contains(row.cause, "via_get") {
					limit = 2
				}
				if manifests > limit {
					t.Errorf("%d manifest requests reached the faulted registry, want at most %d (no retries)", manifests, limit)
				}
				requests[row.fault] = manifests
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("peak RSS %.1f MiB", float64(res.MaxRSSKiB)/1024)
			if res.MaxRSSKiB > maxRSSMiB<<10 {
				t.Errorf("peak RSS %.1f MiB, more than %d MiB", float64(res.MaxRSSKiB)/1024, maxRSSMiB)
			}
			checkDecisions(t, res, row.want)
			after := r.state()
			faulted, held := faultedImagesOf(row), heldImagesOf(row)
			checkNothingWritten(t, before, after, append(append([]harness.Image{}, faulted...), held...))
			switch {
			case row.api && len(faulted) > 0:
				// The API refused or never answered: not even a status annotation was written.
				checkUnchanged(t, row.fault, before, after)
			default:
				for _, img := range faulted {
					checkStatusOnTransition(t, before, after, img, "failed")
				}
				for _, img := range held {
					checkStatusOnTransition(t, before, after, img, "waiting")
				}
			}
			if rec := logLine(res.Stderr, faultedImage(row)); !strings.Contains(rec, row.cause) {
				t.Errorf("the log record of %s does not name %q:\n%s\nlog:\n%s", faultedImage(row).Name, row.cause, rec, res.Stderr)
			}
			if strings.Contains(res.Stderr, "secret-must-not-leak") {
				t.Errorf("a token endpoint's body reached the log:\n%s", res.Stderr)
			}
			if row.check != nil {
				row.check(t, target)
			}
			// The other target is refreshed whatever happened to this one (unless the API
			// server is gone for every target).
			otherWant := `"decision":"restart"`
			if row.otherFails {
				otherWant = `"decision":"failed"`
			}
			if rec := logLine(res.Stderr, harness.Image{Name: otherImage}); !strings.Contains(rec, otherWant) {
				t.Errorf("%s: want %s beside the fault: %s", other, otherWant, rec)
			}
			annotation, generation := other.state(t, r)
			if refreshed := annotation == other.digest && generation > otherGeneration; refreshed == row.otherFails {
				t.Errorf(
					"%s: annotation %q (pushed %s), generation %d (was %d)",
					other,
					annotation,
					other.digest,
					generation,
					otherGeneration,
				)
			}
		})
		written := "its status annotation only, on the transition to `failed` (nothing while it stays failed)"
		if len(heldImagesOf(row)) > 0 {
			written += "; the held image's status only, on the transition to `waiting`"
		}
		if row.api {
			written = "nothing"
		}
		if len(faultedImagesOf(row)) == 0 {
			written = "— (survived: refreshed)"
		}
		if !ok {
			written = "**FAILED**"
		}
		otherDecision := refresher.DecisionRestart
		if row.otherFails {
			otherDecision = refresher.DecisionFailed
		}
		faultedName := faultedImage(row).Name
		if row.api {
			faultedName = "the Deployment"
		}
		sent := "—"
		if !row.api {
			sent = fmt.Sprint(requests[row.fault])
		}
		fmt.Fprintf(
			&table,
			"| %s | %s | `%s` | `%s` | `%s` | `%s` | %d | %s | `%s` | %s | ≤ %d MiB |\n",
			row.fault,
			faultedName,
			row.want[ingestor],
			row.want[jobsManager],
			row.want[podsMonitor],
			otherDecision,
			exitOf(row.want),
			written,
			row.cause,
			sent,
			maxRSSMiB,
		)
	}
	r.t = t
	if !t.Failed() && ran == len(rows) { // -run may have picked some rows only
		checkDocSection(t, "fault-matrix", "TestFaultMatrix", table.String())
	}
}

// heldImagesOf are the images whose change waits for the faulted one.
func heldImagesOf(row faultRow) []harness.Image {
	var out []harness.Image
	for _, img := range allImages {
		if row.want[img] == refresher.DecisionWaiting {
			out = append(out, img)
		}
	}
	return out
}

func faultedImagesOf(row faultRow) []harness.Image {
	var out []harness.Image
	for _, img := range allImages {
		if row.want[img] == refresher.DecisionFailed {
			out = append(out, img)
		}
	}
	return out
}

// faultedImage is the image whose log record must name the fault: the row's image (the
// ingestor unless it names another), or for an API fault jobs-manager.
func faultedImage(row faultRow) harness.Image {
	if row.api {
		return jobsManager
	}
	if row.image != (harness.Image{}) {
		return row.image
	}
	return ingestor
}

func exitOf(want decisions) int {
	for _, d := range want {
		if d == refresher.DecisionFailed {
			return 1
		}
	}
	return 0
}

// logLine is the refresher's JSON log record of image.
func logLine(stderr string, img harness.Image) string {
	for line := range strings.Lines(stderr) {
		if strings.Contains(line, `"image":"`+img.Name+`"`) && !strings.Contains(line, `"msg":"event not created"`) {
			return line
		}
	}
	return ""
}

// checkNothingWritten requires the audit annotation, the env and the pod template's restart
// stamp of each faulted image to be as before (its status annotation may move).
func checkNothingWritten(t *testing.T, before, after *harness.State, faulted []harness.Image) {
	t.Helper()
	for _, img := range faulted {
		if b, a := before.Annotation(img), after.Annotation(img); b != a {
			t.Errorf("%s: %s written %q → %q", img.Name, img.Annotation(), b, a)
		}
		if img == ingestor {
			b, _ := before.Env(digestEnv)
			a, _ := after.Env(digestEnv)
			if b != a {
				t.Errorf("ingestor: %s written %q → %q", digestEnv, b, a)
			}
		}
		if img == jobsManager && before.RestartedAt() != after.RestartedAt() {
			t.Errorf("jobs-manager failed, yet restarted: %q → %q", before.RestartedAt(), after.RestartedAt())
		}
	}
}

// checkDocSection compares the docs/refresher.md section name with content, which test
// generates; -update rewrites it.
func checkDocSection(t *testing.T, name, test, content string) {
	t.Helper()
	golden.Section(t, filepath.Join(w0(t), "docs", "refresher.md"), name, "go test ./e2e -run "+test, content)
}

// w0 is the module root.
func w0(t *testing.T) string {
	t.Helper()
	root, err := harness.ModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return root
}
