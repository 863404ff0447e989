package registry

import "context"

// registryKey carries, in the context of every request one operation sends, the registry the
// operation is for (name.Registry.RegistryStr: "ghcr.io", "index.docker.io", "localhost:5000").
// A token request goes to the realm a challenge named, often another host: only the context
// says which registry's challenge, and so whose credentials, it answers.
type registryKey struct{}

func forRegistry(ctx context.Context, registry string) context.Context {
	return context.WithValue(ctx, registryKey{}, registry)
}

// registryOf is the registry the request context was made for, "" when none.
func registryOf(ctx context.Context) string {
	s, _ := ctx.Value(registryKey{}).(string)
	return s
}
