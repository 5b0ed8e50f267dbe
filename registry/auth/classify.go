package auth

import (
	"net/http"
	"strings"
)

// Need is one permission a request requires.
type Need struct {
	Repo   string
	Action Action
}

// Classify says which permissions an OCI distribution API request needs,
// from its method and path (distribution-spec v1.1 endpoints). A request
// outside the API (the /v2/ version check) needs none; a path it cannot
// place needs pull on "" so that only a rule for every repository allows
// it, and the server then answers 404.
func Classify(r *http.Request) []Need {
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == r.URL.Path || p == "" {
		return nil
	}
	if p == "_catalog" {
		return []Need{{Repo: "", Action: Pull}}
	}
	repo, kind, ref := split(p)
	if repo == "" {
		return []Need{{Repo: "", Action: Pull}}
	}
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
		if kind == "manifests" && !strings.Contains(ref, ":") {
			needs = append(needs, Need{repo, Tag}) // a tag, not a digest
		}
		return needs
	}
	return []Need{{repo, Push}}
}

// split finds the repository name before the last API keyword.
func split(p string) (repo, kind, ref string) {
	for _, k := range []string{"/blobs/uploads/", "/blobs/uploads", "/blobs/", "/manifests/", "/tags/list", "/referrers/"} {
		if i := strings.LastIndex(p, k); i > 0 {
			kind = strings.Trim(strings.SplitN(k[1:], "/", 2)[0], "/")
			return p[:i], kind, p[i+len(k):]
		}
	}
	return "", "", ""
}
