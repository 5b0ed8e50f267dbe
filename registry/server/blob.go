package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/airlock-dev/airlock/registry/store"
)

// getBlob serves GET and HEAD of a blob linked in the repository, with
// Range support
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pulling-blobs).
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	linked, err := s.cfg.Meta.BlobLinked(ctx, rt.repo, d)
	if err != nil {
		return fmt.Errorf("checking blob link: %w", err)
	}
	if !linked {
		return fmt.Errorf("%s not linked in %s: %w", d, rt.repo, store.ErrBlobUnknown)
	}
	rc, _, err := s.cfg.Blobs.Open(ctx, d)
	if err != nil {
		return fmt.Errorf("opening blob: %w", err)
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000") // content-addressed: never changes
	http.ServeContent(w, r, "", time.Time{}, rc)
	return nil
}

// deleteBlob unlinks a blob from the repository; garbage collection frees
// the bytes once nothing links or references them
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#deleting-blobs).
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	d, err := parseDigest(rt.ref)
	if err != nil {
		return err
	}
	if err := s.cfg.Meta.UnlinkBlob(ctx, rt.repo, d); err != nil {
		return fmt.Errorf("unlinking blob: %w", err)
	}
	s.audit(r, store.Event{Action: "delete-blob", Repository: rt.repo, Digest: d})
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// audit appends an event; a failure is logged, not answered, as the
// change it records has been made.
func (s *Server) audit(r *http.Request, ev store.Event) {
	ev.Time, ev.Actor = s.now(), s.actor(r)
	if err := s.cfg.Meta.Audit(r.Context(), ev); err != nil {
		s.log.ErrorContext(r.Context(), "audit log", "action", ev.Action, "error", err)
	}
}
