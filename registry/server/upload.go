package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/airlock-dev/airlock/registry/store"
)

// Uploads follow the spec's push section
// (https://github.com/opencontainers/distribution-spec/blob/v1.1.1/spec.md#pushing-blobs):
// POST opens a session (or uploads monolithically with ?digest=, or mounts
// with ?mount=), PATCH appends, PUT ?digest= commits, GET reports the
// size, DELETE cancels.

// copyBufSize is the buffer request bodies are copied through: larger
// than io.Copy's 32 KiB, to cut write calls into the store.
const copyBufSize = 256 << 10

// copyBody copies a request body into an upload: by the upload's own
// ReadFrom where it has one (the filesystem store pipelines receiving,
// writing and hashing), else through a pooled buffer.
func (s *Server) copyBody(w io.Writer, r io.Reader) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	buf, _ := s.bufs.Get().(*[]byte)
	if buf == nil {
		b := make([]byte, copyBufSize)
		buf = &b
	}
	defer s.bufs.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{w}, r, *buf)
}

func (s *Server) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		done, err := s.mount(w, r, rt, mount, q.Get("from"))
		if err != nil || done {
			return err
		}
	} else if q.Has("digest") {
		return s.monolithic(w, r, rt, q.Get("digest"))
	}
	u, err := s.cfg.Blobs.NewUpload(ctx)
	if err != nil {
		return fmt.Errorf("starting upload: %w", err)
	}
	id := u.ID()
	if err := u.Close(); err != nil {
		return fmt.Errorf("starting upload: %w", err)
	}
	now := s.now()
	if err := s.cfg.Meta.PutUpload(ctx, id, rt.repo, now); err != nil {
		return fmt.Errorf("recording upload: %w", err)
	}
	s.started.put(id, now)
	uploadHeaders(w, rt.repo, id, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// mount links a blob of another repository (or, with AutoMount, any blob)
// into rt.repo. done is false when the blob is not there to mount: the
// spec then wants an ordinary upload session.
func (s *Server) mount(w http.ResponseWriter, r *http.Request, rt route, mount, from string) (done bool, err error) {
	ctx := r.Context()
	d, err := parseDigest(mount)
	if err != nil {
		return false, err
	}
	switch {
	case from != "":
		if validName(from) != nil {
			return false, nil
		}
		ok, err := s.cfg.Meta.BlobLinked(ctx, from, d)
		if err != nil || !ok {
			return false, err
		}
	case !s.cfg.AutoMount:
		return false, nil
	}
	if _, err := s.cfg.Blobs.Stat(ctx, d); errors.Is(err, store.ErrBlobUnknown) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("mounting blob: %w", err)
	}
	if err := s.cfg.Meta.LinkBlob(ctx, rt.repo, d); err != nil {
		return false, fmt.Errorf("mounting blob: %w", err)
	}
	s.audit(r, store.Event{Action: "mount-blob", Repository: rt.repo, Digest: d, Detail: "from " + from})
	blobCreated(w, rt.repo, d)
	return true, nil
}

// monolithic takes a whole blob in a POST ?digest=. There is no session
// to resume, so a failed one leaves nothing behind.
func (s *Server) monolithic(w http.ResponseWriter, r *http.Request, rt route, dgst string) error {
	ctx := r.Context()
	d, err := parseDigest(dgst)
	if err != nil {
		return err
	}
	start := time.Now()
	u, err := s.cfg.Blobs.NewUpload(ctx)
	if err != nil {
		return fmt.Errorf("starting upload: %w", err)
	}
	if _, err := s.copyBody(u, r.Body); err != nil {
		_ = u.Cancel(ctx)
		return &Error{Code: CodeBlobUploadInvalid, Status: http.StatusBadRequest, Message: "reading blob body", Err: err}
	}
	if err := u.Commit(ctx, d, -1); err != nil {
		_ = u.Cancel(ctx)
		return fmt.Errorf("committing blob: %w", err)
	}
	if err := s.cfg.Meta.LinkBlob(ctx, rt.repo, d); err != nil {
		return fmt.Errorf("linking blob: %w", err)
	}
	s.metrics.uploadDuration.Observe(time.Since(start).Seconds())
	blobCreated(w, rt.repo, d)
	return nil
}

// openUpload resumes the session named in the path, holding its lock so
// that one request at a time writes to it. release closes the session
// handle (keeping its data) unless it was committed or cancelled, then
// unlocks.
func (s *Server) openUpload(r *http.Request, rt route) (u store.Upload, release func(), err error) {
	ctx := r.Context()
	repo, err := s.cfg.Meta.UploadRepo(ctx, rt.ref)
	if err != nil {
		return nil, nil, fmt.Errorf("finding upload: %w", err)
	}
	if repo != rt.repo {
		return nil, nil, fmt.Errorf("upload %s belongs to another repository: %w", rt.ref, store.ErrUploadUnknown)
	}
	unlock := s.uploadLocks.lock(rt.ref)
	u, err = s.cfg.Blobs.ResumeUpload(ctx, rt.ref)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("resuming upload: %w", err)
	}
	return u, unlock, nil
}

// appendChunk checks a chunk's Content-Range against the session and
// appends the body. A body that breaks off keeps what arrived, so the
// client can ask for the status and resume.
func (s *Server) appendChunk(r *http.Request, u store.Upload) error {
	size := u.Size()
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok || start != size || (r.ContentLength >= 0 && r.ContentLength != end-start+1) {
			return &Error{Code: CodeBlobUploadInvalid, Status: http.StatusRequestedRangeNotSatisfiable,
				Message: fmt.Sprintf("chunk range %q does not continue the upload at byte %d", cr, size), Err: store.ErrRangeInvalid}
		}
	}
	if _, err := s.copyBody(u, r.Body); err != nil {
		return &Error{Code: CodeBlobUploadInvalid, Status: http.StatusBadRequest, Message: "reading chunk: the bytes that arrived are kept; ask for the upload status and resume", Err: err}
	}
	return nil
}

// parseContentRange reads "<start>-<end>" (the spec's form), also with a
// "bytes " or "bytes=" prefix as some clients send it.
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes "), "bytes=")
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	if i := strings.IndexByte(b, '/'); i >= 0 { // "0-99/100"
		b = b[:i]
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	u, release, err := s.openUpload(r, rt)
	if err != nil {
		return err
	}
	defer release()
	err = s.appendChunk(r, u)
	size := u.Size()
	// Close keeps what was written, also when the body broke off.
	if cerr := u.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing upload: %w", cerr)
	}
	if err != nil {
		if errors.Is(err, store.ErrRangeInvalid) {
			uploadHeaders(w, rt.repo, rt.ref, size)
		}
		return err
	}
	uploadHeaders(w, rt.repo, rt.ref, size)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) putUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	u, release, err := s.openUpload(r, rt)
	if err != nil {
		return err
	}
	defer release()
	if err := s.appendChunk(r, u); err != nil {
		_ = u.Close()
		return err
	}
	if err := u.Commit(ctx, d, -1); err != nil {
		_ = u.Close() // a mismatch leaves the session open
		return fmt.Errorf("committing upload: %w", err)
	}
	if err := s.cfg.Meta.LinkBlob(ctx, rt.repo, d); err != nil {
		return fmt.Errorf("linking blob: %w", err)
	}
	if err := s.cfg.Meta.DeleteUpload(ctx, rt.ref); err != nil {
		s.log.WarnContext(ctx, "forgetting committed upload", "upload", rt.ref, "error", err)
	}
	if t, ok := s.started.take(rt.ref); ok {
		s.metrics.uploadDuration.Observe(s.now().Sub(t).Seconds())
	}
	blobCreated(w, rt.repo, d)
	return nil
}

func (s *Server) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	u, release, err := s.openUpload(r, rt)
	if err != nil {
		return err
	}
	defer release()
	size := u.Size()
	if err := u.Close(); err != nil {
		return fmt.Errorf("closing upload: %w", err)
	}
	uploadHeaders(w, rt.repo, rt.ref, size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	u, release, err := s.openUpload(r, rt)
	if err != nil {
		return err
	}
	defer release()
	if err := u.Cancel(ctx); err != nil {
		_ = u.Close()
		return fmt.Errorf("cancelling upload: %w", err)
	}
	if err := s.cfg.Meta.DeleteUpload(ctx, rt.ref); err != nil {
		return fmt.Errorf("forgetting upload: %w", err)
	}
	s.started.take(rt.ref)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// uploadHeaders describe a session: where to send the next chunk and the
// bytes it holds, as the inclusive range "0-<last byte>" ("0-0" when
// empty, as every registry answers).
func uploadHeaders(w http.ResponseWriter, repo, id string, size int64) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	h.Set("Docker-Upload-UUID", id)
	last := size - 1
	if last < 0 {
		last = 0
	}
	h.Set("Range", "0-"+strconv.FormatInt(last, 10))
	h.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}
