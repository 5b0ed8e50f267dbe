package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/registry/store"
)

// maxPage caps a page of tags or repositories when the client asks for
// more (or for all); the Link header leads to the rest.
const maxPage = 10000

// pageSize reads ?n=. ok is false when n is absent.
func pageSize(q url.Values) (n int, err error) {
	if !q.Has("n") {
		return maxPage, nil
	}
	n, err = strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		return 0, &Error{Code: CodeUnsupported, Status: http.StatusBadRequest, Message: "n must be a non-negative integer"}
	}
	return min(n, maxPage), nil
}

// page answers a list page and, when more remain, a Link to the next one
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#listing-tags).
func page(w http.ResponseWriter, endpoint string, items []string, n int, body func([]string) any) error {
	if len(items) > n {
		items = items[:n]
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {items[n-1]}}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, endpoint, q.Encode()))
	}
	if items == nil {
		items = []string{}
	}
	return writeJSON(w, "application/json", body(items))
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding response: %w", err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

func (s *Server) tags(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	n, err := pageSize(q)
	if err != nil {
		return err
	}
	var tags []string
	if n > 0 {
		if tags, err = s.cfg.Meta.Tags(r.Context(), rt.repo, q.Get("last"), n+1); err != nil {
			return fmt.Errorf("listing tags: %w", err)
		}
	} else if _, err = s.cfg.Meta.Tags(r.Context(), rt.repo, "", 1); err != nil {
		return fmt.Errorf("listing tags: %w", err) // n=0 still says whether the repository exists
	}
	return page(w, "/v2/"+rt.repo+"/tags/list", tags, n, func(tags []string) any {
		return struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}{rt.repo, tags}
	})
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request, _ route) error {
	q := r.URL.Query()
	n, err := pageSize(q)
	if err != nil {
		return err
	}
	all, err := s.cfg.Meta.Repositories(r.Context())
	if err != nil {
		return fmt.Errorf("listing repositories: %w", err)
	}
	var repos []string
	last := q.Get("last")
	for _, name := range all {
		if name > last && len(repos) <= n {
			repos = append(repos, name)
		}
	}
	return page(w, "/v2/_catalog", repos, n, func(repos []string) any {
		return struct {
			Repositories []string `json:"repositories"`
		}{repos}
	})
}

// referrers lists the manifests whose subject is the digest, as an image
// index carrying each one's artifactType and annotations
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#listing-referrers).
// An unknown subject or repository has an empty list, not a 404.
func (s *Server) referrers(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	ms, err := s.cfg.Meta.Referrers(r.Context(), rt.repo, d, at)
	if err != nil && !errors.Is(err, store.ErrNameUnknown) {
		return fmt.Errorf("listing referrers: %w", err)
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: make([]ocispec.Descriptor, 0, len(ms))}
	idx.SchemaVersion = 2
	for _, m := range ms {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{
			MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType, Annotations: m.Annotations,
		})
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, ocispec.MediaTypeImageIndex, idx)
}
