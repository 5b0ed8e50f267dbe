package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/airlock-dev/airlock/registry/store"
)

// Docker's manifest media types, which the registry accepts beside OCI's
// (https://distribution.github.io/distribution/spec/manifest-v2-2/).
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// manifest is the union of the fields the registry reads from image
// manifests and indexes of both families.
type manifest struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

func (m *manifest) isIndex() bool {
	return m.MediaType == ocispec.MediaTypeImageIndex || m.MediaType == mediaTypeDockerManifestList
}

// artifactType is the distribution-spec referrers rule: artifactType, else
// the config's media type.
func (m *manifest) artifactType() string {
	if m.ArtifactType == "" && m.Config != nil {
		return m.Config.MediaType
	}
	return m.ArtifactType
}

func invalidManifest(format string, a ...any) *Error {
	return &Error{Code: CodeManifestInvalid, Status: http.StatusBadRequest, Message: "manifest invalid: " + fmt.Sprintf(format, a...)}
}

// parseManifest checks a manifest body against the image-spec's shape
// (https://github.com/opencontainers/image-spec/blob/v1.1.1/manifest.md,
// image-index.md). The media type comes from the body, else from the
// Content-Type; when both are given they must agree.
func parseManifest(body []byte, contentType string) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, invalidManifest("malformed JSON: %v", err)
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return nil, invalidManifest("schemaVersion must be 2")
	}
	ct, _, _ := mime.ParseMediaType(contentType)
	switch {
	case m.MediaType == "":
		m.MediaType = ct
	case ct != "" && ct != m.MediaType:
		return nil, invalidManifest("Content-Type %q does not match mediaType %q", ct, m.MediaType)
	}
	switch m.MediaType {
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
		if m.Config == nil {
			return nil, invalidManifest("an image manifest needs a config")
		}
		if m.Manifests != nil {
			return nil, invalidManifest("an image manifest has no manifests")
		}
		if err := checkDescriptors(append([]ocispec.Descriptor{*m.Config}, m.Layers...)); err != nil {
			return nil, err
		}
	case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
		if m.Config != nil || m.Layers != nil {
			return nil, invalidManifest("an index has no config or layers")
		}
		if err := checkDescriptors(m.Manifests); err != nil {
			return nil, err
		}
	case "":
		return nil, invalidManifest("no mediaType and no Content-Type")
	default:
		return nil, invalidManifest("unsupported media type %q", m.MediaType)
	}
	if m.Subject != nil {
		if err := checkDescriptors([]ocispec.Descriptor{*m.Subject}); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

func checkDescriptors(ds []ocispec.Descriptor) error {
	for _, d := range ds {
		if d.MediaType == "" {
			return invalidManifest("descriptor %s has no mediaType", d.Digest)
		}
		if _, err := parseDigest(string(d.Digest)); err != nil {
			return invalidManifest("descriptor digest %q is not a sha256 or sha512 digest", d.Digest)
		}
		if d.Size < 0 {
			return invalidManifest("descriptor %s has a negative size", d.Digest)
		}
	}
	return nil
}

// nonDistributable reports layers that registries must not require
// (image-spec layer.md, deprecated but still written): clients never push
// them.
func nonDistributable(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageLayerNonDistributable, //nolint:staticcheck // still accepted on input
		ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still accepted on input
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck // still accepted on input
		mediaTypeDockerForeignLayer:
		return true
	}
	return false
}

// refs checks that everything m needs is in the repository and returns
// it: blobs for an image manifest, child manifests for an index
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pushing-manifests).
// The subject need not exist.
func (s *Server) refs(r *http.Request, repo string, m *manifest) ([]digest.Digest, error) {
	ctx := r.Context()
	var refs []digest.Digest
	if m.isIndex() {
		for _, c := range m.Manifests {
			if _, err := s.cfg.Meta.Manifest(ctx, repo, c.Digest); errors.Is(err, store.ErrManifestUnknown) {
				return nil, &Error{Code: CodeManifestUnknown, Status: http.StatusBadRequest,
					Message: "index references a manifest the repository does not hold", Detail: map[string]string{"digest": c.Digest.String()}}
			} else if err != nil {
				return nil, fmt.Errorf("checking child manifest: %w", err)
			}
			refs = append(refs, c.Digest)
		}
		return refs, nil
	}
	for _, b := range append([]ocispec.Descriptor{*m.Config}, m.Layers...) {
		if nonDistributable(b.MediaType) {
			continue
		}
		ok, err := s.cfg.Meta.BlobLinked(ctx, repo, b.Digest)
		if err != nil {
			return nil, fmt.Errorf("checking blob link: %w", err)
		}
		if ok {
			// A link can outlive its blob until GC's link sweep runs.
			if _, err := s.cfg.Blobs.Stat(ctx, b.Digest); errors.Is(err, store.ErrBlobUnknown) {
				ok = false
			} else if err != nil {
				return nil, fmt.Errorf("checking blob: %w", err)
			}
		}
		if !ok {
			return nil, &Error{Code: CodeManifestBlobUnknown, Status: http.StatusBadRequest,
				Message: "manifest references a blob the repository does not hold", Detail: map[string]string{"digest": b.Digest.String()}}
		}
		refs = append(refs, b.Digest)
	}
	return refs, nil
}

// readManifest reads a manifest body up to the configured cap.
func (s *Server) readManifest(r *http.Request) ([]byte, error) {
	limit := s.cfg.MaxManifestBytes
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &Error{Code: CodeManifestInvalid, Status: http.StatusBadRequest, Message: "reading manifest", Err: err}
	}
	if int64(len(body)) > limit {
		return nil, tooLarge(limit)
	}
	return body, nil
}

func tooLarge(limit int64) *Error {
	return &Error{Code: CodeSizeInvalid, Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("manifest larger than %d bytes", limit)}
}

func (s *Server) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	ref, err := parseReference(rt.ref)
	if err != nil {
		return err
	}
	body, err := s.readManifest(r)
	if err != nil {
		return err
	}
	d := digest.SHA256.FromBytes(body)
	if ref.digest != "" {
		if d = ref.digest.Algorithm().FromBytes(body); d != ref.digest {
			return &Error{Code: CodeDigestInvalid, Status: http.StatusBadRequest,
				Message: "manifest does not hash to the digest in the URL", Detail: map[string]string{"digest": d.String()}}
		}
	}
	m, err := parseManifest(body, r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	// From checking that the referenced blobs exist to recording the
	// manifest, garbage collection may not delete blobs (Server.GC).
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	refs, err := s.refs(r, rt.repo, m)
	if err != nil {
		return err
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(body)), ArtifactType: m.artifactType(), Annotations: m.Annotations}
	if err := s.storeBlob(r, d, body); err != nil {
		return err
	}
	rec := store.Manifest{
		Digest: d, MediaType: m.MediaType, ArtifactType: desc.ArtifactType, Size: desc.Size,
		Annotations: m.Annotations, Refs: refs, Created: s.now(),
	}
	if m.Subject != nil {
		rec.Subject = m.Subject.Digest
	}
	ev := store.Event{Time: s.now(), Actor: s.actor(r), Action: "push-manifest", Repository: rt.repo, Digest: d, Tag: ref.tag}
	if ref.tag != "" {
		// Check and move the tag under its lock, so that two pushes of
		// one protected tag cannot both see it unset.
		unlock := s.tagLocks.lock(rt.repo + ":" + ref.tag)
		defer unlock()
		if ev.Previous, err = s.checkTagMove(r, rt.repo, ref.tag, desc); err != nil {
			return err
		}
	}
	if _, err := s.cfg.Meta.PutManifest(ctx, rt.repo, rec, ref.tag, ev); err != nil {
		return fmt.Errorf("recording manifest: %w", err)
	}
	h := w.Header()
	if m.Subject != nil {
		h.Set("OCI-Subject", m.Subject.Digest.String())
	}
	h.Set("Location", "/v2/"+rt.repo+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// storeBlob writes a manifest's bytes as a blob.
func (s *Server) storeBlob(r *http.Request, d digest.Digest, body []byte) error {
	ctx := r.Context()
	u, err := s.cfg.Blobs.NewUpload(ctx)
	if err != nil {
		return fmt.Errorf("storing manifest: %w", err)
	}
	if _, err := u.Write(body); err != nil {
		_ = u.Cancel(ctx)
		return fmt.Errorf("storing manifest: %w", err)
	}
	if err := u.Commit(ctx, d, int64(len(body))); err != nil {
		_ = u.Cancel(ctx)
		return fmt.Errorf("storing manifest: %w", err)
	}
	return nil
}

// resolve turns a reference into the digest of a manifest in repo.
func (s *Server) resolve(r *http.Request, repo string, ref reference) (store.Manifest, error) {
	ctx := r.Context()
	d := ref.digest
	if ref.tag != "" {
		var err error
		if d, err = s.cfg.Meta.Resolve(ctx, repo, ref.tag); err != nil {
			return store.Manifest{}, fmt.Errorf("resolving tag: %w", err)
		}
	}
	m, err := s.cfg.Meta.Manifest(ctx, repo, d)
	if err != nil {
		return store.Manifest{}, fmt.Errorf("reading manifest record: %w", err)
	}
	return m, nil
}

// getManifest serves GET and HEAD of a manifest by tag or digest, with the
// media type it was pushed with
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pulling-manifests).
func (s *Server) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseReference(rt.ref)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == CodeManifestInvalid {
			// Nothing can be stored under a name that is not a tag, so
			// reading one is "unknown", as the conformance suite
			// (v1.1.1, "GET nonexistent manifest") and zot answer.
			return errorf(CodeManifestUnknown, http.StatusNotFound, "manifest unknown: %q is not a valid tag", rt.ref)
		}
		return err
	}
	m, err := s.resolve(r, rt.repo, ref)
	if err != nil {
		return err
	}
	rc, size, err := s.cfg.Blobs.Open(r.Context(), m.Digest)
	if err != nil {
		return fmt.Errorf("opening manifest: %w", err)
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("ETag", `"`+m.Digest.String()+`"`)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, _ = io.Copy(w, rc) // a failed write is the client's going away
	return nil
}

// deleteManifest deletes a manifest by digest (and every tag on it), or
// only a tag
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#deleting-tags).
func (s *Server) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	ref, err := parseReference(rt.ref)
	if err != nil {
		return err
	}
	if ref.tag != "" {
		unlock := s.tagLocks.lock(rt.repo + ":" + ref.tag)
		defer unlock()
		d, err := s.cfg.Meta.Resolve(ctx, rt.repo, ref.tag)
		if err != nil {
			return fmt.Errorf("resolving tag: %w", err)
		}
		if err := s.checkTagDelete(r, rt.repo, ref.tag, d); err != nil {
			return err
		}
		ev := store.Event{Time: s.now(), Actor: s.actor(r), Action: "untag", Repository: rt.repo, Tag: ref.tag, Previous: d}
		if err := s.cfg.Meta.DeleteTag(ctx, rt.repo, ref.tag, ev); err != nil {
			return fmt.Errorf("deleting tag: %w", err)
		}
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	if err := s.checkManifestDelete(r, rt.repo, ref.digest); err != nil {
		return err
	}
	ev := store.Event{Time: s.now(), Actor: s.actor(r), Action: "delete-manifest", Repository: rt.repo, Digest: ref.digest}
	if err := s.cfg.Meta.DeleteManifest(ctx, rt.repo, ref.digest, ev); err != nil {
		return fmt.Errorf("deleting manifest: %w", err)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
