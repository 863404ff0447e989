package registrytest

import "net/http"

// Answer answers an authorized request of a repository in place of the registry, or returns
// false to let the registry answer it: a broken or hostile registry's answers.
type Answer func(w http.ResponseWriter, r *http.Request) bool

// SetAnswer makes a answer repo's requests ("ghcr.io/tracebloc/ingestor") from now on; nil
// removes it.
func (s *Server) SetAnswer(repo string, a Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a == nil {
		delete(s.answers, canonicalRepo(repo))
		return
	}
	s.answers[canonicalRepo(repo)] = a
}
