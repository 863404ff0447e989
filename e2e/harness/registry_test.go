package harness

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// TestRegistryTokenHandshake pushes with the pusher's credentials, resolves anonymously
// through the 401 → realm → bearer handshake, and checks what the token server granted.
func TestRegistryTokenHandshake(t *testing.T) {
	ctx := context.Background()
	reg := startTestRegistry(t)

	single, err := reg.PushImage(ctx, "team/app", "prod")
	if err != nil {
		t.Fatal(err)
	}
	multi, err := reg.PushIndex(ctx, "team/multi", "prod")
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]string{"team/app": single, "team/multi": multi} {
		got, err := reg.Resolve(ctx, repo, "prod")
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s:prod resolves to %s, pushed %s", repo, got, want)
		}
	}

	var anonymous, pusher []string
	for _, tok := range reg.Tokens.Issued() {
		switch tok.User {
		case "":
			anonymous = append(anonymous, tok.Access...)
		case "pusher":
			pusher = append(pusher, tok.Access...)
		}
	}
	if !slices.Contains(anonymous, "repository:team/multi:pull") {
		t.Errorf("anonymous tokens %q lack pull on team/multi", anonymous)
	}
	if !slices.ContainsFunc(pusher, func(a string) bool {
		return strings.HasPrefix(a, "repository:team/app:") && strings.Contains(a, "push")
	}) {
		t.Errorf("pusher tokens %q lack push on team/app", pusher)
	}

	if err := reg.DeleteManifest(ctx, "team/app", single); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Resolve(ctx, "team/app", "prod"); err == nil {
		t.Error("team/app:prod still resolves after its manifest was deleted")
	}

	reg.Stop()
	if _, err := reg.Resolve(ctx, "team/multi", "prod"); err == nil {
		t.Error("resolving succeeded while the registry is down")
	}
	if err := reg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := reg.Resolve(ctx, "team/multi", "prod"); err != nil || got != multi {
		t.Errorf("after restart team/multi:prod resolves to %q, %v; want %s", got, err, multi)
	}
}

// startTestRegistry starts the real token-auth registry for one test, stopped at its end;
// a failed test prints the registry's logs.
func startTestRegistry(t *testing.T) *Registry {
	t.Helper()
	tools.Require(t, tools.DockerRegistry)
	reg, err := StartRegistry(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	t.Cleanup(func() {
		if t.Failed() {
			DumpLogs(t, reg.Dir(), 40)
		}
	})
	return reg
}
