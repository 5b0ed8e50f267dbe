package auth

import (
	"net/http"
	"strings"

	"github.com/airlock-dev/airlock/registry/server"
)

// Need is one permission a request requires.
type Need struct {
	Repo   string
	Action Action
}

// Classify says which permissions an OCI distribution API request needs.
// It places the request with the server's own path parser, so the
// repository checked is the repository the server acts on. The /v2/
// version check needs none; a path the server will refuse anyway needs
// pull on "", which only a rule for every repository grants.
func Classify(r *http.Request) []Need {
	t, err := server.ParseTarget(r)
	if t.Route == "base" && err == nil {
		return nil
	}
	if err != nil || t.Repo == "" {
		return []Need{{Repo: "", Action: Pull}}
	}
	repo := t.Repo
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return []Need{{repo, Pull}}
	case http.MethodDelete:
		return []Need{{repo, Delete}}
	case http.MethodPost, http.MethodPatch:
		needs := []Need{{repo, Push}}
		if from := r.URL.Query().Get("from"); from != "" && r.URL.Query().Get("mount") != "" {
			needs = append(needs, Need{from, Pull})
		}
		return needs
	case http.MethodPut:
		needs := []Need{{repo, Push}}
		if t.Route == "manifest" && !strings.Contains(t.Ref, ":") {
			needs = append(needs, Need{repo, Tag}) // a tag, not a digest
		}
		return needs
	}
	return []Need{{repo, Push}}
}
